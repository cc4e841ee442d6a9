"""Conformal calibration and online weighting of candidates."""

from __future__ import annotations

import numpy as np

from outrider_scheduler.forecast.baselines import Candidate, point_candidate
from outrider_scheduler.forecast.ensemble import (
    TARGETS,
    EnsembleOutput,
    EnsembleSettings,
    run_ensemble,
    weighted_lagged_quantiles,
    weighted_mean,
)


def _setup(
    n: int = 3000, k: int = 5, seed: int = 1
) -> tuple[dict[str, np.ndarray], np.ndarray, list[Candidate]]:
    rng = np.random.default_rng(seed)
    level = 100 + 30 * np.sin(np.arange(n) / 200)
    actual = level + rng.normal(0, 5, n)
    actual[-k:] = np.nan  # windows not over yet
    rate = {"mean_p50": actual, "mean_p90": actual, "peak_p90": actual + 10}
    scale = np.full(n, 100.0)
    good = point_candidate("moving_average", level)
    bad = point_candidate("last_value", level + rng.normal(0, 20, n))
    return rate, scale, [good, bad]


def test_conformal_quantiles_are_calibrated() -> None:
    rate, scale, cands = _setup()
    out = run_ensemble(cands, rate, scale, 5, 60, EnsembleSettings(calib_window_seconds=600 * 60))
    ok = np.isfinite(rate["mean_p50"]) & np.isfinite(out.final["mean_p90"])
    ok[:500] = False
    cover = np.mean(rate["mean_p50"][ok] <= out.final["mean_p90"][ok])
    median = np.mean(rate["mean_p50"][ok] <= out.final["mean_p50"][ok])
    assert 0.86 <= cover <= 0.94
    assert 0.44 <= median <= 0.56


def test_weights_prefer_the_better_candidate_and_state_reproduces_rows() -> None:
    rate, scale, cands = _setup()
    out = run_ensemble(cands, rate, scale, 5, 60)
    row = 2500
    assert out.weights["mean_p90"]["moving_average"][row] > 0.9
    state = out.state_at(row)
    raw = {c.name: {t: float(c.f[t][row]) for t in TARGETS} for c in cands}
    applied = state.apply(raw, float(scale[row]))
    for t in TARGETS:
        assert (
            applied[t] == np.float64(out.final[t][row]).item() or abs(applied[t] - out.final[t][row]) < 1e-9
        )


def test_the_weighted_mean_leaves_out_missing_forecasts_and_unweighted_candidates() -> None:
    """Rows and scalars alike: a candidate without a forecast or weight drops out, the rest are
    renormalised, and a row with none left is NaN."""
    weights = {"a": np.array([0.5, 0.5, 0.0, 0.0]), "b": np.array([0.5, 0.5, 1.0, 0.0]), "c": 0.0}
    forecasts = {"a": np.array([10.0, np.nan, 1.0, 1.0]), "b": np.array([20.0, 4.0, np.nan, 1.0])}
    out = weighted_mean(weights, forecasts)
    np.testing.assert_array_equal(out[:2], [15.0, 4.0])
    assert np.isnan(out[2:]).all()
    assert float(weighted_mean({"a": 3.0, "b": 1.0}, {"a": 2.0, "b": 6.0})) == 3.0
    assert np.isnan(weighted_mean({"a": 1.0}, {"b": 6.0}))
    # row by row in plain floats (the live path) gives the rows' values exactly
    rng = np.random.default_rng(2)
    w = {m: np.where(rng.random(50) < 0.3, 0.0, rng.random(50)) for m in "abcde"}
    f = {m: np.where(rng.random(50) < 0.2, np.nan, rng.normal(50, 10, 50)) for m in "abcd"}
    rows = weighted_mean(w, f)
    assert np.isnan(rows).any() and np.isfinite(rows).any()
    for i in range(50):
        one = weighted_mean({m: float(v[i]) for m, v in w.items()}, {m: float(v[i]) for m, v in f.items()})
        assert one == rows[i] or (np.isnan(one) and np.isnan(rows[i]))


def test_fallback_before_any_loss_history() -> None:
    rate, scale, cands = _setup()
    out = run_ensemble(cands, rate, scale, 5, 60)
    assert not out.warm[:5].any()
    first = int(np.argmax(np.isfinite(out.final["mean_p50"])))
    assert out.weights["mean_p50"]["moving_average"][first] == 1.0


def test_weighted_quantile_equals_the_plain_quantile_with_equal_weights() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=400)
    x[50:60] = np.nan
    out = weighted_lagged_quantiles(x, 100, 10, 7, (0.9,), half_life=1e12)[0]
    for i in (17, 120, 250, 399):
        w = x[max(0, i - 7 - 99) : i - 7 + 1]
        w = w[np.isfinite(w)]
        assert out[i] == np.quantile(w, 0.9, method="inverted_cdf")
    assert np.isnan(out[:16]).all()  # fewer than 10 resolved values


