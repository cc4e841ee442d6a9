"""The step grid every forecast works on, and the forecast targets.

Forecasts are made at *origins* on a grid of ``step_seconds`` bins: the bin width of the input, or
the smallest multiple of it that is at least 10 s (peaks are measured in bins no finer than 10 s).
At origin ``i`` the history is ``y[:i]`` and the forecast window is ``y[i:i+k]`` with
``k = horizon_seconds / step_seconds``. Targets are the mean rate over the window and the peak rate
(the busiest step bin of the window), both in requests per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from .errors import ForecastError
from .traces import Trace

__all__ = [
    "MIN_PEAK_BIN_SECONDS",
    "StepSeries",
    "effective_horizon",
    "peak_targets",
    "step_seconds_for",
    "to_step_series",
]

MIN_PEAK_BIN_SECONDS = 10
"""Peaks are measured in bins of at least this many seconds."""

Array = npt.NDArray[np.float64]


def step_seconds_for(bin_seconds: int, horizon_seconds: int | None = None) -> int:
    """The step grid width for an input bin width: the smallest multiple of it that is >= 10 s.

    With a horizon, the smallest such multiple that also divides the horizon is preferred (4 s bins
    and a 100 s horizon give 20 s steps rather than 12 s); if none does (7 s bins, 300 s), the plain
    step is returned and ``effective_horizon`` rounds the horizon to whole steps.
    """
    if bin_seconds <= 0:
        raise ForecastError(f"bin width must be positive, got {bin_seconds}")
    step = bin_seconds * max(1, math.ceil(MIN_PEAK_BIN_SECONDS / bin_seconds))
    if horizon_seconds is None or horizon_seconds % step == 0:
        return step
    for mult in range(step, horizon_seconds + 1, bin_seconds):
        if horizon_seconds % mult == 0:
            return mult
    return step


def effective_horizon(horizon_seconds: int, step_seconds: int) -> int:
    """The horizon rounded to a whole number of steps (at least one)."""
    return max(1, round(horizon_seconds / step_seconds)) * step_seconds


@dataclass(frozen=True)
class StepSeries:
    """Counts on the step grid: ``y[i]`` arrivals in ``[t0 + i*step, t0 + (i+1)*step)``."""

    t0: float
    """Start of bin 0, seconds (Unix time in production, trace time in backtests)."""
    step_seconds: int
    """Width of a step bin, seconds."""
    y: Array
    """Arrivals per step bin."""

    @property
    def rates(self) -> Array:
        """Arrival rate per step bin, requests per second."""
        return self.y / self.step_seconds

    def horizon_steps(self, horizon_seconds: int) -> int:
        """Number of step bins in a horizon (the horizon must be a whole number of steps)."""
        if horizon_seconds < self.step_seconds or horizon_seconds % self.step_seconds:
            raise ForecastError(
                f"horizon {horizon_seconds} s must be a positive multiple of the {self.step_seconds} s step"
            )
        return horizon_seconds // self.step_seconds

    def times(self) -> Array:
        """Start time of every step bin, seconds."""
        return self.t0 + self.step_seconds * np.arange(len(self.y), dtype=np.float64)


def to_step_series(trace: Trace, phase_bins: int = 0, step_seconds: int | None = None) -> StepSeries:
    """Aggregate a trace onto its step grid, starting ``phase_bins`` input bins into the trace.

    When the step is wider than the input bin, different phases give interleaved origin grids; a
    partial step at either end is dropped (never filled with data from elsewhere).
    """
    step = step_seconds or step_seconds_for(trace.bin_seconds)
    if step % trace.bin_seconds:
        raise ForecastError(f"step {step} s is not a multiple of the {trace.bin_seconds} s bins")
    per = step // trace.bin_seconds
    if not 0 <= phase_bins < per:
        raise ForecastError(f"phase must be in 0..{per - 1}, got {phase_bins}")
    counts = trace.counts[phase_bins:]
    n = len(counts) // per
    y = counts[: n * per].reshape(n, per).sum(axis=1) if per > 1 else counts[:n].copy()
    return StepSeries(t0=float(trace.t0 + phase_bins * trace.bin_seconds), step_seconds=step, y=y)


def peak_targets(y: Array, k: int) -> tuple[Array, Array]:
    """Window sums and window maxima for every origin ``i`` in ``0..len(y)-k`` (arrays of that length)."""
    if len(y) < k:
        empty = np.zeros(0)
        return empty, empty
    windows = sliding_window_view(y, k)
    return windows.sum(axis=1), windows.max(axis=1)
