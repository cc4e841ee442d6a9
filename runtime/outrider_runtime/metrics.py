"""Prometheus metrics of the runtime, registered on an injectable ``CollectorRegistry``.

Names follow ``outrider_runtime_<what>_<unit>``. GPU utilisation and memory come from NVML
(``pynvml``, package ``nvidia-ml-py``) through :class:`GpuTelemetry`; on a node without a GPU NVML
fails to initialise and the collector simply yields nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from outrider_runtime.config import ModelState

__all__ = ["GpuTelemetry", "RuntimeMetrics"]

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class RuntimeMetrics:
    """All runtime metrics; build one per server with a fresh registry in tests."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "outrider_runtime_request_duration_seconds",
            "Inference request latency by phase (queue: waiting for a batch; compute: batch run; total).",
            ["model", "phase"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "outrider_runtime_requests_total",
            "Inference requests by outcome.",
            ["model", "outcome"],
            registry=r,
        )
        self.failures = Counter(
            "outrider_runtime_request_failures_total",
            "Failed inference requests by HTTP status.",
            ["model", "code"],
            registry=r,
        )
        self.batch_size = Histogram(
            "outrider_runtime_batch_size",
            "Rows per executed batch.",
            ["model", "precision"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "outrider_runtime_queue_depth",
            "Requests waiting to be batched.",
            ["model", "precision"],
            registry=r,
        )
        self.precision_chosen = Counter(
            "outrider_runtime_precision_requests_total",
            "Requests by the precision they ran at (adaptive routing included).",
            ["model", "precision"],
            registry=r,
        )
        self.agreement = Gauge(
            "outrider_runtime_precision_agreement_ratio",
            "Mean cosine similarity with fp32 on the calibration set, per precision "
            "(precision=adaptive: the routed mix).",
            ["model", "precision"],
            registry=r,
        )
        self.state = Gauge(
            "outrider_runtime_model_state",
            "1 for the model's current state, 0 otherwise.",
            ["model", "state"],
            registry=r,
        )
        self.max_batch = Gauge(
            "outrider_runtime_max_batch_size", "Current dynamic batching limit.", ["model"], registry=r
        )
        self.load_seconds = Gauge(
            "outrider_runtime_model_load_seconds",
            "Time the last load (build + warm-up) took.",
            ["model"],
            registry=r,
        )

    def set_state(self, model: str, state: ModelState | None) -> None:
        """Set the one-hot model state gauge (None = unloaded, all zero)."""
        for s in ModelState:
            self.state.labels(model, s.value).set(1 if s is state else 0)


class GpuTelemetry(Collector):
    """A collector reading GPU utilisation and memory through NVML; empty on CPU-only nodes."""

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml: Any = nvml
        self._ok = False
        if nvml is None:
            try:
                import pynvml

                self._nvml = pynvml
            except ImportError:
                return
        try:
            self._nvml.nvmlInit()
            self._ok = True
        except Exception as exc:  # NVMLError_LibraryNotFound etc.: a CPU-only node
            log.info("no GPU telemetry: %s", exc)

    @property
    def available(self) -> bool:
        """Whether NVML initialised."""
        return self._ok

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield utilisation and memory gauges per GPU."""
        if not self._ok:
            return
        nv = self._nvml
        util = GaugeMetricFamily(
            "outrider_runtime_gpu_utilization_ratio", "GPU utilisation (0-1) from NVML.", labels=["gpu"]
        )
        mem = GaugeMetricFamily(
            "outrider_runtime_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"]
        )
        total = GaugeMetricFamily("outrider_runtime_gpu_memory_total_bytes", "GPU memory.", labels=["gpu"])
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                rates = nv.nvmlDeviceGetUtilizationRates(h)
                info = nv.nvmlDeviceGetMemoryInfo(h)
                util.add_metric([str(i)], float(rates.gpu) / 100.0)
                mem.add_metric([str(i)], float(info.used))
                total.add_metric([str(i)], float(info.total))
        except Exception as exc:
            log.warning("NVML read failed: %s", exc)
            return
        yield util
        yield mem
        yield total
