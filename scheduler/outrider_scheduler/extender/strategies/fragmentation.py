"""Fragmentation-aware packing: keep whole GPUs and whole NVLink groups free for large shards.

Score = 0.5 x fullness + 0.5 x spare, where

- fullness = 1 - (GPUs left free after placement) / (GPUs of the node): best fit, so small pods
  fill partly used or small nodes and large, empty nodes stay whole for large shards;
- spare = 1, or ``nvlinkSparePenalty`` when a single-GPU pod would take a GPU of an
  NVLink-connected node (those boards are what multi-GPU shards need);

and a placement that leaves a few GPUs free that no pending shard size can use (stranded GPUs)
is multiplied by ``strandPenalty``.

Arguments (``strategies.fragmentation.args``):

- ``minUsefulGpus`` (default 1): leftover counts below this (but above 0) are stranded.
- ``strandPenalty`` (default 0.5): factor applied to the score of a stranding placement.
- ``nvlinkSparePenalty`` (default 0.0): the spare term for a single-GPU pod on an
  NVLink-connected node.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..nodes import NodeState
from ..requirements import PodRequirements
from .base import Strategy, StrategyArgs

__all__ = ["Fragmentation", "FragmentationArgs"]


class FragmentationArgs(StrategyArgs):
    """Typed arguments of the fragmentation strategy."""

    strategy: ClassVar[str] = "fragmentation"
    min_useful_gpus: int = Field(default=1, ge=1)
    """Smallest leftover GPU count that a pending shard could use."""
    strand_penalty: float = Field(default=0.5, ge=0.0, le=1.0)
    """Multiplier (0..1) for placements that strand GPUs."""
    nvlink_spare_penalty: float = Field(default=0.0, ge=0.0, le=1.0)
    """Spare term (0..1) for single-GPU pods on NVLink-connected nodes (1 means no penalty)."""


class Fragmentation(Strategy):
    """Best-fit packing with a penalty for stranded GPUs."""

    name: ClassVar[str] = "fragmentation"

    def __init__(self, args: FragmentationArgs | None = None) -> None:
        self.args = args or FragmentationArgs()

    def score(self, pod: PodRequirements, node: NodeState) -> float:
        """0.5 x fullness + 0.5 x spare, times the strand penalty when the leftover is unusable."""
        shape = node.shape
        total = shape.allocatable_gpus
        if total <= 0 or pod.gpus <= 0 or pod.gpus > shape.free_gpus:
            return 0.0
        leftover = shape.free_gpus - pod.gpus
        fullness = 1.0 - leftover / total
        spare = 1.0
        if pod.gpus == 1 and total > 1 and any(g.nvlink_peers for g in shape.gpus):
            spare = self.args.nvlink_spare_penalty
        value = 0.5 * fullness + 0.5 * spare
        if 0 < leftover < self.args.min_useful_gpus:
            value *= self.args.strand_penalty
        return value
