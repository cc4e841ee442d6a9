"""Prometheus metrics of the extender, registered on an injectable CollectorRegistry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ExtenderMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ExtenderMetrics:
    """Calls and latency per verb, nodes filtered per reason, budget overruns, cache size."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "outrider_extender_requests_total",
            "Extender calls by verb and outcome (ok, bad_request, error).",
            ["verb", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "outrider_extender_request_duration_seconds",
            "Time to answer an extender call, by verb.",
            ["verb"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.filtered = Counter(
            "outrider_extender_nodes_filtered_total",
            "Nodes rejected by the filter verb, by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.budget_exhausted = Counter(
            "outrider_extender_budget_exhausted_total",
            "Calls that hit the time budget and returned the best answer so far.",
            ["verb"],
            registry=self.registry,
        )
        self.nodes_without_inventory = Counter(
            "outrider_extender_nodes_without_inventory_total",
            "Node evaluations that found no usable GPU inventory (scored the minimum).",
            registry=self.registry,
        )
        self.cache_nodes = Gauge(
            "outrider_extender_cache_nodes",
            "Nodes in the extender's node cache.",
            registry=self.registry,
        )

    def track_cache_size(self, size: Callable[[], int]) -> None:
        """Report the cache size lazily at scrape time."""
        self.cache_nodes.set_function(lambda: float(size()))
