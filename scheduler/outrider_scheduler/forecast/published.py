"""The forecasts a deployment's forecaster published, and its live accuracy over them.

The service scores every deployment after every forecast, so the score is computed with array
operations over a fixed buffer rather than a Python loop over the published rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from .ensemble import covered, pinball
from .series import StepSeries

__all__ = ["PublishedForecasts"]

Array = npt.NDArray[np.float64]


class PublishedForecasts:
    """The last ``capacity`` published forecasts, each ``(origin time, p50, p90, peak p90)``."""

    def __init__(self, capacity: int) -> None:
        self._rows = np.zeros((max(capacity, 1), 4))
        self._count = 0

    def __len__(self) -> int:
        return min(self._count, len(self._rows))

    def append(self, origin_time: float, p50: float, p90: float, peak_p90: float) -> None:
        """Keep one forecast, dropping the oldest once the buffer is full."""
        self._rows[self._count % len(self._rows)] = (origin_time, p50, p90, peak_p90)
        self._count += 1

    def rows(self) -> Array:
        """The kept forecasts, oldest first, one row each."""
        cap = len(self._rows)
        if self._count <= cap:
            return self._rows[: self._count]
        j = self._count % cap
        return np.concatenate((self._rows[j:], self._rows[:j]))

    def accuracy(self, series: StepSeries, k: int, window: int, eps: float) -> dict[str, float]:
        """Accuracy of the last ``window`` forecasts whose ``k``-step windows ``series`` covers in
        full: p90 coverage of the mean rate and of the peak, and the pinball losses of the mean's p50
        and p90 relative to the mean rate (empty where no window is over yet)."""
        step = series.step_seconds
        arr = self.rows()
        end = series.t0 + len(series.y) * step
        arr = arr[(arr[:, 0] + k * step <= end) & (arr[:, 0] >= series.t0)][-window:]
        if not len(arr):
            return {}
        idx = np.round((arr[:, 0] - series.t0) / step).astype(np.int64)
        windows = sliding_window_view(series.y, k)[idx] / step
        mean, peak = windows.mean(axis=1), windows.max(axis=1)
        scale = max(float(mean.mean()), eps)
        return {
            "windows": float(len(arr)),
            "coverage_p90": float(np.mean(covered(mean, arr[:, 2], step))),
            "peak_under_rate": float(np.mean(covered(peak, arr[:, 3], step))),
            "pinball_p50": float(pinball(mean, arr[:, 1], 0.5).mean() / scale),
            "pinball_p90": float(pinball(mean, arr[:, 2], 0.9).mean() / scale),
        }
