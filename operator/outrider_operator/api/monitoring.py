"""What the serving pods export for a deployment, and the deployment's own alert thresholds."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from outrider_operator.api.base import ApiModel

__all__ = [
    "AlertThresholds",
    "MonitoredMetric",
    "MonitoringSpec",
]


class MonitoredMetric(StrEnum):
    """Metrics the serving pods export for this deployment."""

    LATENCY_P99 = "latency_p99"
    THROUGHPUT = "throughput"
    GPU_UTILIZATION = "gpu_utilization"
    QUEUE_DEPTH = "queue_depth"
    BATCH_SIZE = "batch_size"


class AlertThresholds(ApiModel):
    """The deployment's own alert thresholds.

    The operator exports them as ``outrider_operator_alert_*`` gauges per deployment and the shipped
    alert rules compare each deployment's latency, error ratio and GPU utilisation against its own.
    """

    latency_p99_ms: int = Field(
        default=200, ge=1, le=600000, description="Alert when p99 latency exceeds this."
    )
    error_rate_percent: int = Field(
        default=5, ge=0, le=100, description="Alert when the failed request share exceeds this percentage."
    )
    gpu_utilization_percent: int = Field(
        default=95, ge=0, le=100, description="Alert when GPU utilisation stays above this percentage."
    )


class MonitoringSpec(ApiModel):
    """What the serving pods export and when to alert."""

    metrics: list[MonitoredMetric] = Field(
        default_factory=lambda: [
            MonitoredMetric.LATENCY_P99,
            MonitoredMetric.THROUGHPUT,
            MonitoredMetric.GPU_UTILIZATION,
        ],
        max_length=5,
        description="Metrics to export.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    alerts: AlertThresholds = Field(default_factory=AlertThresholds, description="Alert thresholds.")