def test_weighted_quantile_uses_no_value_newer_than_the_lag() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=500)
    y = x.copy()
    y[300:] = 50.0  # values that resolve only at row 300 + lag
    a = weighted_lagged_quantiles(x, 200, 10, 20, (0.9,), 30.0, stride=6)[0]
    b = weighted_lagged_quantiles(y, 200, 10, 20, (0.9,), 30.0, stride=6)[0]
    np.testing.assert_array_equal(a[:320], b[:320])
    assert b[-1] == 50.0 and a[-1] < 5.0


def test_recent_scores_weigh_more() -> None:
    x = np.concatenate((np.full(300, 2.0), np.zeros(100)))  # the error level drops at row 300
    plain = weighted_lagged_quantiles(x, 360, 10, 0, (0.9,), 1e12)[0]
    recent = weighted_lagged_quantiles(x, 360, 10, 0, (0.9,), 30.0)[0]
    assert plain[-1] == 2.0  # three quarters of the window still holds the old level
    assert recent[-1] == 0.0  # a hundred rows is more than three half-lives
    held = weighted_lagged_quantiles(x, 360, 10, 0, (0.9,), 30.0, stride=50)[0]
    assert held[-1] == recent[-1]  # the last row is always computed
    assert (held[-50:-1] == held[-50]).all()  # results are held between recomputations


def test_the_learned_model_must_beat_the_moving_average_by_more_than_a_simple_candidate() -> None:
    # two candidates with the same small edge over the moving average: the simple one is weighted
    # as soon as its mean loss is lower, the learned one only once the edge is significant
    rng = np.random.default_rng(4)
    n, k = 600, 5
    level = 100 + 30 * np.sin(np.arange(n) / 50)
    actual = level + rng.normal(0, 5, n)
    rate = {"mean_p50": actual, "mean_p90": actual, "peak_p90": actual + 10}
    scale = np.full(n, 100.0)
    ma = point_candidate("moving_average", level + rng.normal(0, 4, n))
    edge = level + rng.normal(0, 3.8, n)
    simple = point_candidate("ets", edge)
    learned = point_candidate("outrider_gbm", edge.copy())
    out = run_ensemble(
        [ma, simple, learned], rate, scale, k, 60, EnsembleSettings(loss_window_seconds=40 * 60)
    )
    w = out.weights["mean_p90"]
    late = slice(200, n - k)
    assert np.mean(w["ets"][late] > 0) > np.mean(w["outrider_gbm"][late] > 0)


def test_a_timer_forecast_converging_on_its_rate_from_below_covers_it() -> None:
    from outrider_scheduler.forecast.ensemble import covered

    # 4 requests every 60-s step: 0.0666667 req/s; an ETS level that converged to 0.06666596 is
    # 4.4e-5 requests under per step (rounding, not a miss); 0.01 requests under is a miss
    actual = np.full(3, 4 / 60)
    assert covered(actual, np.full(3, 0.06666596), 60.0).all()
    assert covered(actual, actual, 60.0).all()
    assert not covered(actual, actual - 0.01 / 60, 60.0).any()


