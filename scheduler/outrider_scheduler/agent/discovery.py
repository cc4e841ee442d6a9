"""Turn NVML readings into the node's :class:`GpuInventory` (and a readable environment report).

Derived facts:

- memory bandwidth (GB/s) = bus width (bits) / 8 x max memory clock (MHz) x 2 (double data rate) / 1000;
- architecture from the compute capability (7.0 volta … 9.0 hopper, 10.x/12.x blackwell);
- precisions executed natively: fp32 always; fp16 from 6.0; int8 (dp4a) from 6.1; bf16 from 8.0;
  fp8 from 8.9 (Ada and Hopper onwards);
- the short product name (H100, A100, L4, …) from the NVML product string.

Cached models are the sub-folders of the runtime's model cache folder that hold at least one file.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from outrider_operator.api.inventory import GpuDevice, GpuInventory, Precision

from .errors import NvmlUnavailableError
from .nvml import GpuBackend, RawGpu, Snapshot

__all__ = [
    "DEFAULT_MODEL_CACHE",
    "architecture",
    "bandwidth_gbps",
    "cached_models",
    "discover",
    "inventory_from_snapshot",
    "precisions",
    "short_product",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL_CACHE = Path("/var/cache/outrider/models")
"""Where the runtime keeps downloaded model weights, one sub-folder per model."""

_ARCH_BY_MAJOR = {
    3: "kepler",
    5: "maxwell",
    6: "pascal",
    7: "volta",
    8: "ampere",
    9: "hopper",
    10: "blackwell",
}
_SHORT_PATTERNS = [
    r"\b(GH200|GB200|B200|B100|H200|H100|H800|A100|A800|A40|A30|A10G|A10|A16|A2|L40S|L40|L4|T4|V100|P100|P4)\b",
    r"RTX\s*(\w+)",
]


def bandwidth_gbps(bus_width_bits: int, memory_clock_mhz: int) -> float:
    """Peak memory bandwidth in GB/s from the bus width and the maximum memory clock."""
    return round(bus_width_bits / 8 * memory_clock_mhz * 2 / 1000, 1)


def architecture(cc: tuple[int, int]) -> str:
    """Architecture name for a compute capability (ada for 8.9, turing for 7.5, blackwell for 10/12)."""
    major, minor = cc
    if (major, minor) == (8, 9):
        return "ada"
    if (major, minor) == (7, 5):
        return "turing"
    if major in (10, 11, 12):
        return "blackwell"
    return _ARCH_BY_MAJOR.get(major, "unknown")


def precisions(cc: tuple[int, int]) -> list[Precision]:
    """Precisions the device executes natively, by compute capability."""
    out: list[Precision] = ["fp32"]
    if cc >= (6, 0):
        out.append("fp16")
    if cc >= (8, 0):
        out.append("bf16")
    if cc >= (6, 1):
        out.append("int8")
    if cc >= (8, 9):
        out.append("fp8")
    return out


def short_product(name: str) -> str:
    """Short product name ('NVIDIA H100 80GB HBM3' -> 'H100'); falls back to a cleaned full name."""
    for pattern in _SHORT_PATTERNS:
        m = re.search(pattern, name, flags=re.IGNORECASE)
        if m:
            return m.group(1).upper() if not pattern.startswith("RTX") else f"RTX{m.group(1).upper()}"
    cleaned = re.sub(r"[^A-Za-z0-9.-]+", "-", name.replace("NVIDIA", "")).strip("-")
    return cleaned or "unknown"


def cached_models(cache_dir: Path) -> list[str]:
    """Names of the sub-folders of ``cache_dir`` that hold at least one file (sorted)."""
    try:
        entries = list(cache_dir.iterdir())
    except OSError:
        return []
    names = []
    for entry in entries:
        try:
            if entry.is_dir() and any(p.is_file() for p in entry.rglob("*")):
                names.append(entry.name)
        except OSError:
            continue
    return sorted(names)


def _device(g: RawGpu) -> GpuDevice:
    mib = 1024 * 1024
    return GpuDevice(
        index=g.index,
        uuid=g.uuid,
        product=g.name,
        short_product=short_product(g.name),
        architecture=architecture(g.compute_capability),
        memory_total_mib=g.memory_total_bytes // mib,
        memory_free_mib=g.memory_free_bytes // mib,
        memory_bandwidth_gbps=bandwidth_gbps(g.memory_bus_width_bits, g.max_memory_clock_mhz),
        sm_count=g.sm_count,
        compute_capability=f"{g.compute_capability[0]}.{g.compute_capability[1]}",
        precisions=precisions(g.compute_capability),
        nvlink_peers=[p for p in g.nvlink_peers if p != g.index],
        utilization=min(1.0, max(0.0, g.utilization_percent / 100.0)),
    )


def inventory_from_snapshot(snapshot: Snapshot, models: list[str] | None = None) -> GpuInventory:
    """Build the inventory document from one NVML snapshot."""
    return GpuInventory(
        driver=snapshot.driver,
        gpus=[_device(g) for g in snapshot.gpus],
        cached_models=models or [],
        updated_at=datetime.now(UTC).replace(microsecond=0),
        cpu_only_reason=None if snapshot.gpus else "NVML reports no GPU devices",
    )


def discover(backend: GpuBackend, cache_dir: Path | None = DEFAULT_MODEL_CACHE) -> GpuInventory:
    """Read the backend; without NVML, a CPU-only inventory whose ``cpuOnlyReason`` says why."""
    models = cached_models(cache_dir) if cache_dir is not None else []
    try:
        snapshot = backend.snapshot()
    except NvmlUnavailableError as exc:
        log.debug("no GPU inventory, reporting CPU-only: %s", exc)
        return GpuInventory(
            driver=None,
            cpu_only_reason=str(exc),
            cached_models=models,
            updated_at=datetime.now(UTC).replace(microsecond=0),
        )
    return inventory_from_snapshot(snapshot, models)
