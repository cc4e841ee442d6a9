"""The direct autoregression: finds short periodic structure, forecasts only from the past, and
forecasts the same live as in the backtest."""

from __future__ import annotations

import numpy as np

from outrider_scheduler.forecast.autoreg import (
    MAX_LAGS,
    autoreg_forecasts,
    fit_autoreg,
    lag_count,
    lag_matrix,
)
from outrider_scheduler.forecast.baselines import simple_point_forecasts
from outrider_scheduler.forecast.series import StepSeries
from outrider_scheduler.forecast.service import DeploymentForecaster, ForecasterSettings


def _alternating(n: int = 600, seed: int = 5) -> np.ndarray:
    """A timer that fires every other bin (0, 4, 0, 4, ...) with a rare missed or doubled firing."""
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2 == 1, 4.0, 0.0)
    flip = rng.random(n) < 0.01
    y[flip] = np.where(y[flip] > 0, 0.0, 8.0)
    return np.asarray(y, dtype=np.float64)


def test_the_lag_count_is_two_horizons_capped() -> None:
    assert lag_count(5) == 10 and lag_count(1) == 2 and lag_count(300) == MAX_LAGS


def test_lags_are_the_bins_before_the_origin_newest_first() -> None:
    y = np.arange(10.0)
    x = lag_matrix(y, 3, np.array([5, 1, 10, 11], dtype=np.int64))
    np.testing.assert_array_equal(x[0], [4.0, 3.0, 2.0])
    assert x[1][0] == 0.0 and np.isnan(x[1][1:]).all()  # before the start
    np.testing.assert_array_equal(x[2], [9.0, 8.0, 7.0])
    assert np.isnan(x[3][0])  # origin 11 would need bin 10, which does not exist yet


def test_an_alternating_timer_is_forecast_in_both_phases_where_the_moving_average_cannot_be() -> None:
    y = _alternating()
    k = 5
    params = fit_autoreg(y, k, 500, 360)
    assert params is not None
    origins = np.arange(520, 590, dtype=np.int64)
    actual = np.array([y[i : i + k].mean() for i in origins])
    ar = params.forecast_rows(lag_matrix(y, params.lags, origins))
    ma = simple_point_forecasts(y, origins, k, 60)["moving_average"][0]
    # origins whose lags and window hold no missed or doubled firing
    clean = np.array(
        [(y[i - 10 : i + k] == np.where(np.arange(i - 10, i + k) % 2 == 1, 4.0, 0.0)).all() for i in origins]
    )
    assert clean.sum() > 30
    assert np.abs(ar - actual)[clean].max() < 0.15  # the window's phase decides 2.4 or 1.6: it knows which
    assert np.abs(ma - actual)[clean].min() > 0.3  # the moving average always says 2.0


def test_walk_forward_forecasts_use_nothing_after_the_origin() -> None:
    y = _alternating(900)
    k = 5
    origins = np.arange(1, len(y) + 1, dtype=np.int64)
    refits = list(range(60, len(y) + 1, 120))
    a, _, _ = autoreg_forecasts(y, origins, k, refits, 360)
    cut = 700
    y2 = y.copy()
    y2[cut:] = np.random.default_rng(1).permutation(y2[cut:]) * 3.0
    b, _, _ = autoreg_forecasts(y2, origins, k, refits, 360)
    rows = origins <= cut
    np.testing.assert_array_equal(a[rows], b[rows])
    assert np.isfinite(a[origins >= 60]).all() and np.isnan(a[origins < 60]).all()
    assert not np.allclose(a[origins > cut + 10], b[origins > cut + 10])  # so the check can fail


def test_the_live_forecast_equals_the_walk_forward_one() -> None:
    y = _alternating(900)
    k = 5
    origins = np.arange(1, len(y) + 1, dtype=np.int64)
    fc, _, _ = autoreg_forecasts(y, origins, k, [480], 360)
    params = fit_autoreg(y, k, 480, 360)
    assert params is not None
    for i in (480, 481, 600, 899):
        assert abs(params.forecast(y[:i]) - fc[i - 1]) < 1e-9


def test_too_little_or_broken_history_is_refused_not_guessed() -> None:
    y = _alternating(100)
    assert fit_autoreg(y, 5, 30, 360) is None  # 3 rows per coefficient are needed
    bad = y.copy()
    bad[50] = np.nan
    assert fit_autoreg(bad, 5, 100, 360) is None
    params = fit_autoreg(y, 5, 100, 360)
    assert params is not None and np.isnan(params.forecast(y[:5]))  # fewer bins than lags


def test_a_constant_or_idle_series_is_forecast_as_itself() -> None:
    for level in (0.0, 3.0):
        y = np.full(400, level)
        params = fit_autoreg(y, 5, 400, 360)
        assert params is not None
        assert abs(params.forecast(y) - level) < 1e-12


def test_the_live_forecaster_calibrates_and_uses_the_autoregression() -> None:
    y = np.tile(_alternating(600), 3) * 5.0  # 10-s bins of an alternating timer
    s = ForecasterSettings()
    fc = DeploymentForecaster("ns/timer", s)
    n = 1000  # under 3 h: no learned model yet, the simple candidates and the autoregression only
    fc.observe(StepSeries(0.0, 10, y[:n]))
    fc.refit(n * 10.0)
    fitted = fc._fitted
    assert fitted is not None and fitted.autoreg is not None and fitted.model is None
    assert np.isfinite(fitted.state.offsets["autoreg"]["mean_p90"])
    # it beats the moving average on this series, so it carries the median forecast
    assert fitted.state.weights["mean_p50"]["autoreg"] > 0.5, fitted.state.weights["mean_p50"]
    res = fc.predict(n * 10.0)
    assert res.forecasting
    rates = fc.series.rates  # type: ignore[union-attr]
    truth = 5.0 * (2.4 if n % 2 == 0 else 1.6) / 10.0  # the next window: 3 or 2 firings of 20 in 5 bins
    assert abs(fitted.autoreg.forecast(rates) - truth) < 0.2 * truth
