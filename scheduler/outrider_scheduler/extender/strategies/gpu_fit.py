"""GPU fit: enough free GPUs, each with enough free memory and the precision the pod needs.

Arguments (``strategies.gpuFit.args``):

- ``requireInventory`` (default false): reject nodes without an inventory annotation. When false,
  such nodes pass (kube-scheduler already checked the GPU count) and score the minimum.
- ``memoryHeadroomMiB`` (default 0): extra free memory required on every GPU beyond the pod's ask.

Score: 0.4 x the fraction of the node's GPUs that qualify + 0.4 x memory tightness (the pod's
need over the free memory of the GPUs it would get) + 0.2 x capability fit (1 when the GPUs
offer no fp8 the pod does not ask for), so that pods leave big-memory and fp8-capable GPUs to
the pods that need them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..nodes import GpuSlot, NodeState
from ..requirements import PodRequirements
from .base import Failure, Strategy, StrategyArgs

__all__ = ["GpuFit", "GpuFitArgs", "qualifying_gpus"]


class GpuFitArgs(StrategyArgs):
    """Typed arguments of the GPU-fit strategy."""

    strategy: ClassVar[str] = "gpuFit"
    require_inventory: bool = False
    """Reject nodes that publish no GPU inventory."""
    memory_headroom_mib: int = Field(default=0, ge=0, alias="memoryHeadroomMiB")
    """Free memory (MiB) to keep on each GPU beyond the pod's own need."""


def qualifying_gpus(pod: PodRequirements, gpus: tuple[GpuSlot, ...], headroom_mib: int = 0) -> list[GpuSlot]:
    """GPUs with at least the pod's memory (plus headroom) free and its precision supported."""
    need = pod.min_memory_mib + headroom_mib
    precision = pod.precision
    return [g for g in gpus if g.memory_free_mib >= need and (precision is None or precision in g.precisions)]


class GpuFit(Strategy):
    """Rejects nodes that cannot host the pod's GPUs; scores by how well the GPUs match."""

    name: ClassVar[str] = "gpuFit"
    filters: ClassVar[bool] = True

    def __init__(self, args: GpuFitArgs | None = None) -> None:
        self.args = args or GpuFitArgs()

    def filter(self, pod: PodRequirements, node: NodeState) -> Failure | None:
        """Reject when fewer than ``pod.gpus`` GPUs are free and qualify."""
        shape = node.shape
        if pod.gpus > shape.free_gpus:
            return Failure(
                "insufficient_gpus",
                f"needs {pod.gpus} free GPUs, node has {shape.free_gpus} of {shape.allocatable_gpus} free",
                unresolvable=pod.gpus > shape.allocatable_gpus,
            )
        if not shape.has_inventory:
            if self.args.require_inventory and pod.gpus > 0:
                return Failure("no_inventory", "node publishes no GPU inventory (is the node agent running?)")
            return None
        if pod.gpus == 0:
            return None
        good = qualifying_gpus(pod, shape.gpus, self.args.memory_headroom_mib)
        if len(good) >= pod.gpus:
            return None
        if pod.precision is not None and not any(pod.precision in g.precisions for g in shape.gpus):
            return Failure("precision", f"no GPU on the node supports {pod.precision}")
        need = pod.min_memory_mib + self.args.memory_headroom_mib
        best = max((g.memory_free_mib for g in shape.gpus), default=0)
        biggest = max((g.memory_total_mib for g in shape.gpus), default=0)
        return Failure(
            "insufficient_gpu_memory",
            f"needs {pod.gpus} GPUs with {need} MiB free each"
            + (f" and {pod.precision}" if pod.precision else "")
            + f"; node has {len(good)} (largest free {best} MiB)",
            unresolvable=need > biggest,
        )

    def score(self, pod: PodRequirements, node: NodeState) -> float:
        """Fraction of GPUs that qualify, times how tightly memory fits on the best ones."""
        shape = node.shape
        if not shape.has_inventory or not shape.gpus:
            return 0.0
        good = qualifying_gpus(pod, shape.gpus, self.args.memory_headroom_mib)
        if not good:
            return 0.0
        share = len(good) / len(shape.gpus)
        chosen = sorted(good, key=lambda g: g.memory_free_mib)[: max(pod.gpus, 1)]
        need = max(pod.min_memory_mib, 1)
        tightness = sum(min(1.0, need / max(g.memory_free_mib, 1)) for g in chosen) / len(chosen)
        spare_fp8 = pod.precision != "fp8" and any("fp8" in g.precisions for g in chosen)
        return 0.4 * share + 0.4 * tightness + 0.2 * (0.0 if spare_fp8 else 1.0)
