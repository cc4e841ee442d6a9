"""The level model: gradient-boosted quantiles of the absolute rate, a candidate beside the learned model.

The learned model (``model.py`` over ``features.py``) forecasts log-ratios to the recent level from
scale-free features, so that its trees transfer between busy and quiet stretches. This one is the
model such a forecast is usually built as, and the one the forecaster's issue measured on a
held-out week (an untuned gradient-boosted quantile model): the same regressors with their
default size (31 leaves, 100 rounds at a rate of 0.1), on the absolute rates of the last steps,
the means over the last 1 to 240 minutes, the time of day and week, and the next window a day and
a week ago, predicting the window's mean and peak rate themselves. The clock is held back until
the history spans two days, as the learned model's is. Trees cannot forecast a level they have not
seen, so early in a history it is poor (the combination's significance test keeps it
out); where a service's level follows the clock more than its last minutes (independent bursts
around a daily curve) it is the better forecast, and the combination weighs its own quantiles like
any candidate's. See docs/forecaster.md, "The level model".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .features import DAY, LEVEL_CALENDAR_FEATURES, WEEK
from .model import LearnedModel, ModelSettings

__all__ = ["LEVEL_SETTINGS", "LevelFeatures", "level_rates", "level_row"]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LEVEL_SETTINGS = ModelSettings(
    max_iter=100,
    learning_rate=0.1,
    max_leaf_nodes=31,
    min_samples_leaf=20,
    max_rows=4_000,
    idle_split_seconds=0,
)
"""scikit-learn's defaults for the regressor, on at most 4,000 training rows (thinned evenly over
the history): 12,000 rows scored the same on the built weeks and cost 1.4 times the fit."""

LAGS = 10
"""Step rates before the origin used as features (30 scored the same and cost 1.4 times the fit)."""

MEAN_MINUTES = (1, 5, 15, 30, 60, 240)
"""Look-backs of the mean-rate features, minutes."""


class LevelFeatures:
    """Absolute-rate feature rows over one rate series; origin ``i`` sees ``rates[:i]`` only."""

    def __init__(self, rates: Array, t0: float, step_seconds: int, k: int) -> None:
        self.rates = rates
        self.t0 = t0
        self.step = step_seconds
        self.k = k
        self._cs = np.concatenate(([0.0], np.cumsum(rates)))
        self.names = [
            *(f"level_lag_{j}" for j in range(1, LAGS + 1)),
            *(f"level_mean_{m}min" for m in MEAN_MINUTES),
            *LEVEL_CALENDAR_FEATURES,
            "level_day_next",
            "level_week_next",
        ]

    def build(self, origins: IntArray) -> Array:
        """Feature rows at ``origins`` (NaN where the history is too short)."""
        rates, cs, k = self.rates, self._cs, self.k
        cols: list[Array] = []
        for lag in range(1, LAGS + 1):
            j = origins - lag
            cols.append(np.where(j >= 0, rates[np.maximum(j, 0)], np.nan))
        for minutes in MEAN_MINUTES:
            w = max(1, minutes * 60 // self.step)
            lo = np.maximum(origins - w, 0)
            cols.append((cs[origins] - cs[lo]) / np.maximum(origins - lo, 1))
        t = self.t0 + self.step * origins.astype(np.float64)
        cols.append(np.mod(t, DAY) / 3600.0)
        cols.append(np.mod(np.floor(t / DAY), 7))
        for season in (DAY, WEEK):
            j = origins - season // self.step
            # the window after the same time a season ago, where it had ended by the origin
            ok = (j >= 0) & (j + k <= origins)
            j0 = np.where(ok, j, 0)
            cols.append(np.where(ok, (cs[np.minimum(j0 + k, len(rates))] - cs[j0]) / k, np.nan))
        return np.column_stack(cols)


def level_row(rates: Array, t0: float, step_seconds: int, k: int) -> Array:
    """The feature row at the newest origin (``len(rates)``): ``LevelFeatures.build`` of that one
    origin, from slices of the history instead of its prefix sums (a live forecast needs one row, and
    a week of 10-s bins is 60,000 of them)."""
    i = len(rates)
    row = np.full(LAGS + len(MEAN_MINUTES) + 4, np.nan)
    lags = rates[max(0, i - LAGS) :][::-1]
    row[: len(lags)] = lags
    for c, minutes in enumerate(MEAN_MINUTES, start=LAGS):
        w = min(i, max(1, minutes * 60 // step_seconds))
        row[c] = rates[i - w :].mean() if w else 0.0
    t = t0 + step_seconds * float(i)
    clock = LAGS + len(MEAN_MINUTES)
    row[clock], row[clock + 1] = np.mod(t, DAY) / 3600.0, np.mod(np.floor(t / DAY), 7)
    for c, season in enumerate((DAY, WEEK), start=clock + 2):
        j = i - season // step_seconds
        if j >= 0 and j + k <= i:
            row[c] = rates[j : j + k].mean()
    return row[None, :]


def level_rates(model: LearnedModel, x: Array) -> dict[str, Array]:
    """The level model's forecasts (requests/s, never negative) for feature rows ``x``."""
    return {t: np.maximum(v, 0.0) for t, v in model.predict(x).items()}
