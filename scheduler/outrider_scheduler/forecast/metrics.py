"""Prometheus metrics the forecaster publishes about its forecasts and its own accuracy.

All metrics are registered on an injectable ``CollectorRegistry`` (tests build a fresh one).
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .ensemble import TARGETS

__all__ = ["ForecastMetrics"]


class ForecastMetrics:
    """The forecaster's metrics; one instance per registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.forecast = Gauge(
            "outrider_forecaster_forecast_requests_per_second",
            "Latest forecast for the next horizon: target is mean_p50, mean_p90 or peak_p90.",
            ["deployment", "target"],
            registry=r,
        )
        self.coverage = Gauge(
            "outrider_forecaster_p90_coverage_ratio",
            "Share of recent resolved windows whose actual mean rate was at or under the forecast p90.",
            ["deployment"],
            registry=r,
        )
        self.peak_coverage = Gauge(
            "outrider_forecaster_peak_p90_coverage_ratio",
            "Share of recent resolved windows whose actual peak rate was at or under the peak p90.",
            ["deployment"],
            registry=r,
        )
        self.pinball = Gauge(
            "outrider_forecaster_pinball_loss_ratio",
            "Recent mean pinball loss of the forecasts divided by the recent mean rate.",
            ["deployment", "target"],
            registry=r,
        )
        self.learned = Gauge(
            "outrider_forecaster_learned_model_active",
            "1 when the learned model is a candidate, 0 during cold start (simple predictors only).",
            ["deployment"],
            registry=r,
        )
        self.forecasting = Gauge(
            "outrider_forecaster_forecasting_status",
            "1 for the current reason of the Forecasting condition (ColdStart, Learned, ...), else 0.",
            ["deployment", "reason"],
            registry=r,
        )
        self.refit_seconds = Histogram(
            "outrider_forecaster_refit_duration_seconds",
            "Time to refit one deployment's forecaster in the background.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=r,
        )
        self.predict_seconds = Histogram(
            "outrider_forecaster_predict_duration_seconds",
            "Time to forecast one deployment.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1),
            registry=r,
        )
        self.calibration_age = Gauge(
            "outrider_forecaster_calibration_age_seconds",
            "Age of the calibration a forecast used: seconds since the deployment's last refit or "
            "recalibration (due every --recalibrate-seconds; more when the background refits fall behind).",
            ["deployment"],
            registry=r,
        )
        self.source_errors = Counter(
            "outrider_forecaster_source_errors_total",
            "Failed reads from the metrics source (Prometheus).",
            ["deployment"],
            registry=r,
        )

    def set_reason(self, deployment: str, reason: str, reasons: tuple[str, ...]) -> None:
        """Set the one-hot Forecasting reason gauge of ``deployment``."""
        for r in reasons:
            self.forecasting.labels(deployment=deployment, reason=r).set(1.0 if r == reason else 0.0)

    def forget(self, deployment: str, reasons: tuple[str, ...]) -> None:
        """Drop every series of ``deployment`` (it is no longer forecast): a gauge left behind would
        hold its last value, and an alert on it would never clear."""
        per_deployment = (
            self.learned,
            self.coverage,
            self.peak_coverage,
            self.calibration_age,
            self.source_errors,
        )
        series: list[tuple[Gauge | Counter, tuple[str, ...]]] = [(m, (deployment,)) for m in per_deployment]
        series += [(self.forecast, (deployment, t)) for t in TARGETS]
        series += [(self.pinball, (deployment, t)) for t in ("mean_p50", "mean_p90")]
        series += [(self.forecasting, (deployment, r)) for r in reasons]
        for metric, labels in series:
            with contextlib.suppress(KeyError):  # never set for this deployment
                metric.remove(*labels)
