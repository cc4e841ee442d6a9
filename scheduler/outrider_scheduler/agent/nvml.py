"""NVML behind a small interface: the real ``pynvml`` backend and a recorded one for tests.

:class:`GpuBackend` yields :class:`RawGpu` readings (what NVML reports, unprocessed).
:class:`PynvmlBackend` reads a real driver; :class:`RecordedBackend` replays readings stored as
JSON (see ``fixtures/``), so discovery and publishing are tested on several real GPU models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from .errors import FixtureError, NvmlUnavailableError

__all__ = [
    "GpuBackend",
    "PynvmlBackend",
    "RawGpu",
    "RecordedBackend",
    "Snapshot",
    "dump_snapshot",
    "load_recorded",
    "recorded_names",
]


@dataclass(frozen=True, slots=True)
class RawGpu:
    """One device as NVML reports it."""

    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    memory_used_bytes: int
    memory_bus_width_bits: int
    max_memory_clock_mhz: int
    sm_count: int
    compute_capability: tuple[int, int]
    nvlink_peers: tuple[int, ...] = ()
    utilization_percent: float = 0.0

    @property
    def memory_free_bytes(self) -> int:
        """Total minus used memory."""
        return max(0, self.memory_total_bytes - self.memory_used_bytes)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One reading of the whole machine."""

    driver: str
    gpus: tuple[RawGpu, ...] = field(default_factory=tuple)


class GpuBackend(Protocol):
    """Source of GPU readings; raises NvmlUnavailableError when there is no usable NVML."""

    def snapshot(self) -> Snapshot:
        """Read the driver version and every device."""
        ...


class RecordedBackend:
    """Replays a recorded snapshot (a fixture name, a path, or a Snapshot)."""

    def __init__(self, source: str | Path | Snapshot) -> None:
        self._snapshot = source if isinstance(source, Snapshot) else load_recorded(source)

    def snapshot(self) -> Snapshot:
        """The recorded snapshot."""
        return self._snapshot


