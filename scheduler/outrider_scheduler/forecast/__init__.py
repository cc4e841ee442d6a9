"""Outrider's load forecaster: request rate over the next horizon, per InferenceDeployment.

Public facade:

* ``ForecastResult``, ``ForecasterService``, ``DeploymentForecaster``, ``ForecasterSettings``: the
  live forecaster (``service``), fed by ``PrometheusSource`` (``prometheus``).
* ``run_backtest``, ``BacktestSettings``: rolling-origin backtests (``backtest``).
* ``load_trace``, ``Trace``: trace CSV loading and validation (``traces``).
* The errors of ``errors``.
"""

from __future__ import annotations

from .errors import ForecastError, InsufficientHistoryError, MetricsUnavailableError, TraceError
from .traces import Trace, load_trace

__all__ = [
    "BacktestSettings",
    "DeploymentForecaster",
    "ForecastError",
    "ForecastResult",
    "ForecasterService",
    "ForecasterSettings",
    "InsufficientHistoryError",
    "MetricsUnavailableError",
    "PrometheusSource",
    "Trace",
    "TraceError",
    "load_trace",
    "run_backtest",
]


def __getattr__(name: str) -> object:
    """Import the heavier modules (scikit-learn, statsmodels) only when they are used."""
    if name in ("ForecastResult", "ForecasterService", "DeploymentForecaster", "ForecasterSettings"):
        from . import service

        return getattr(service, name)
    if name == "PrometheusSource":
        from .prometheus import PrometheusSource

        return PrometheusSource
    if name in ("run_backtest", "BacktestSettings"):
        from . import backtest

        return getattr(backtest, name)
    raise AttributeError(name)