def _heteroscedastic(n: int, k: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Actual rates whose spread changes every few windows, and their true conditional p90."""
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    level = np.full(n, 100.0)
    sigma = np.where((np.arange(n) // (3 * k)) % 2 == 0, 2.0, 20.0)  # calm and wild stretches
    actual = level + sigma * rng.standard_normal(n)
    actual[-k:] = np.nan
    rate = {"mean_p50": actual, "mean_p90": actual, "peak_p90": actual}
    return rate, np.full(n, 100.0), level + norm.ppf(0.9) * sigma


def _true_quantiles_twice(n: int, k: int, seed: int) -> tuple[np.ndarray, EnsembleOutput]:
    """The ensemble over the moving average and the true conditional quantiles, once calibrated
    (``outrider_gbm``) and once as they are (``outrider_gbm_raw``); returns (true p90, output)."""
    rate, scale, p90 = _heteroscedastic(n, k, seed)
    f = {"mean_p50": np.full(n, 100.0), "mean_p90": p90, "peak_p90": p90}
    shifted = Candidate("outrider_gbm", {t: a.copy() for t, a in f.items()})
    own = Candidate("outrider_gbm_raw", {t: a.copy() for t, a in f.items()}, calibrate=False)
    ma = point_candidate("moving_average", np.full(n, 100.0))
    return p90, run_ensemble([ma, shifted, own], rate, scale, k, 60)


def test_an_uncalibrated_candidate_keeps_its_own_quantiles() -> None:
    n, k = 2000, 5
    p90, out = _true_quantiles_twice(n, k, seed=7)
    assert np.array_equal(out.calibrated["outrider_gbm_raw"]["mean_p90"], p90)
    assert (out.offsets["outrider_gbm_raw"]["mean_p90"] == 0.0).all()
    late = slice(n // 2, n - k)
    assert np.nanmax(np.abs(out.offsets["outrider_gbm"]["mean_p90"][late])) > 0.01
    state = out.state_at(n - k - 1)
    assert state.offsets["outrider_gbm_raw"]["mean_p90"] == 0.0


def test_true_conditional_quantiles_outweigh_their_conformally_shifted_copy() -> None:
    # The model's p90 follows the spread of each stretch; the conformal offset, estimated on recent
    # scores from both kinds of stretch, shifts it by one blend: the unshifted copy has the lower
    # loss and takes most of the weight.
    n, k = 4000, 5
    _, out = _true_quantiles_twice(n, k, seed=3)
    late = slice(n // 2, n - k)
    w = out.weights["mean_p90"]
    assert np.mean(w["outrider_gbm_raw"][late]) > np.mean(w["outrider_gbm"][late])
    assert np.mean(w["outrider_gbm_raw"][late]) > 0.5


def _reference_weighted_quantile(
    x: np.ndarray, window: int, min_periods: int, lag: int, q: float, half_life: float, i: int
) -> float:
    """The definition, row by row: the smallest value whose cumulative weight reaches ``q``."""
    end = i - lag
    if end < 0:
        return float("nan")
    idx = np.arange(max(0, end - window + 1), end + 1)
    vals, ages = x[idx], end - idx
    keep = np.isfinite(vals)
    if keep.sum() < min_periods:
        return float("nan")
    vals, w = vals[keep], np.exp2(-ages[keep] / half_life)
    order = np.argsort(vals, kind="stable")
    cum = np.cumsum(w[order])
    return float(vals[order][np.argmax(cum >= q * cum[-1] * (1 - 1e-9))])


def test_weighted_quantiles_match_the_definition_row_by_row() -> None:
    rng = np.random.default_rng(11)
    for trial in range(12):
        n = int(rng.integers(80, 900))
        x = rng.normal(size=n)
        if trial % 2:
            x = np.round(x, 1)  # ties
        x[rng.random(n) < 0.15] = np.nan
        x[: int(rng.integers(0, 60))] = np.nan
        window, lag = int(rng.integers(5, 300)), int(rng.integers(0, 30))
        half_life = float(rng.choice([0.7, 5.0, 60.0, 1e12]))
        stride = int(rng.integers(1, 8))
        p50, p90 = weighted_lagged_quantiles(x, window, 8, lag, (0.5, 0.9), half_life, stride)
        for i in range(n):
            src = i - (i - (n - 1)) % stride  # the newest computed row at or before i
            for q, got in ((0.5, p50), (0.9, p90)):
                want = np.nan
                if src >= lag:
                    want = _reference_weighted_quantile(x, window, 8, lag, q, half_life, src)
                assert got[i] == want or (np.isnan(got[i]) and np.isnan(want)), (trial, q, i)


def test_a_weighted_quantile_never_picks_a_value_outside_its_window() -> None:
    # rows share a sort within a block: the block's smallest value (row 50) and rows with no value
    # yet must not leak into the windows that do not hold it
    x = np.full(80, np.nan)
    x[50] = -50.0
    x[10:20] = np.arange(10.0)
    window, lag = 20, 0
    for q in (0.0, 0.5):
        out = weighted_lagged_quantiles(x, window, 0, lag, (q,), 1e12)[0]
        assert np.isnan(out[:10]).all()  # nothing in the window yet, even with min_periods 0
        assert out[19] == (0.0 if q == 0.0 else 4.0)
        assert np.isnan(out[40:50]).all()  # the window [i-19, i] is empty again
        assert (out[50:70] == -50.0).all()  # the only value in those windows
    # values hundreds of half-lives old: weighed relative to the window's newest value, not lost
    y = np.full(400, np.nan)
    y[0:5] = [7.0, 1.0, 9.0, 3.0, 5.0]
    far = weighted_lagged_quantiles(y, 400, 1, 0, (0.5,), 0.2)[0]
    assert (far[5:399] == 5.0).all()  # the newest value outweighs the rest
    flat = weighted_lagged_quantiles(y, 400, 1, 0, (0.5,), float("inf"))[0]
    assert flat[-1] == 5.0  # equal weights: the median of 1, 3, 5, 7, 9