def recorded_names() -> list[str]:
    """Names of the recorded inventories shipped with the package."""
    folder = resources.files(__package__).joinpath("fixtures")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def load_recorded(source: str | Path) -> Snapshot:
    """Load a recorded snapshot by fixture name or file path; raises FixtureError."""
    try:
        if isinstance(source, Path) or source.endswith(".json"):
            text = Path(source).read_text()
        else:
            text = resources.files(__package__).joinpath("fixtures").joinpath(f"{source}.json").read_text()
        data = json.loads(text)
        gpus = tuple(
            RawGpu(
                index=int(d["index"]),
                uuid=str(d["uuid"]),
                name=str(d["name"]),
                memory_total_bytes=int(d["memoryTotalBytes"]),
                memory_used_bytes=int(d["memoryUsedBytes"]),
                memory_bus_width_bits=int(d["memoryBusWidthBits"]),
                max_memory_clock_mhz=int(d["maxMemoryClockMHz"]),
                sm_count=int(d["smCount"]),
                compute_capability=(int(d["computeCapability"][0]), int(d["computeCapability"][1])),
                nvlink_peers=tuple(int(p) for p in d.get("nvlinkPeers", [])),
                utilization_percent=float(d.get("utilizationPercent", 0.0)),
            )
            for d in data["devices"]
        )
        return Snapshot(driver=str(data["driver"]), gpus=gpus)
    except (OSError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise FixtureError(
            f"recorded inventory {source!s} is unusable: {type(exc).__name__}: {exc}"
        ) from None


def dump_snapshot(snapshot: Snapshot) -> dict[str, Any]:
    """The fixture JSON for a snapshot (used to record a real machine)."""
    devices = []
    for g in snapshot.gpus:
        d = asdict(g)
        devices.append(
            {
                "index": d["index"],
                "uuid": d["uuid"],
                "name": d["name"],
                "memoryTotalBytes": d["memory_total_bytes"],
                "memoryUsedBytes": d["memory_used_bytes"],
                "memoryBusWidthBits": d["memory_bus_width_bits"],
                "maxMemoryClockMHz": d["max_memory_clock_mhz"],
                "smCount": d["sm_count"],
                "computeCapability": list(d["compute_capability"]),
                "nvlinkPeers": list(d["nvlink_peers"]),
                "utilizationPercent": d["utilization_percent"],
            }
        )
    return {"driver": snapshot.driver, "devices": devices}


class PynvmlBackend:
    """Reads the local driver through ``pynvml`` (package nvidia-ml-py)."""

    def __init__(self) -> None:
        self._initialised = False

    def _nvml(self) -> Any:
        try:
            import pynvml
        except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
            raise NvmlUnavailableError(f"pynvml is not installed: {exc}") from None
        if not self._initialised:
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as exc:
                raise NvmlUnavailableError(f"NVML init failed: {exc}") from None
            except OSError as exc:
                raise NvmlUnavailableError(f"NVML library could not be loaded: {exc}") from None
            self._initialised = True
        return pynvml

    def close(self) -> None:
        """Shut NVML down (safe to call when it never started)."""
        if self._initialised:
            import pynvml

            try:
                pynvml.nvmlShutdown()
            finally:
                self._initialised = False

    def snapshot(self) -> Snapshot:
        """Read every device; per-device queries that are not supported fall back to 0 / empty."""
        nv = self._nvml()
        try:
            driver = _text(nv.nvmlSystemGetDriverVersion())
            count = nv.nvmlDeviceGetCount()
            handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except nv.NVMLError as exc:
            raise NvmlUnavailableError(f"NVML query failed: {exc}") from None
        bus_ids = {
            _text(_try(nv, lambda h=h: nv.nvmlDeviceGetPciInfo(h).busId, "")): i
            for i, h in enumerate(handles)
        }
        gpus = []
        for i, h in enumerate(handles):
            try:
                gpus.append(self._device(nv, i, h, bus_ids))
            except nv.NVMLError as exc:  # a partial inventory would mislead placement: report none
                raise NvmlUnavailableError(f"NVML query of GPU {i} failed: {exc}") from None
        return Snapshot(driver=driver, gpus=_resolve_switch_peers(gpus))

    @staticmethod
    def _device(nv: Any, index: int, h: Any, bus_ids: dict[str, int]) -> RawGpu:
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        cc = _try(nv, lambda: tuple(nv.nvmlDeviceGetCudaComputeCapability(h)), (0, 0))
        sm = _try(nv, lambda: int(nv.nvmlDeviceGetAttributes(h).multiprocessorCount), 0)
        peers: list[int] = []
        for link in range(int(nv.NVML_NVLINK_MAX_LINKS)):
            if _try(nv, lambda link=link: nv.nvmlDeviceGetNvLinkState(h, link), 0) != nv.NVML_FEATURE_ENABLED:
                continue
            remote = _text(_try(nv, lambda link=link: nv.nvmlDeviceGetNvLinkRemotePciInfo(h, link).busId, ""))
            peer = bus_ids.get(remote, -1)  # -1: an NVSwitch (or unknown) on the other end
            if peer != index and peer not in peers:
                peers.append(peer)
        util = _try(nv, lambda: float(nv.nvmlDeviceGetUtilizationRates(h).gpu), 0.0)
        return RawGpu(
            index=index,
            uuid=_text(nv.nvmlDeviceGetUUID(h)),
            name=_text(nv.nvmlDeviceGetName(h)),
            memory_total_bytes=int(mem.total),
            memory_used_bytes=int(mem.used),
            memory_bus_width_bits=_try(nv, lambda: int(nv.nvmlDeviceGetMemoryBusWidth(h)), 0),
            max_memory_clock_mhz=_try(nv, lambda: int(nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM)), 0),
            sm_count=sm,
            compute_capability=(int(cc[0]), int(cc[1])),
            nvlink_peers=tuple(peers),
            utilization_percent=util,
        )


def _resolve_switch_peers(gpus: Sequence[RawGpu]) -> tuple[RawGpu, ...]:
    """GPUs whose NVLinks end at an NVSwitch (-1) are all peers of each other."""
    switched = {g.index for g in gpus if -1 in g.nvlink_peers}
    out = []
    for g in gpus:
        peers = {p for p in g.nvlink_peers if p >= 0}
        if g.index in switched:
            peers |= switched - {g.index}
        out.append(
            RawGpu(
                g.index,
                g.uuid,
                g.name,
                g.memory_total_bytes,
                g.memory_used_bytes,
                g.memory_bus_width_bits,
                g.max_memory_clock_mhz,
                g.sm_count,
                g.compute_capability,
                tuple(sorted(peers)),
                g.utilization_percent,
            )
        )
    return tuple(out)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(nv: Any, fn: Any, default: Any) -> Any:
    try:
        return fn()
    except nv.NVMLError:
        return default
