"""Exceptions raised by the forecaster.

The tree::

    ForecastError                  base of everything this package raises
    ├── TraceError                 a trace file is malformed (carries the file and line number)
    ├── InsufficientHistoryError   too little history for the horizon (carries what is needed)
    └── MetricsUnavailableError    the metrics source (Prometheus) is down or returned nothing

``TraceError`` and ``InsufficientHistoryError`` are permanent: retrying with the same input fails
again. ``MetricsUnavailableError`` is temporary: the service falls back and retries on its next
cycle; it never propagates out of the scheduler process.
"""

from __future__ import annotations

__all__ = ["ForecastError", "InsufficientHistoryError", "MetricsUnavailableError", "TraceError"]


class ForecastError(Exception):
    """Base class of every error raised by ``outrider_scheduler.forecast``."""


class TraceError(ForecastError):
    """A trace CSV is malformed; ``line`` is the 1-based line number in ``path`` (0: whole file)."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {problem}")


class InsufficientHistoryError(ForecastError):
    """There is too little history to forecast (or backtest) for the requested horizon."""

    def __init__(self, have_seconds: float, need_seconds: float, horizon_seconds: int) -> None:
        self.have_seconds = have_seconds
        self.need_seconds = need_seconds
        self.horizon_seconds = horizon_seconds
        super().__init__(
            f"history covers {have_seconds:.0f} s but at least {need_seconds:.0f} s are needed "
            f"for a {horizon_seconds} s horizon"
        )


class MetricsUnavailableError(ForecastError):
    """The metrics source could not be reached or returned no samples."""
