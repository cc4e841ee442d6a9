"""A readable environment report: driver, GPUs, precisions, NVLink and what is missing."""

from __future__ import annotations

from pathlib import Path

from outrider_operator.api.inventory import GpuInventory

__all__ = ["missing_items", "render_report"]


def missing_items(inventory: GpuInventory, cache_dir: Path | None) -> list[str]:
    """Things that stop or limit GPU serving on this machine, in plain words."""
    missing: list[str] = []
    if inventory.driver is None:
        missing.append(
            f"NVIDIA driver / NVML: {inventory.cpu_only_reason or 'not found'} "
            "(install the NVIDIA driver so libnvidia-ml.so.1 loads; this node serves CPU-only)"
        )
    elif not inventory.gpus:
        missing.append("GPUs: the driver loads but reports no devices")
    if inventory.gpus:
        if not any("fp8" in g.precisions for g in inventory.gpus):
            missing.append("fp8: no GPU here executes fp8 natively (needs compute capability >= 8.9)")
        if not any("bf16" in g.precisions for g in inventory.gpus):
            missing.append("bf16: no GPU here executes bf16 natively (needs compute capability >= 8.0)")
        if len(inventory.gpus) > 1 and not any(g.nvlink_peers for g in inventory.gpus):
            missing.append("NVLink: several GPUs but no NVLink; multi-GPU shards will use PCIe")
    if cache_dir is not None and not cache_dir.is_dir():
        missing.append(f"model cache: {cache_dir} does not exist (no warm-cache placement from this node)")
    return missing


def render_report(inventory: GpuInventory, cache_dir: Path | None) -> str:
    """The text ``outrider check-environment`` prints."""
    lines = [f"driver:         {inventory.driver or 'none'}"]
    if inventory.cpu_only_reason:
        lines.append(f"cpu-only:       {inventory.cpu_only_reason}")
    lines.append(f"gpus:           {len(inventory.gpus)}")
    for g in inventory.gpus:
        peers = ",".join(str(p) for p in g.nvlink_peers) or "-"
        lines.append(
            f"  [{g.index}] {g.product} ({g.short_product}, {g.architecture}, cc {g.compute_capability}) "
            f"mem {g.memory_free_mib}/{g.memory_total_mib} MiB free, {g.memory_bandwidth_gbps:.0f} GB/s, "
            f"{g.sm_count} SMs, util {g.utilization:.0%}, nvlink {peers}"
        )
        lines.append(f"      precisions: {', '.join(g.precisions)}")
    lines.append(
        f"model cache:    {cache_dir or '-'}: {', '.join(inventory.cached_models) or 'no cached models'}"
    )
    missing = missing_items(inventory, cache_dir)
    lines.append("missing:        " + ("nothing" if not missing else ""))
    lines.extend(f"  - {m}" for m in missing)
    return "\n".join(lines)
