"""Prometheus metrics of the operator (an injectable registry, so tests build a fresh one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["OperatorMetrics"]


@dataclass
class OperatorMetrics:
    """Counters and histograms of reconciliation."""

    registry: CollectorRegistry
    reconciles: Counter
    reconcile_seconds: Histogram
    children_applied: Counter
    invalid_specs: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> OperatorMetrics:
        """Register the operator's metrics in ``registry`` (a new one by default)."""
        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=reg,
            reconciles=Counter(
                "outrider_operator_reconciles_total",
                "Reconciliations by result (ok, invalid_spec, error).",
                ["result"],
                registry=reg,
            ),
            reconcile_seconds=Histogram(
                "outrider_operator_reconcile_duration_seconds",
                "Time to reconcile one InferenceDeployment.",
                registry=reg,
                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            ),
            children_applied=Counter(
                "outrider_operator_children_changed_total",
                "Child objects created or changed by server-side apply (drift repairs included), by kind.",
                ["kind"],
                registry=reg,
            ),
            invalid_specs=Gauge(
                "outrider_operator_invalid_specs",
                "InferenceDeployments currently reporting InvalidSpec.",
                registry=reg,
            ),
        )
