"""Synthetic nodes and pods built from the agent's recorded inventories.

Used by tests, the benchmark and the end-to-end tests to create realistic GPU nodes (the node
inventory annotation comes from the agent's own discovery over a recorded NVML reading) and the
pods the operator would create.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from outrider_operator.api.inventory import GpuInventory
from outrider_operator.api.labels import (
    ANNOTATION_MIN_GPU_MEMORY,
    ANNOTATION_PRECISION,
    ANNOTATION_SHARD_PLAN,
    GPU_RESOURCE,
    LABEL_DEPLOYMENT,
    LABEL_MODEL,
    LABEL_POOL,
    SCHEDULER_NAME,
)

__all__ = ["DEFAULT_MIX", "make_node", "make_pod", "recorded_inventory", "synthetic_nodes"]

DEFAULT_MIX: tuple[tuple[str, float], ...] = (
    ("h100-sxm5-80gb-x8", 0.2),
    ("a100-sxm4-80gb-x8", 0.25),
    ("l40s-x4", 0.2),
    ("l4-x4", 0.25),
    ("t4-x1", 0.1),
)
"""Default product mix of a synthetic cluster: (recorded fixture, share of nodes)."""


@cache
def recorded_inventory(fixture: str) -> GpuInventory:
    """The inventory the agent would publish for a recorded machine (no cached models)."""
    from ..agent.discovery import inventory_from_snapshot
    from ..agent.nvml import load_recorded

    return inventory_from_snapshot(load_recorded(fixture))


def make_node(
    name: str,
    fixture: str | None,
    *,
    cached_models: Iterable[str] = (),
    labels: dict[str, str] | None = None,
    kwok: bool = False,
    gpus_without_inventory: int = 8,
) -> dict[str, Any]:
    """A v1 Node dict with allocatable GPUs and (unless ``fixture`` is None) the inventory annotation.

    With ``fixture=None`` the node advertises ``gpus_without_inventory`` GPUs but no inventory, as
    a node without the agent would.
    """
    from ..agent.publishing import node_labels

    annotations: dict[str, str] = {}
    all_labels = {"kubernetes.io/hostname": name, "type": "kwok" if kwok else "simulated"}
    gpus = gpus_without_inventory
    if fixture is not None:
        inv = recorded_inventory(fixture).model_copy(update={"cached_models": sorted(cached_models)})
        annotations["outrider.dev/gpu-inventory"] = inv.to_annotation()
        all_labels.update(node_labels(inv))
        gpus = len(inv.gpus)
    if kwok:
        annotations["kwok.x-k8s.io/node"] = "fake"
    all_labels.update(labels or {})
    resources = {"cpu": "64", "memory": "512Gi", "pods": "110", GPU_RESOURCE: str(gpus)}
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels, "annotations": annotations},
        "spec": {},
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }
    if kwok:
        node["spec"]["taints"] = [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]
    return node


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
        labels[LABEL_MODEL] = model
    if pool:
        labels[LABEL_POOL] = pool
    if deployment:
        labels[LABEL_DEPLOYMENT] = deployment
    if min_memory_mib is not None:
        annotations[ANNOTATION_MIN_GPU_MEMORY] = str(min_memory_mib)
    if precision:
        annotations[ANNOTATION_PRECISION] = precision
    if shard_plan is not None:
        annotations[ANNOTATION_SHARD_PLAN] = json.dumps(list(shard_plan))
    spec: dict[str, Any] = {
        "schedulerName": SCHEDULER_NAME,
        "containers": [
            {
                "name": "runtime",
                "image": "outrider/runtime:dev",
                "resources": {"limits": {GPU_RESOURCE: str(gpus)}, "requests": {GPU_RESOURCE: str(gpus)}},
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
