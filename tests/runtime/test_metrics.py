"""Metric names and the NVML telemetry collector (with a stand-in NVML: no GPU here)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from outrider_runtime.config import ModelState
from outrider_runtime.metrics import GpuTelemetry, RuntimeMetrics


class FakeNvml:
    def __init__(self, fail_init: bool = False, fail_read: bool = False) -> None:
        self.fail_init = fail_init
        self.fail_read = fail_read

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise OSError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        if self.fail_read:
            raise RuntimeError("GPU is lost")
        return i

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=40 + 10 * h, memory=5)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(used=(h + 1) * 2**30, total=80 * 2**30, free=0)


def test_gpu_telemetry_reads_every_device() -> None:
    reg = CollectorRegistry()
    gpu = GpuTelemetry(FakeNvml())
    assert gpu.available
    reg.register(gpu)
    text = generate_latest(reg).decode()
    assert 'outrider_runtime_gpu_utilization_ratio{gpu="1"} 0.5' in text
    assert 'outrider_runtime_gpu_memory_used_bytes{gpu="0"} 1.073741824e+09' in text
    assert 'outrider_runtime_gpu_memory_total_bytes{gpu="1"} 8.589934592e+10' in text


def test_gpu_telemetry_is_silent_without_a_gpu() -> None:
    for nvml in (FakeNvml(fail_init=True), FakeNvml(fail_read=True)):
        reg = CollectorRegistry()
        gpu = GpuTelemetry(nvml)
        reg.register(gpu)
        assert "outrider_runtime_gpu" not in generate_latest(reg).decode()
    real = GpuTelemetry()  # this machine has no NVML: must not raise
    assert list(real.collect()) == [] or real.available


def test_metric_names_and_state_one_hot() -> None:
    m = RuntimeMetrics(CollectorRegistry())
    m.set_state("mini", ModelState.WARM)
    m.latency.labels("mini", "queue").observe(0.01)
    m.batch_size.labels("mini", "int8").observe(8)
    text = generate_latest(m.registry).decode()
    assert 'outrider_runtime_model_state{model="mini",state="warm"} 1.0' in text
    assert 'outrider_runtime_model_state{model="mini",state="serving"} 0.0' in text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert all(n.startswith("outrider_runtime_") for n in names)
    assert "outrider_runtime_request_duration_seconds" in names
