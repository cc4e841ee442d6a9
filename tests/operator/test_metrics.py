"""The operator's per-deployment alert-threshold gauges: set from the spec, dropped on deletion."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from outrider_operator.api.spec import AlertThresholds
from outrider_operator.metrics import OperatorMetrics


def _value(reg: CollectorRegistry, name: str, namespace: str, deployment: str) -> float | None:
    return reg.get_sample_value(name, {"namespace": namespace, "deployment": deployment})


def test_thresholds_are_exported_in_the_units_of_the_metrics_they_judge() -> None:
    reg = CollectorRegistry()
    metrics = OperatorMetrics.create(reg)
    metrics.set_alert_thresholds("ml", "a", AlertThresholds(latency_p99_ms=150, error_rate_percent=2))
    metrics.set_alert_thresholds("ml", "b", AlertThresholds())
    assert _value(reg, "outrider_operator_alert_latency_p99_seconds", "ml", "a") == 0.15
    assert _value(reg, "outrider_operator_alert_error_ratio", "ml", "a") == 0.02
    assert _value(reg, "outrider_operator_alert_gpu_utilization_ratio", "ml", "a") == 0.95
    assert _value(reg, "outrider_operator_alert_latency_p99_seconds", "ml", "b") == 0.2
    metrics.forget_deployment("ml", "a")
    metrics.forget_deployment("ml", "never-seen")  # no error for a deployment never exported
    assert _value(reg, "outrider_operator_alert_latency_p99_seconds", "ml", "a") is None
    assert _value(reg, "outrider_operator_alert_error_ratio", "ml", "a") is None
    assert _value(reg, "outrider_operator_alert_latency_p99_seconds", "ml", "b") == 0.2
