"""Semantic checks that the schema cannot do because they need facts about the cluster.

Each problem names the spec field at fault, so ``Ready=False, reason=InvalidSpec`` tells the
user exactly what to change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from outrider_operator.api.spec import InferenceDeploymentSpec
from outrider_operator.reconcile.quantities import parse_quantity_mib

__all__ = ["ClusterFacts", "SpecProblem", "check_semantics", "problems_from_validation_error"]


@dataclass(frozen=True)
class SpecProblem:
    """One reason the spec cannot be served: the field at fault and a message."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class ClusterFacts:
    """What the operator knows about the cluster's nodes."""

    max_gpus_per_node: int = 0
    max_gpu_memory_mib: int | None = None
    gpu_products: frozenset[str] = field(default_factory=frozenset)
    node_count: int = 0

    @classmethod
    def from_nodes(
        cls, nodes: Iterable[dict[str, Any]], gpu_resource: str, product_label: str
    ) -> ClusterFacts:
        """Summarise node objects (as dicts): allocatable GPUs, products and GPU memory."""
        max_gpus = 0
        products: set[str] = set()
        max_mem: int | None = None
        count = 0
        for node in nodes:
            count += 1
            alloc = (node.get("status") or {}).get("allocatable") or {}
            try:
                max_gpus = max(max_gpus, int(str(alloc.get(gpu_resource, "0"))))
            except ValueError:
                continue
            meta = node.get("metadata") or {}
            product = (meta.get("labels") or {}).get(product_label)
            if product and product != "none":
                products.add(product)
            raw_mem = (meta.get("labels") or {}).get("nvidia.com/gpu.memory")
            if raw_mem and raw_mem.isdigit():
                max_mem = max(max_mem or 0, int(raw_mem))
        return cls(max_gpus, max_mem, frozenset(products), count)


def check_semantics(spec: InferenceDeploymentSpec, facts: ClusterFacts) -> list[SpecProblem]:
    """Return every problem that makes ``spec`` impossible to place on this cluster."""
    problems: list[SpecProblem] = []
    scheme = spec.model.uri.split("://", 1)[0] if "://" in spec.model.uri else ""
    if scheme in ("s3", "hf"):
        problems.append(
            SpecProblem(
                "spec.model.uri",
                f"{scheme}:// models need a fetch initContainer, which this version does not render yet; "
                "use pvc://CLAIM/path (mounted read-only), a path inside the image, or builtin:NAME",
            )
        )
    need = spec.runtime.gpus_per_replica
    # With no GPU node at all the GPU pool may scale from zero (cluster autoscaler): pods stay
    # Pending, which Progressing reports, instead of the spec being declared impossible.
    gpu_nodes_known = facts.node_count > 0 and facts.max_gpus_per_node > 0
    if need > 0 and gpu_nodes_known and need > facts.max_gpus_per_node:
        problems.append(
            SpecProblem(
                "spec.runtime.gpusPerReplica",
                f"{need} GPUs per replica, but the largest node offers {facts.max_gpus_per_node} "
                f"(nvidia.com/gpu allocatable across {facts.node_count} nodes)",
            )
        )
    shard_gpus = spec.sharding.total_gpus()
    # shard groups of a CPU-only spec (gpusPerReplica 0) run on CPU and need no GPU
    if need > 0 and shard_gpus > 0 and gpu_nodes_known and shard_gpus > facts.max_gpus_per_node:
        problems.append(
            SpecProblem(
                "spec.sharding.groups",
                f"the shard plan needs {shard_gpus} GPUs on one node, but the largest node offers "
                f"{facts.max_gpus_per_node}",
            )
        )
    if spec.runtime.min_gpu_memory and facts.max_gpu_memory_mib is not None:
        want = parse_quantity_mib(spec.runtime.min_gpu_memory)
        if want > facts.max_gpu_memory_mib:
            problems.append(
                SpecProblem(
                    "spec.runtime.minGpuMemory",
                    f"{spec.runtime.min_gpu_memory} per GPU, but the largest GPU has "
                    f"{facts.max_gpu_memory_mib} MiB",
                )
            )
    return problems


def problems_from_validation_error(exc: ValidationError) -> list[SpecProblem]:
    """Turn a pydantic error into problems naming ``spec.<camelCase path>``."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        problems.append(SpecProblem(f"spec.{loc}" if loc else "spec", err["msg"]))
    return problems
