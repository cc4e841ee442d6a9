"""Prometheus metrics of the operator (an injectable registry, so tests build a fresh one)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from outrider_operator.api.spec import AlertThresholds

__all__ = ["OperatorMetrics"]

_PER_DEPLOYMENT = ["namespace", "deployment"]


@dataclass
class OperatorMetrics:
    """Counters and histograms of reconciliation."""

    registry: CollectorRegistry
    reconciles: Counter
    reconcile_seconds: Histogram
    children_applied: Counter
    invalid_specs: Gauge
    alert_latency_p99_seconds: Gauge
    alert_error_ratio: Gauge
    alert_gpu_utilization_ratio: Gauge

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
            alert_latency_p99_seconds=Gauge(
                "outrider_operator_alert_latency_p99_seconds",
                "Each deployment's spec.monitoring.alerts.latencyP99Ms in seconds (an alert threshold).",
                _PER_DEPLOYMENT,
                registry=reg,
            ),
            alert_error_ratio=Gauge(
                "outrider_operator_alert_error_ratio",
                "Each deployment's spec.monitoring.alerts.errorRatePercent as a ratio (an alert threshold).",
                _PER_DEPLOYMENT,
                registry=reg,
            ),
            alert_gpu_utilization_ratio=Gauge(
                "outrider_operator_alert_gpu_utilization_ratio",
                "Each deployment's spec.monitoring.alerts.gpuUtilizationPercent as a ratio (a threshold).",
                _PER_DEPLOYMENT,
                registry=reg,
            ),
        )

    def _thresholds(self) -> tuple[Gauge, Gauge, Gauge]:
        return self.alert_latency_p99_seconds, self.alert_error_ratio, self.alert_gpu_utilization_ratio

    def set_alert_thresholds(self, namespace: str, deployment: str, alerts: AlertThresholds) -> None:
        """Export one deployment's alert thresholds, in the units its metrics use (seconds, ratios)."""
        self.alert_latency_p99_seconds.labels(namespace, deployment).set(alerts.latency_p99_ms / 1000)
        self.alert_error_ratio.labels(namespace, deployment).set(alerts.error_rate_percent / 100)
        self.alert_gpu_utilization_ratio.labels(namespace, deployment).set(
            alerts.gpu_utilization_percent / 100
        )

    def forget_deployment(self, namespace: str, deployment: str) -> None:
        """Drop a deleted deployment's series, so the exposition does not grow with churn."""
        for gauge in self._thresholds():
            with contextlib.suppress(KeyError):  # never set (its spec was never valid)
                gauge.remove(namespace, deployment)
