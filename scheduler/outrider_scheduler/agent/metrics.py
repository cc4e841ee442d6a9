"""Prometheus metrics of the node agent, on an injectable CollectorRegistry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from outrider_operator.api.inventory import GpuInventory

__all__ = ["AgentMetrics"]


class AgentMetrics:
    """Per-GPU utilisation and memory, GPU count, CPU-only flag and publish outcomes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["gpu", "uuid", "product"]
        self.utilization = Gauge(
            "outrider_agent_gpu_utilization_ratio",
            "Recent SM utilisation, 0..1.",
            labels,
            registry=self.registry,
        )
        self.memory_used = Gauge(
            "outrider_agent_gpu_memory_used_bytes", "GPU memory in use.", labels, registry=self.registry
        )
        self.memory_total = Gauge(
            "outrider_agent_gpu_memory_total_bytes", "GPU memory in total.", labels, registry=self.registry
        )
        self.gpus = Gauge("outrider_agent_gpus", "GPUs discovered on this node.", registry=self.registry)
        self.cpu_only = Gauge(
            "outrider_agent_cpu_only",
            "1 when no GPU could be discovered (see logs for why).",
            registry=self.registry,
        )
        self.cached_models = Gauge(
            "outrider_agent_cached_models",
            "Models whose weights are in the node cache.",
            registry=self.registry,
        )
        self.publishes = Counter(
            "outrider_agent_publishes_total",
            "Inventory publish attempts by result (patched, skipped, failed).",
            ["result"],
            registry=self.registry,
        )

    def observe(self, inventory: GpuInventory) -> None:
        """Set the gauges from one inventory."""
        mib = 1024 * 1024
        self.utilization.clear()
        self.memory_used.clear()
        self.memory_total.clear()
        for g in inventory.gpus:
            key = (str(g.index), g.uuid, g.short_product)
            self.utilization.labels(*key).set(g.utilization)
            self.memory_used.labels(*key).set((g.memory_total_mib - g.memory_free_mib) * mib)
            self.memory_total.labels(*key).set(g.memory_total_mib * mib)
        self.gpus.set(len(inventory.gpus))
        self.cpu_only.set(0 if inventory.gpus else 1)
        self.cached_models.set(len(inventory.cached_models))
