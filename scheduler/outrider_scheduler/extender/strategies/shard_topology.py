"""Shard topology: multi-GPU replicas need NVLink-connected GPUs; shards get the devices they like.

A pod that asks for several GPUs runs one model replica split into shards across them, so the GPUs
should be linked by NVLink. Within the plan (``outrider.dev/shard-plan``), attention shards
(``devicePreference: memoryBandwidth``) prefer high memory bandwidth and FFN shards
(``devicePreference: compute``) prefer many SMs — the hardware-topology-aware partitioning.

Arguments (``strategies.shardTopology.args``):

- ``requireNvlink`` (default true): reject nodes without a group of ``gpus`` qualifying GPUs that
  are connected by NVLink (only for pods asking for 2 or more GPUs).
- ``referenceBandwidthGBps`` (default 3350.0, an H100 SXM) and ``referenceSmCount`` (default 132):
  the device that scores 1.0 on bandwidth and compute; faster devices are capped at 1.0.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..nodes import GpuSlot, NodeState
from ..requirements import PodRequirements
from .base import Failure, Strategy, StrategyArgs
from .gpu_fit import qualifying_gpus

__all__ = ["ShardTopology", "ShardTopologyArgs", "largest_nvlink_group"]


class ShardTopologyArgs(StrategyArgs):
    """Typed arguments of the shard-topology strategy."""

    strategy: ClassVar[str] = "shardTopology"
    require_nvlink: bool = True
    """Reject nodes without an NVLink-connected group large enough for a multi-GPU pod."""
    reference_bandwidth_gbps: float = Field(default=3350.0, gt=0, alias="referenceBandwidthGBps")
    """Memory bandwidth (GB/s) that scores 1.0 for attention shards."""
    reference_sm_count: int = Field(default=132, gt=0)
    """SM count that scores 1.0 for FFN shards."""


def largest_nvlink_group(gpus: list[GpuSlot]) -> list[GpuSlot]:
    """The largest set of the given GPUs connected (directly or through each other) by NVLink."""
    by_index = {g.index: g for g in gpus}
    seen: set[int] = set()
    best: list[GpuSlot] = []
    for g in gpus:
        if g.index in seen:
            continue
        group: list[GpuSlot] = []
        stack = [g.index]
        seen.add(g.index)
        while stack:
            current = by_index[stack.pop()]
            group.append(current)
            for peer in current.nvlink_peers:
                if peer in by_index and peer not in seen:
                    seen.add(peer)
                    stack.append(peer)
        if len(group) > len(best):
            best = group
    return best


class ShardTopology(Strategy):
    """Keeps a replica's shards on NVLink peers and matches shards to device strengths."""

    name: ClassVar[str] = "shardTopology"
    filters: ClassVar[bool] = True

    def __init__(self, args: ShardTopologyArgs | None = None) -> None:
        self.args = args or ShardTopologyArgs()

    def filter(self, pod: PodRequirements, node: NodeState) -> Failure | None:
        """Reject multi-GPU pods on nodes without a big enough NVLink group (when required)."""
        shape = node.shape
        if pod.gpus < 2 or not self.args.require_nvlink or not shape.has_inventory:
            return None
        group = largest_nvlink_group(qualifying_gpus(pod, shape.gpus))
        if len(group) >= pod.gpus:
            return None
        return Failure(
            "no_nvlink_group",
            f"needs {pod.gpus} NVLink-connected GPUs for one replica; "
            f"largest suitable NVLink group is {len(group)}",
        )

    def score(self, pod: PodRequirements, node: NodeState) -> float:
        """Average, over the shard plan's GPUs, of how well the assigned device suits the shard.

        Without a plan: 1.0 when a multi-GPU pod gets one NVLink group (0.5 otherwise), and a
        neutral 0 for single-GPU pods.
        """
        shape = node.shape
        if not shape.has_inventory:
            return 0.0
        good = qualifying_gpus(pod, shape.gpus)
        if not good:
            return 0.0
        linked = 1.0
        if pod.gpus >= 2:
            linked = 1.0 if len(largest_nvlink_group(good)) >= pod.gpus else 0.5
        shards = pod.shards
        if not shards:
            # No plan: only the NVLink linkage matters; a 1-GPU pod has no preference (neutral 0),
            # so it does not pull towards the fast NVLink boards that large shards need.
            return linked if pod.gpus >= 2 else 0.0
        by_bw = sorted(good, key=lambda g: g.bandwidth_gbps, reverse=True)
        by_sm = sorted(good, key=lambda g: g.sm_count, reverse=True)
        taken: set[int] = set()
        total = 0.0
        count = 0
        for shard in sorted(shards, key=lambda s: s.device_preference):
            ranked = by_sm if shard.device_preference == "compute" else by_bw
            for _ in range(max(shard.gpus, 1)):
                device = next((g for g in ranked if g.index not in taken), None)
                if device is None:
                    device = ranked[-1]
                taken.add(device.index)
                if shard.device_preference == "compute":
                    total += min(1.0, device.sm_count / self.args.reference_sm_count)
                else:
                    total += min(1.0, device.bandwidth_gbps / self.args.reference_bandwidth_gbps)
                count += 1
        return linked * total / count
