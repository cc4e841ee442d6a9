"""The live forecaster's result: the forecast summary the status API shows and its condition reasons."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REASONS", "ForecastResult"]

REASONS = ("Learned", "ColdStart", "InsufficientHistory", "MetricsUnavailable", "Error")
"""Reasons of the ``Forecasting`` condition."""


@dataclass(frozen=True)
class ForecastResult:
    """The forecast summary the status API shows, with the ``Forecasting`` condition."""

    deployment: str
    """``namespace/name`` of the InferenceDeployment."""
    horizon_seconds: int
    """Length of the forecast window."""
    p50_rps: float
    """Median of the mean request rate over the window, requests/s."""
    p90_rps: float
    """90th percentile of the mean request rate over the window, requests/s."""
    peak_p90_rps: float
    """90th percentile of the peak rate (busiest step bin) over the window, requests/s."""
    generated_at: float
    """Unix time the forecast was made."""
    forecasting: bool
    """Status of the ``Forecasting`` condition."""
    reason: str
    """One of ``REASONS``."""
    message: str = ""
    """Human-readable detail."""

    def condition(self) -> dict[str, str]:
        """The ``Forecasting`` condition (without transition time, which the operator tracks)."""
        return {
            "type": "Forecasting",
            "status": "True" if self.forecasting else "False",
            "reason": self.reason,
            "message": self.message,
        }
