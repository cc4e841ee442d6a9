"""Holt's additive damped-trend exponential smoothing: fit, filter and the window-mean forecast.

The same three pieces serve the backtest's ``ets`` baseline (parameters refitted on a schedule and the
state filtered through the whole trace) and the live forecaster's ``ets`` candidate (parameters
refitted with the learned model, the state kept at the last refit and advanced by the few bins
observed since). Parameters come from statsmodels; the filter is the textbook recursion

    level_t = alpha * y_t + (1 - alpha) * (level_{t-1} + phi * trend_{t-1})
    trend_t = beta * (level_t - level_{t-1}) + (1 - beta) * phi * trend_{t-1}

and the forecast of the mean over the next ``k`` bins is ``level + trend * mean_h(sum_{j<=h} phi^j)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

__all__ = ["DEFAULT_PARAMS", "EtsParams", "EtsState", "damping_factor", "filter_ets", "fit_ets"]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EtsParams:
    """Smoothing parameters of the damped-trend model."""

    alpha: float
    """Level smoothing."""
    beta: float
    """Trend smoothing."""
    phi: float
    """Trend damping."""


DEFAULT_PARAMS = EtsParams(0.3, 0.05, 0.9)
"""Used where no fit has succeeded yet (plain smoothing with a weak, damped trend)."""


@dataclass(frozen=True)
class EtsState:
    """The filter's state after consuming every bin that ended by ``time``."""

    params: EtsParams
    """Parameters in force."""
    time: float
    """End of the last consumed bin (seconds), so that a history trimmed at its start finds it again."""
    level: float
    """Smoothed level."""
    trend: float
    """Smoothed trend."""

    def advance(self, rates: Array, step_seconds: float) -> EtsState:
        """The state after also consuming ``rates``: the bins after ``time``, in order."""
        level, trend = filter_ets(
            np.asarray(rates, dtype=np.float64), self.params, 0, (self.level, self.trend)
        )
        return EtsState(
            self.params, self.time + len(rates) * step_seconds, float(level[-1]), float(trend[-1])
        )

    def forecast(self, k: int) -> float:
        """Forecast of the mean rate over the next ``k`` bins (never negative)."""
        return max(self.level + self.trend * float(damping_factor(np.array([self.params.phi]), k)[0]), 0.0)


def fit_ets(seg: Array) -> EtsParams | None:
    """Fit the damped-trend model on ``seg`` with statsmodels; None when it fails or is not finite."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    if len(seg) < 10 or not np.isfinite(seg).all():
        return None
    try:
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")
            res = ExponentialSmoothing(
                np.asarray(seg, dtype=np.float64),
                trend="add",
                damped_trend=True,
                initialization_method="estimated",
            ).fit()
        p = res.params
        out = EtsParams(float(p["smoothing_level"]), float(p["smoothing_trend"]), float(p["damping_trend"]))
    except Exception:  # statsmodels raises many kinds on degenerate data: the caller keeps what it had
        return None
    if not all(np.isfinite([out.alpha, out.beta, out.phi])):
        return None
    return out


def damping_factor(phi: Array, k: int) -> Array:
    """``mean over h = 1..k of sum_{j=1..h} phi^j`` for each damping value in ``phi``."""
    hs = np.arange(1, k + 1, dtype=np.float64)
    powers = np.asarray(phi, dtype=np.float64)[:, None] ** hs[None, :]
    return np.asarray(np.cumsum(powers, axis=1).mean(axis=1), dtype=np.float64)


def filter_ets(
    rates: Array, params: EtsParams, start: int = 0, state: tuple[float, float] | None = None
) -> tuple[Array, Array]:
    """Levels and trends after consuming ``rates[:t]`` for ``t = start..len(rates)``.

    The filter starts from ``state`` (level, trend), else at ``rates[start]`` with no trend; entry
    ``j`` of the result is the state at row ``start + j``.
    """
    n = len(rates)
    m = n - start + 1
    level = np.empty(m)
    trend = np.empty(m)
    if state is not None:
        lv, tr = state
    else:
        lv, tr = (float(rates[start]) if start < n else 0.0), 0.0
    a, b, phi = params.alpha, params.beta, params.phi
    for j, y in enumerate(rates[start:].tolist()):
        level[j], trend[j] = lv, tr
        prev = lv
        lv = a * y + (1 - a) * (lv + phi * tr)
        tr = b * (lv - prev) + (1 - b) * phi * tr
    level[m - 1], trend[m - 1] = lv, tr
    return level, trend
