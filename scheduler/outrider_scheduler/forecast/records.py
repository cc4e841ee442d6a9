"""A learned model's record of forecasts by origin time, kept in arrays.

The live forecaster keeps a day and more of each learned model's forecasts (its walk-forward
record, which calibration and weighting score). As a dict of Python floats and tuples that was
about 200 bytes an origin, half of a deployment's memory; as arrays it is 32. Live forecasts
arrive one per prediction and are folded into the arrays in batches.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ForecastRecord"]

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

FOLD_EVERY = 64
"""Live forecasts held back before they are folded into the arrays (reads fold them at once)."""


class ForecastRecord:
    """Forecasts (mean p50, mean p90, peak p90) by origin time, oldest first, one per time."""

    def __init__(self) -> None:
        self._times: Array = np.empty(0)
        self._values: Array = np.empty((0, 3))
        self._new: list[tuple[float, float, float, float]] = []
        self._limit: int | None = None

    def __len__(self) -> int:
        self._fold()
        return len(self._times)

    def __contains__(self, origin_time: object) -> bool:
        if not isinstance(origin_time, float | int):
            return False
        self._fold()
        found, _ = self.lookup(np.array([float(origin_time)]))
        return bool(found[0])

    def put(self, origin_time: float, p50: float, p90: float, peak_p90: float, limit: int) -> None:
        """Record a live forecast (it replaces one already recorded at that time), keeping the
        newest ``limit`` forecasts."""
        self._new.append((origin_time, p50, p90, peak_p90))
        self._limit = limit
        if len(self._new) >= FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        if not self._new:
            return
        new = np.array(self._new, dtype=np.float64)
        self._new.clear()
        times = np.concatenate((self._times, new[:, 0]))
        values = np.concatenate((self._values, new[:, 1:]))
        order = np.argsort(times, kind="stable")  # the later write of a time comes last
        times, values = times[order], values[order]
        last = np.append(times[1:] != times[:-1], True)
        times, values = times[last], values[last]
        if self._limit is not None and len(times) > self._limit:
            times, values = times[-self._limit :], values[-self._limit :]
        self._times, self._values = times, values

    def prune_before(self, oldest: float) -> None:
        """Drop the forecasts of origins before ``oldest``."""
        self._fold()
        keep = self._times >= oldest
        self._times, self._values = self._times[keep], self._values[keep]

    def keep_unrecorded(self, times: Array, raw: dict[str, Array]) -> None:
        """Add ``raw``'s finite forecasts (``mean_p50``, ``mean_p90``, ``peak_p90``) at origin
        ``times`` where the record has none; one already recorded wins."""
        self._fold()
        p50 = raw["mean_p50"]
        add = np.isfinite(p50) & ~self.lookup(times)[0]
        if not add.any():
            return
        values = np.column_stack((p50[add], raw["mean_p90"][add], raw["peak_p90"][add]))
        all_times = np.concatenate((self._times, times[add]))
        order = np.argsort(all_times, kind="stable")
        self._times = all_times[order]
        self._values = np.concatenate((self._values, values))[order]

    def lookup(self, times: Array) -> tuple[BoolArray, Array]:
        """Which of ``times`` have a recorded forecast, and the forecasts (one row per time; rows
        of the times without one are undefined)."""
        self._fold()
        if not len(self._times):
            return np.zeros(len(times), dtype=bool), np.zeros((len(times), 3))
        idx = np.minimum(np.searchsorted(self._times, times), len(self._times) - 1)
        return self._times[idx] == times, self._values[idx]
