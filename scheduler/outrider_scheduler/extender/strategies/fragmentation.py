"""Fragmentation-aware packing: keep whole GPUs and whole NVLink groups free for large shards.

Best fit: the fewer GPUs a placement leaves free on the node, the better, so small pods fill
partly used or small nodes and large, empty NVLink nodes stay whole for large shards. A
placement that leaves a few GPUs free that no pending shard size can use (stranded GPUs) is
penalised.

Arguments (``strategies.fragmentation.args``):

- ``minUsefulGpus`` (default 1): leftover counts below this (but above 0) are stranded.
- ``strandPenalty`` (default 0.5): factor applied to the score of a stranding placement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
from ..nodes import NodeState
from ..requirements import PodRequirements
from .base import Strategy, args_from_mapping

__all__ = ["Fragmentation", "FragmentationArgs"]


@dataclass(frozen=True)
class FragmentationArgs:
    """Typed arguments of the fragmentation strategy."""

    min_useful_gpus: int = 1
    """Smallest leftover GPU count that a pending shard could use."""
    strand_penalty: float = 0.5
    """Multiplier (0..1) for placements that strand GPUs."""

    def __post_init__(self) -> None:
        if self.min_useful_gpus < 1:
            raise ConfigError(f"fragmentation.minUsefulGpus must be >= 1, got {self.min_useful_gpus}")
        if not 0.0 <= self.strand_penalty <= 1.0:
            raise ConfigError(f"fragmentation.strandPenalty must be within 0..1, got {self.strand_penalty}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FragmentationArgs:
        """Build from the camelCase config mapping; unknown or mistyped keys are a ConfigError."""
        return args_from_mapping(cls, "fragmentation", data)


class Fragmentation(Strategy):
    """Best-fit packing with a penalty for stranded GPUs."""

    name: ClassVar[str] = "fragmentation"

    def __init__(self, args: FragmentationArgs | None = None) -> None:
        self.args = args or FragmentationArgs()

    def score(self, pod: PodRequirements, node: NodeState) -> float:
        """1 - leftover/allocatable, times the strand penalty when the leftover is unusable."""
        shape = node.shape
        total = shape.allocatable_gpus
        if total <= 0 or pod.gpus <= 0 or pod.gpus > shape.free_gpus:
            return 0.0
        leftover = shape.free_gpus - pod.gpus
        value = 1.0 - leftover / total
        if 0 < leftover < self.args.min_useful_gpus:
            value *= self.args.strand_penalty
        return value
