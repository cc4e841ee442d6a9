"""Node agent discovery over recorded inventories of real GPU models, the CPU-only fallback and
the pynvml backend's translation (driven by a stand-in pynvml module)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from outrider_operator.api.inventory import GpuInventory
from outrider_scheduler.agent.discovery import cached_models, discover, short_product
from outrider_scheduler.agent.errors import FixtureError, NvmlUnavailableError
from outrider_scheduler.agent.nvml import PynvmlBackend, RecordedBackend, Snapshot, recorded_names
from outrider_scheduler.agent.publishing import node_labels

# fixture -> (GPUs, short name, architecture, published GB/s, fp8?, bf16?, NVLink peers of GPU 0)
EXPECTED = {
    "h100-sxm5-80gb-x8": (8, "H100", "hopper", 3350, True, True, 7),
    "a100-sxm4-80gb-x8": (8, "A100", "ampere", 2039, False, True, 7),
    "h200-x1": (1, "H200", "hopper", 4800, True, True, 0),
    "l40s-x4": (4, "L40S", "ada", 864, True, True, 0),
    "l4-x4": (4, "L4", "ada", 300, True, True, 0),
    "a10g-x1": (1, "A10G", "ampere", 600, False, True, 0),
    "t4-x1": (1, "T4", "turing", 320, False, False, 0),
}


def test_every_fixture_is_covered() -> None:
    assert set(recorded_names()) == set(EXPECTED)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_recorded_inventories(fixture: str) -> None:
    count, short, arch, bandwidth, fp8, bf16, peers = EXPECTED[fixture]
    inv = discover(RecordedBackend(fixture), cache_dir=None)
    assert len(inv.gpus) == count and inv.driver and inv.cpu_only_reason is None
    g = inv.gpus[0]
    assert (g.short_product, g.architecture) == (short, arch)
    assert g.memory_bandwidth_gbps == pytest.approx(bandwidth, rel=0.03)
    assert ("fp8" in g.precisions) is fp8 and ("bf16" in g.precisions) is bf16
    assert "fp32" in g.precisions and "int8" in g.precisions
    assert len(g.nvlink_peers) == peers
    assert g.memory_free_mib <= g.memory_total_mib
    # The annotation round-trips through the shared API type.
    again = GpuInventory.from_annotation(inv.to_annotation())
    assert again.gpus == inv.gpus
    assert node_labels(inv) == {"outrider.dev/gpu-product": short, "outrider.dev/gpu-architecture": arch}


def test_busy_gpu_reports_less_free_memory_and_utilisation() -> None:
    inv = discover(RecordedBackend("a100-sxm4-80gb-x8"), cache_dir=None)
    busy = inv.gpus[3]
    assert busy.memory_free_mib == 81920 - 60000 and busy.utilization == pytest.approx(0.87)


class _NoNvml:
    def snapshot(self) -> Snapshot:
        raise NvmlUnavailableError("NVML Shared Library Not Found")


def test_cpu_only_inventory_says_why(tmp_path: Path) -> None:
    (tmp_path / "minilm").mkdir()
    (tmp_path / "minilm" / "model.onnx").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    inv = discover(_NoNvml(), cache_dir=tmp_path)
    assert inv.gpus == [] and inv.driver is None
    assert inv.cpu_only_reason == "NVML Shared Library Not Found"
    assert inv.cached_models == ["minilm"]
    assert node_labels(inv) == {"outrider.dev/gpu-product": "none", "outrider.dev/gpu-architecture": "none"}


def test_real_pynvml_backend_on_this_machine() -> None:
    # Runs the real pynvml path: with a GPU it must list devices, without one report CPU-only.
    inv = discover(PynvmlBackend(), cache_dir=None)
    if inv.gpus:
        assert inv.driver and all(g.memory_total_mib > 0 and g.sm_count > 0 for g in inv.gpus)
    else:
        assert inv.cpu_only_reason and inv.driver is None


def test_cached_models_ignores_missing_folder(tmp_path: Path) -> None:
    assert cached_models(tmp_path / "nope") == []


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("Tesla T4", "T4"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("NVIDIA Graphics Device", "Graphics-Device"),
    ],
)
def test_short_product(name: str, short: str) -> None:
    assert short_product(name) == short


def test_bad_fixture_is_a_fixture_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"driver": "1", "devices": [{"index": 0}]}')
    with pytest.raises(FixtureError, match=r"bad\.json is unusable: KeyError"):
        RecordedBackend(bad)
    with pytest.raises(FixtureError):
        RecordedBackend("no-such-machine")


class _Err(Exception):
    pass


def _fake_pynvml() -> types.ModuleType:
    """A stand-in for pynvml: 3 GPUs; 0 and 1 behind an NVSwitch, 2 linked directly to 1."""
    m: Any = types.ModuleType("pynvml")
    m.NVMLError = _Err
    m.NVML_NVLINK_MAX_LINKS = 4
    m.NVML_FEATURE_ENABLED = 1
    m.NVML_CLOCK_MEM = 2
    bus = ["00000000:18:00.0", "00000000:2A:00.0", "00000000:3A:00.0"]
    links = {0: ["SWITCH"], 1: ["SWITCH", bus[2]], 2: [bus[1]]}
    ns = types.SimpleNamespace
    m.nvmlInit = lambda: None
    m.nvmlShutdown = lambda: None
    m.nvmlSystemGetDriverVersion = lambda: b"550.54.15"
    m.nvmlDeviceGetCount = lambda: 3
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetPciInfo = lambda h: ns(busId=bus[h].encode())
    m.nvmlDeviceGetName = lambda h: "NVIDIA H100 80GB HBM3"
    m.nvmlDeviceGetUUID = lambda h: f"GPU-{h}"
    m.nvmlDeviceGetMemoryInfo = lambda h: ns(total=80 * 2**30, used=2**30, free=79 * 2**30)
    m.nvmlDeviceGetMemoryBusWidth = lambda h: 5120
    m.nvmlDeviceGetMaxClockInfo = lambda h, kind: 2619
    m.nvmlDeviceGetCudaComputeCapability = lambda h: (9, 0)

    def attributes(h: int) -> Any:
        if h == 2:
            raise _Err("not supported")
        return ns(multiprocessorCount=132)

    m.nvmlDeviceGetAttributes = attributes

    def state(h: int, link: int) -> int:
        return 1 if link < len(links[h]) else 0

    m.nvmlDeviceGetNvLinkState = state
    m.nvmlDeviceGetNvLinkRemotePciInfo = lambda h, link: ns(busId=links[h][link].encode())
    m.nvmlDeviceGetUtilizationRates = lambda h: ns(gpu=50)
    module: types.ModuleType = m
    return module


def test_pynvml_backend_translation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    backend = PynvmlBackend()
    snap = backend.snapshot()
    backend.close()
    assert snap.driver == "550.54.15"
    peers = {g.index: g.nvlink_peers for g in snap.gpus}
    assert peers == {0: (1,), 1: (0, 2), 2: (1,)}
    assert snap.gpus[2].sm_count == 0  # an unsupported query falls back instead of failing
    inv = discover(RecordedBackend(snap), cache_dir=None)
    assert inv.gpus[0].memory_bandwidth_gbps == pytest.approx(3352.3)
    assert inv.gpus[0].utilization == pytest.approx(0.5)


def test_pynvml_init_failure_is_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_pynvml()

    def boom() -> None:
        raise _Err("Driver Not Loaded")

    fake.nvmlInit = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    inv = discover(PynvmlBackend(), cache_dir=None)
    assert inv.gpus == [] and inv.cpu_only_reason == "NVML init failed: Driver Not Loaded"


def test_one_failing_gpu_query_gives_cpu_only_with_the_reason_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _fake_pynvml()

    def memory(h: int) -> Any:
        if h == 1:
            raise _Err("GPU is lost")
        return types.SimpleNamespace(total=80 * 2**30, used=2**30, free=79 * 2**30)

    fake.nvmlDeviceGetMemoryInfo = memory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    inv = discover(PynvmlBackend(), cache_dir=None)
    assert inv.gpus == [] and inv.cpu_only_reason == "NVML query of GPU 1 failed: GPU is lost"
