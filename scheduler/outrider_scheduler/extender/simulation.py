"""Synthetic nodes and pods: the one builder of GPU Node manifests, and the pods the operator makes.

:func:`gpu_node` is the only place that turns a GPU inventory into a Node (allocatable GPUs, the
agent's own product and architecture labels, the inventory annotation); the development cluster's
topology, the extender benchmark and the tests all build their nodes with it. :func:`make_node`
takes its inventory from the agent's discovery over a recorded NVML reading.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from outrider_operator.api import labels as names
from outrider_operator.api.inventory import GpuInventory
from outrider_operator.api.placement import ShardPlanEntry, render_shard_plan

__all__ = ["DEFAULT_MIX", "gpu_node", "make_node", "make_pod", "recorded_inventory", "synthetic_nodes"]

DEFAULT_MIX: tuple[tuple[str, float], ...] = (
    ("h100-sxm5-80gb-x8", 0.2),
    ("a100-sxm4-80gb-x8", 0.25),
    ("l40s-x4", 0.2),
    ("l4-x4", 0.25),
    ("t4-x1", 0.1),
)
"""Default product mix of a synthetic cluster: (recorded fixture, share of nodes)."""


KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
"""The taint that keeps pods without the matching toleration off a KWOK node."""


@cache
def recorded_inventory(fixture: str) -> GpuInventory:
    """The inventory the agent would publish for a recorded machine (no cached models)."""
    from ..agent.discovery import inventory_from_snapshot
    from ..agent.nvml import load_recorded

    return inventory_from_snapshot(load_recorded(fixture))


def gpu_node(
    name: str,
    inventory: GpuInventory | None,
    *,
    gpus: int | None = None,
    resources: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    kwok: bool = False,
) -> dict[str, Any]:
    """A v1 Node dict (with status) for a node whose agent published ``inventory``.

    Labels are the agent's (:func:`~outrider_scheduler.agent.publishing.node_labels`) plus
    ``labels``; allocatable ``nvidia.com/gpu`` is the inventory's GPU count, or ``gpus`` for a node
    without an inventory (``inventory=None``: a node without the agent). ``kwok`` marks the node
    for KWOK to manage (the annotation; taints are the caller's).
    """
    from ..agent.publishing import node_labels

    annotations: dict[str, str] = {}
    all_labels = {"kubernetes.io/hostname": name, "type": "kwok" if kwok else "simulated"}
    count = gpus if gpus is not None else 0
    if inventory is not None:
        annotations[names.ANNOTATION_GPU_INVENTORY] = inventory.to_annotation()
        all_labels.update(node_labels(inventory))
        count = len(inventory.gpus) if gpus is None else gpus
    if kwok:
        annotations["kwok.x-k8s.io/node"] = "fake"
    all_labels.update(labels or {})
    base = resources or {"cpu": "64", "memory": "512Gi", "pods": "110"}
    capacity = {**base, names.GPU_RESOURCE: str(count)}
    spec: dict[str, Any] = {"taints": [dict(t) for t in taints]} if taints else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels, "annotations": annotations},
        "spec": spec,
        "status": {"capacity": dict(capacity), "allocatable": dict(capacity)},
    }


def make_node(
    name: str,
    fixture: str | None,
    *,
    cached_models: Iterable[str] = (),
    labels: dict[str, str] | None = None,
    kwok: bool = False,
    gpus_without_inventory: int = 8,
) -> dict[str, Any]:
    """A Node with the inventory of a recorded machine (``fixture``), via :func:`gpu_node`.

    With ``fixture=None`` the node advertises ``gpus_without_inventory`` GPUs but no inventory, as
    a node without the agent would.
    """
    taints = [KWOK_TAINT] if kwok else []
    if fixture is None:
        return gpu_node(name, None, gpus=gpus_without_inventory, labels=labels, taints=taints, kwok=kwok)
    inv = recorded_inventory(fixture).model_copy(update={"cached_models": sorted(cached_models)})
    return gpu_node(name, inv, labels=labels, taints=taints, kwok=kwok)


def make_pod(
    name: str,
    gpus: int,
    *,
    namespace: str = "default",
    min_memory_mib: int | None = None,
    precision: str | None = None,
    shard_plan: Sequence[dict[str, Any]] | None = None,
    model: str | None = None,
    pool: str | None = None,
    deployment: str | None = None,
    node_name: str | None = None,
    kwok_toleration: bool = False,
) -> dict[str, Any]:
    """A v1 Pod dict as the operator would create it (``schedulerName: outrider``)."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if model:
        labels[names.LABEL_MODEL] = model
    if pool:
        labels[names.LABEL_POOL] = pool
    if deployment:
        labels[names.LABEL_DEPLOYMENT] = deployment
    if min_memory_mib is not None:
        annotations[names.ANNOTATION_MIN_GPU_MEMORY] = str(min_memory_mib)
    if precision:
        annotations[names.ANNOTATION_PRECISION] = precision
    if shard_plan is not None:
        entries = [
            ShardPlanEntry.model_validate({"name": f"shard-{i}", **g}) for i, g in enumerate(shard_plan)
        ]
        annotations[names.ANNOTATION_SHARD_PLAN] = render_shard_plan(entries)
    spec: dict[str, Any] = {
        "schedulerName": names.SCHEDULER_NAME,
        "containers": [
            {
                "name": "runtime",
                "image": "outrider/runtime:dev",
                "resources": {
                    "limits": {names.GPU_RESOURCE: str(gpus)},
                    "requests": {names.GPU_RESOURCE: str(gpus)},
                },
            }
        ],
    }
    if node_name:
        spec["nodeName"] = node_name
    if kwok_toleration:
        spec["tolerations"] = [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": spec,
        "status": {"phase": "Running" if node_name else "Pending"},
    }


def synthetic_nodes(
    count: int,
    *,
    mix: Sequence[tuple[str, float]] = DEFAULT_MIX,
    seed: int = 7,
    models: Sequence[str] = ("llama-8b", "mistral-7b", "minilm"),
    cached_share: float = 0.1,
    without_inventory_share: float = 0.0,
    prefix: str = "gpu-node",
) -> list[dict[str, Any]]:
    """``count`` nodes drawn from ``mix``; some hold cached models, some lack an inventory."""
    rng = random.Random(seed)
    fixtures = [f for f, _ in mix]
    weights = [w for _, w in mix]
    nodes = []
    for i in range(count):
        fixture: str | None = rng.choices(fixtures, weights)[0]
        cached = [m for m in models if rng.random() < cached_share]
        if rng.random() < without_inventory_share:
            fixture = None
        nodes.append(make_node(f"{prefix}-{i:05d}", fixture, cached_models=cached))
    return nodes
