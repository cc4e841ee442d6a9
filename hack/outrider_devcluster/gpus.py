"""Published figures of the GPU products the simulated nodes carry.

Values are the vendor's data-sheet figures for the common server variants (SXM for H100/A100):
memory as NVML reports it, peak memory bandwidth, SM count, compute capability, native precisions,
and whether the GPUs of one node are joined all-to-all by NVLink/NVSwitch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from outrider_operator.api.inventory import GpuDevice, GpuInventory, Precision

__all__ = ["CATALOG", "DRIVER_VERSION", "GpuProduct", "inventory_for"]

DRIVER_VERSION = "550.54.15"
"""Driver version reported by the simulated node agent."""


@dataclass(frozen=True)
class GpuProduct:
    """One GPU product's figures."""

    short: str
    """Short name used in labels (H100, A100, L4, ...)."""
    product: str
    """Full NVML product name."""
    architecture: str
    """Architecture label value (hopper, ampere, ada, turing)."""
    memory_mib: int
    """Total memory in MiB as NVML reports it."""
    bandwidth_gbps: float
    """Peak memory bandwidth in GB/s."""
    sm_count: int
    """Streaming multiprocessors."""
    compute_capability: str
    """CUDA compute capability."""
    precisions: tuple[Precision, ...]
    """Precisions with native tensor-core support."""
    nvlink_all_to_all: bool
    """True when all GPUs of a node see each other over NVLink (NVSwitch baseboards)."""


CATALOG: dict[str, GpuProduct] = {
    p.short: p
    for p in (
        GpuProduct("H100", "NVIDIA H100 80GB HBM3", "hopper", 81559, 3350.0, 132, "9.0",
                   ("fp32", "fp16", "bf16", "int8", "fp8"), True),
        GpuProduct("A100", "NVIDIA A100-SXM4-80GB", "ampere", 81920, 2039.0, 108, "8.0",
                   ("fp32", "fp16", "bf16", "int8"), True),
        GpuProduct("L4", "NVIDIA L4", "ada", 23034, 300.0, 58, "8.9",
                   ("fp32", "fp16", "bf16", "int8", "fp8"), False),
        GpuProduct("A10G", "NVIDIA A10G", "ampere", 23028, 600.0, 80, "8.6",
                   ("fp32", "fp16", "bf16", "int8"), False),
        GpuProduct("T4", "Tesla T4", "turing", 15360, 320.0, 40, "7.5",
                   ("fp32", "fp16", "int8"), False),
    )
}  # fmt: skip
"""Known products by short name."""


def _uuid(node: str, index: int) -> str:
    """A stable, UUID-shaped GPU id derived from the node name and device index."""
    digest = hashlib.sha256(f"{node}/{index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def inventory_for(node: str, product: str | None, count: int, cached_models: list[str]) -> GpuInventory:
    """Return the inventory a node agent would publish for ``count`` GPUs of ``product``."""
    now = datetime.now(UTC).replace(microsecond=0)
    if not product or count == 0:
        return GpuInventory(
            driver=None,
            cpu_only_reason="no NVIDIA GPU on this node",
            cached_models=cached_models,
            updated_at=now,
        )
    spec = CATALOG[product]
    devices = [
        GpuDevice(
            index=i,
            uuid=_uuid(node, i),
            product=spec.product,
            short_product=spec.short,
            architecture=spec.architecture,
            memory_total_mib=spec.memory_mib,
            memory_free_mib=spec.memory_mib - 512,
            memory_bandwidth_gbps=spec.bandwidth_gbps,
            sm_count=spec.sm_count,
            compute_capability=spec.compute_capability,
            precisions=list(spec.precisions),
            nvlink_peers=[j for j in range(count) if j != i] if spec.nvlink_all_to_all else [],
            utilization=0.0,
        )
        for i in range(count)
    ]
    return GpuInventory(driver=DRIVER_VERSION, gpus=devices, cached_models=cached_models, updated_at=now)
