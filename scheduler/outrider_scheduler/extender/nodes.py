"""The extender's view of one node: a hashable *shape* plus the node-specific extras.

Most clusters hold many identical nodes (same GPU model, same free count). Everything a strategy
needs that depends only on the GPUs and how many are free lives in :class:`NodeShape`; the cache
interns equal shapes so that one request evaluates each distinct shape once, however many nodes
share it. Node-specific facts (cached models, standby pods) stay on :class:`NodeState`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from outrider_operator.api.inventory import GpuInventory
from outrider_operator.api.labels import ANNOTATION_GPU_INVENTORY, GPU_RESOURCE

from .errors import MalformedRequestError
from .requirements import parse_quantity_int

__all__ = ["GpuSlot", "NodeShape", "NodeState", "node_from_object"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GpuSlot:
    """The placement-relevant facts of one GPU."""

    index: int
    memory_free_mib: int
    memory_total_mib: int
    bandwidth_gbps: float
    sm_count: int
    precisions: frozenset[str]
    nvlink_peers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NodeShape:
    """GPU facts of a node that strategies may memoise on (equal shapes score equally)."""

    allocatable_gpus: int
    free_gpus: int
    has_inventory: bool
    gpus: tuple[GpuSlot, ...] = ()


@dataclass(slots=True, eq=False)
class NodeState:
    """One node as the extender sees it."""

    name: str
    allocatable_gpus: int
    labels: dict[str, str] = field(default_factory=dict)
    inventory: GpuInventory | None = None
    inventory_problem: str | None = None
    requested_gpus: int = 0
    cached_models: frozenset[str] = frozenset()
    standby_models: dict[str, int] = field(default_factory=dict)
    shape: NodeShape = field(default_factory=lambda: NodeShape(0, 0, False))
    shape_id: int = -1
    host_json: str = ""
    """The start of this node's prioritize entry, ``{"Host":"<name>","Score":`` (pre-encoded)."""

    def __post_init__(self) -> None:
        if not self.host_json:
            self.host_json = '{"Host":' + json.dumps(self.name) + ',"Score":'

    def model_codes(self) -> dict[str, int]:
        """Model -> 2 when a standby pod of it runs here, 1 when its weights are cached here."""
        codes = dict.fromkeys(self.cached_models, 1)
        codes.update(dict.fromkeys((m for m, n in self.standby_models.items() if n), 2))
        return codes

    def compute_shape(self) -> NodeShape:
        """Build the shape from the current inventory and requested GPUs."""
        free = max(0, self.allocatable_gpus - self.requested_gpus)
        if self.inventory is None or (not self.inventory.gpus and self.allocatable_gpus > 0):
            # no inventory, or a CPU-only one (the agent could not read NVML) on a node whose
            # device plugin offers GPUs: no trustworthy GPU details, so defer to the resource fit
            return NodeShape(self.allocatable_gpus, free, False)
        slots = tuple(
            GpuSlot(
                index=g.index,
                memory_free_mib=g.memory_free_mib,
                memory_total_mib=g.memory_total_mib,
                bandwidth_gbps=g.memory_bandwidth_gbps,
                sm_count=g.sm_count,
                precisions=frozenset(g.precisions),
                nvlink_peers=tuple(sorted(g.nvlink_peers)),
            )
            for g in self.inventory.gpus
        )
        return NodeShape(self.allocatable_gpus, free, True, slots)


def _allocatable_gpus(obj: Mapping[str, Any], name: str) -> int:
    status = obj.get("status") or {}
    alloc = status.get("allocatable") if isinstance(status, Mapping) else None
    if not isinstance(alloc, Mapping) or GPU_RESOURCE not in alloc:
        return 0
    return parse_quantity_int(alloc[GPU_RESOURCE], f"node {name} status.allocatable")


def node_from_object(obj: Any) -> NodeState:
    """Build a NodeState from a v1 Node JSON dict; raises MalformedRequestError if it is no Node.

    A missing or unparsable inventory annotation is not an error: the node is kept with
    ``inventory=None`` and ``inventory_problem`` saying why.
    """
    if not isinstance(obj, Mapping):
        raise MalformedRequestError("a node must be a JSON object (a v1 Node)")
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        raise MalformedRequestError("a node lacks metadata.name")
    name: str = meta["name"]
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    annotations = meta.get("annotations") or {}
    raw = annotations.get(ANNOTATION_GPU_INVENTORY) if isinstance(annotations, Mapping) else None
    inventory: GpuInventory | None = None
    problem: str | None = None
    if raw is None:
        problem = f"no {ANNOTATION_GPU_INVENTORY} annotation (node agent not running?)"
    else:
        try:
            inventory = GpuInventory.from_annotation(str(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            problem = f"unparsable {ANNOTATION_GPU_INVENTORY} annotation: {loc} {first.get('msg')}"
    return NodeState(
        name=name,
        allocatable_gpus=_allocatable_gpus(obj, name),
        labels=labels,
        inventory=inventory,
        inventory_problem=problem,
        cached_models=frozenset(inventory.cached_models) if inventory else frozenset(),
    )
