"""Holt's damped trend as a live candidate: one filter for the backtest, the refit and predict."""

from __future__ import annotations

import numpy as np

from outrider_scheduler.forecast.baselines import ets_forecasts
from outrider_scheduler.forecast.ets import (
    DEFAULT_PARAMS,
    EtsParams,
    EtsState,
    damping_factor,
    filter_ets,
    fit_ets,
)


def _series(n: int = 2000, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.asarray(50 + 0.02 * t + 10 * np.sin(t / 150) + rng.normal(0, 3, n), dtype=np.float64)


def test_advancing_a_state_equals_filtering_through() -> None:
    y = _series()
    p = EtsParams(0.4, 0.1, 0.9)
    level, trend = filter_ets(y, p)
    mid = EtsState(p, 1500 * 10.0, float(level[1500]), float(trend[1500]))
    end = mid.advance(y[1500:], 10)
    assert end.time == len(y) * 10.0
    assert abs(end.level - level[-1]) < 1e-9 and abs(end.trend - trend[-1]) < 1e-9


def test_the_window_mean_forecast_matches_the_backtest_baseline() -> None:
    y = _series()
    k = 30
    origins = np.arange(1, len(y) + 1, dtype=np.int64)
    fc, _, _ = ets_forecasts(y, origins, k, [600], 600)
    p = fit_ets(y[:600])
    assert p is not None
    level, trend = filter_ets(y, p)
    mine = level[origins] + trend[origins] * damping_factor(np.full(len(origins), p.phi), k)
    # the backtest switches to the fitted parameters at the refit; from there on the states agree
    # up to the parameter switch's memory, which a damped filter forgets
    late = origins > 1200
    assert np.allclose(fc[late], mine[late], rtol=1e-3)
    assert np.isnan(fc[origins < 600]).all()
    state = EtsState(p, len(y) * 10.0, float(level[-1]), float(trend[-1]))
    assert abs(state.forecast(k) - mine[-1]) < 1e-9


def test_a_damped_trend_forecast_is_between_the_level_and_the_undamped_trend() -> None:
    s = EtsState(EtsParams(0.5, 0.2, 0.8), 0.0, 100.0, 2.0)
    f = s.forecast(10)
    assert 100.0 < f < 100.0 + 2.0 * 5.5  # undamped: the mean of 1..10 steps of trend
    assert EtsState(DEFAULT_PARAMS, 0.0, 1.0, -5.0).forecast(10) == 0.0  # never negative


def test_a_fit_on_too_little_or_bad_data_says_none() -> None:
    assert fit_ets(np.ones(5)) is None
    bad = _series(100)
    bad[3] = np.nan
    assert fit_ets(bad) is None
    p = fit_ets(_series(800))
    assert p is not None and 0 <= p.alpha <= 1 and 0 <= p.phi <= 1
