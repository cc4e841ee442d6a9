"""The simulated node topology: a YAML file of node pools, and the Node objects it produces.

Each Node is annotated ``kwok.x-k8s.io/node: fake`` (so KWOK manages it), lists cpu, memory, pods
and ``nvidia.com/gpu`` in both capacity and allocatable, carries the GPU product and architecture
labels and the ``outrider.dev/gpu-inventory`` annotation a node agent would publish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outrider_scheduler.extender.simulation import gpu_node

from .errors import TopologyError
from .gpus import CATALOG, inventory_for
from .settings import repo_root

__all__ = [
    "KWOK_ANNOTATION",
    "NodePool",
    "Topology",
    "default_topology_path",
    "load_topology",
]

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
"""Annotation that hands a Node to the KWOK controller (value ``fake``)."""
MAX_NODES = 5000
"""Upper bound on the node count accepted from the command line."""


class NodePool(BaseModel):
    """A group of identical simulated nodes."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40, description="Node name prefix."
    )
    count: int = Field(ge=0, le=MAX_NODES, description="How many nodes to create.")
    gpu_product: str | None = Field(default=None, alias="gpuProduct", description="Short GPU product name.")
    gpus_per_node: int = Field(default=8, ge=0, le=16, alias="gpusPerNode", description="GPUs per node.")
    cpu: str = Field(default="32", description="CPU capacity (quantity).")
    memory: str = Field(default="128Gi", description="Memory capacity (quantity).")
    pods: int = Field(default=110, ge=1, description="Pod capacity.")
    cached_models: list[str] = Field(
        default_factory=list, alias="cachedModels", description="Cached model names."
    )

    @field_validator("gpu_product")
    @classmethod
    def _known_product(cls, value: str | None) -> str | None:
        if value is not None and value not in CATALOG:
            raise ValueError(f"unknown gpuProduct {value!r}; known: {', '.join(CATALOG)}")
        return value

    @property
    def gpus(self) -> int:
        """GPUs per node (0 for CPU-only pools)."""
        return self.gpus_per_node if self.gpu_product else 0

    def node_names(self) -> list[str]:
        """Names of this pool's nodes."""
        return [f"{self.name}-{i}" for i in range(self.count)]

    def node(self, name: str) -> dict[str, Any]:
        """Return the v1 Node manifest (with status) for one node of this pool (the product's one
        node builder, :func:`~outrider_scheduler.extender.simulation.gpu_node`)."""
        product = self.gpu_product
        spec = CATALOG[product] if product else None
        labels = {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "outrider.dev/node-pool": self.name,
        }
        if spec:
            labels["nvidia.com/gpu.product"] = spec.product.replace(" ", "-")
            labels["nvidia.com/gpu.count"] = str(self.gpus)
        return gpu_node(
            name,
            inventory_for(name, product, self.gpus, list(self.cached_models)),
            gpus=self.gpus,
            resources={"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)},
            labels=labels,
            kwok=True,
        )


class Topology(BaseModel):
    """All node pools of the simulated cluster."""

    model_config = ConfigDict(extra="forbid")

    pools: list[NodePool] = Field(min_length=1, description="Node pools, created in order.")

    @property
    def node_count(self) -> int:
        """Total number of nodes."""
        return sum(p.count for p in self.pools)

    def nodes(self) -> list[dict[str, Any]]:
        """Every Node manifest of the topology."""
        return [pool.node(name) for pool in self.pools for name in pool.node_names()]

    def scaled(self, total: int) -> Topology:
        """Return a topology of ``total`` nodes in the pools' proportions (largest remainder)."""
        if not 1 <= total <= MAX_NODES:
            raise TopologyError(f"--nodes must be between 1 and {MAX_NODES}, got {total}")
        weights = [p.count for p in self.pools]
        whole = sum(weights) or len(weights)
        weights = weights if sum(weights) else [1] * len(weights)
        exact = [total * w / whole for w in weights]
        counts = [int(x) for x in exact]
        order = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
        for i in order[: total - sum(counts)]:
            counts[i] += 1
        scaled = iter(counts)
        return Topology(pools=[p.model_copy(update={"count": next(scaled)}) for p in self.pools])


def default_topology_path() -> Path:
    """``hack/cluster-topology.yaml`` of this repository."""
    return repo_root() / "hack" / "cluster-topology.yaml"


def load_topology(path: Path | None = None, *, nodes: int | None = None) -> Topology:
    """Load and validate a topology file; with ``nodes``, scale it to that many nodes."""
    path = path or default_topology_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise TopologyError(f"topology file {path} is not valid YAML: {exc}") from exc
    try:
        topology = Topology.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise TopologyError(f"topology file {path} is invalid: {problems}") from exc
    names = [n for p in topology.pools for n in p.node_names()]
    if len(names) != len(set(names)):
        raise TopologyError(f"topology file {path}: pool names produce duplicate node names")
    return topology.scaled(nodes) if nodes is not None else topology
