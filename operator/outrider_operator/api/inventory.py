"""The node GPU inventory: the JSON the node agent publishes on its Node.

Shape of the ``outrider.dev/gpu-inventory`` annotation (version 1)::

    {
      "version": 1,
      "driver": "550.54.15",            # null on CPU-only nodes
      "cpuOnlyReason": null,             # why no GPU was found, e.g. "NVML library not found"
      "gpus": [
        {"index": 0, "uuid": "GPU-...", "product": "NVIDIA H100 80GB HBM3", "shortProduct": "H100",
         "architecture": "hopper", "memoryTotalMiB": 81559, "memoryFreeMiB": 80000,
         "memoryBandwidthGBps": 3350.0, "smCount": 132, "computeCapability": "9.0",
         "precisions": ["fp32", "fp16", "bf16", "int8", "fp8"], "nvlinkPeers": [1, 2, 3],
         "utilization": 0.12}
      ],
      "cachedModels": ["all-minilm-l6-v2"],
      "updatedAt": "2026-11-29T12:00:00Z"
    }
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GpuDevice", "GpuInventory", "Precision"]

Precision = Literal["fp32", "fp16", "bf16", "int8", "fp8"]
"""Numeric precisions a device can execute natively."""


class GpuDevice(BaseModel):
    """One GPU as discovered through NVML."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    index: int = Field(ge=0, description="NVML device index on the node.")
    uuid: str = Field(description="NVML device UUID.")
    product: str = Field(description="Full NVML product name.")
    short_product: str = Field(alias="shortProduct", description="Short product name, e.g. H100.")
    architecture: str = Field(description="Architecture name, e.g. hopper, ampere, ada.")
    memory_total_mib: int = Field(alias="memoryTotalMiB", ge=0, description="Total memory in MiB.")
    memory_free_mib: int = Field(alias="memoryFreeMiB", ge=0, description="Free memory in MiB.")
    memory_bandwidth_gbps: float = Field(
        alias="memoryBandwidthGBps", ge=0, description="Peak memory bandwidth in GB/s (bus width x clock)."
    )
    sm_count: int = Field(alias="smCount", ge=0, description="Number of streaming multiprocessors.")
    compute_capability: str = Field(alias="computeCapability", description="CUDA compute capability, 'M.m'.")
    precisions: list[Precision] = Field(description="Precisions executed natively.")
    nvlink_peers: list[int] = Field(
        default_factory=list, alias="nvlinkPeers", description="Indices of GPUs linked by NVLink."
    )
    utilization: float = Field(default=0.0, ge=0, le=1, description="Recent SM utilisation, 0..1.")


class GpuInventory(BaseModel):
    """Everything the node agent knows about one node's accelerators and model cache."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    version: Literal[1] = Field(default=1, description="Shape version of this document.")
    driver: str | None = Field(default=None, description="NVIDIA driver version; null without a driver.")
    cpu_only_reason: str | None = Field(
        default=None, alias="cpuOnlyReason", description="Why no GPU was reported, when none was."
    )
    gpus: list[GpuDevice] = Field(default_factory=list, description="The node's GPUs.")
    cached_models: list[str] = Field(
        default_factory=list, alias="cachedModels", description="Model names whose weights are cached."
    )
    updated_at: datetime | None = Field(default=None, alias="updatedAt", description="When this was taken.")

    def to_annotation(self) -> str:
        """Serialise to the compact JSON stored in the node annotation."""
        return self.model_dump_json(by_alias=True, exclude_none=False)

    @classmethod
    def from_annotation(cls, raw: str) -> GpuInventory:
        """Parse the node annotation; raises pydantic.ValidationError on a malformed document."""
        return cls.model_validate_json(raw)
