"""Quantile averaging: the pinball-optimal convex combination of candidates, and its use."""

from __future__ import annotations

import numpy as np
import pytest

from outrider_scheduler.forecast import ensemble as ensemble_module
from outrider_scheduler.forecast.averaging import fit_averaging_weights
from outrider_scheduler.forecast.baselines import Candidate, point_candidate
from outrider_scheduler.forecast.ensemble import (
    TARGETS,
    EnsembleSettings,
    EnsembleState,
    pinball,
    run_ensemble,
)
from outrider_scheduler.forecast.model import ModelSettings
from outrider_scheduler.forecast.series import StepSeries
from outrider_scheduler.forecast.service import DeploymentForecaster, ForecasterSettings


def _two_sided(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An actual series and two p90 forecasts of it that err on opposite sides, independently."""
    rng = np.random.default_rng(seed)
    actual = 100 + rng.normal(0, 5, n)
    low = 100 + 4.0 + rng.normal(0, 3, n) - 6.0  # too low on average
    high = 100 + 4.0 + rng.normal(0, 3, n) + 6.0  # too high on average
    return actual, np.column_stack([low, high])


def test_the_weights_are_the_pinball_optimal_convex_combination() -> None:
    actual, f = _two_sided(3000, seed=1)
    w = fit_averaging_weights(f, actual, 0.9, max_rows=10_000)
    assert w is not None and (w >= 0).all() and abs(w.sum() - 1.0) < 1e-9
    # a brute-force search over the segment between the two gives the same loss
    grid = np.linspace(0, 1, 2001)
    losses = [pinball(actual, f @ np.array([1 - a, a]), 0.9).sum() for a in grid]
    best = grid[int(np.argmin(losses))]
    assert abs(w[1] - best) < 2e-3
    assert pinball(actual, f @ w, 0.9).mean() < 0.9 * min(
        pinball(actual, f[:, j], 0.9).mean() for j in range(2)
    )


def test_rows_with_missing_values_are_left_out_and_nothing_usable_gives_none() -> None:
    actual, f = _two_sided(2000, seed=2)
    f[::3, 0] = np.nan
    actual[1::7] = np.nan
    w = fit_averaging_weights(f, actual, 0.9, max_rows=500)
    assert w is not None and np.isfinite(w).all()
    assert fit_averaging_weights(np.full((10, 2), np.nan), np.ones(10), 0.9, 100) is None
    assert fit_averaging_weights(np.ones((10, 0)), np.ones(10), 0.9, 100) is None


def _ensemble_inputs(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, list[Candidate]]:
    actual, f = _two_sided(n, seed)
    k = 5
    actual[-k:] = np.nan
    rate = {t: actual for t in TARGETS}
    return (
        rate,
        np.full(n, 100.0),
        [point_candidate("moving_average", f[:, 0]), point_candidate("ets", f[:, 1])],
    )


def test_averaging_starts_once_the_loss_window_is_full_and_beats_the_exponential_weights() -> None:
    n, k, step = 4000, 5, 60
    rate, scale, cands = _ensemble_inputs(n, seed=3)
    on = run_ensemble(cands, rate, scale, k, step)  # loss window 24 h = 1,440 rows
    off = run_ensemble(cands, rate, scale, k, step, EnsembleSettings(averaging=False))
    got = on.averaged["mean_p90"]
    assert not got[: k + 1440 - 1].any() and got[k + 1440 - 1 :].all()
    assert not off.averaged["mean_p90"].any()
    late = slice(2000, n - k)
    assert np.array_equal(on.final["mean_p90"][: k + 1439], off.final["mean_p90"][: k + 1439], equal_nan=True)
    loss_on = pinball(rate["mean_p50"][late], on.final["mean_p90"][late], 0.9).mean()
    loss_off = pinball(rate["mean_p50"][late], off.final["mean_p90"][late], 0.9).mean()
    assert loss_on < 0.97 * loss_off
    # weights are held for an hour of origins (60 rows) and the frozen state reproduces a row
    w = on.weights["mean_p90"]["ets"]
    first = k + 1439
    assert np.all(w[first : first + 60] == w[first]) and w[first + 60] != w[first]
    row = 3000
    raw = {c.name: {t: float(c.f[t][row]) for t in TARGETS} for c in cands}
    applied = on.state_at(row).apply(raw, float(scale[row]))
    for t in TARGETS:
        assert applied[t] == pytest.approx(float(on.final[t][row]), rel=1e-9, abs=1e-9)


def test_averaging_weights_use_no_window_that_had_not_ended() -> None:
    n, k, step = 3000, 5, 60
    rate, scale, cands = _ensemble_inputs(n, seed=4)
    cut = k + 1439 + 17 * 60  # a row where the averaging weights are fitted
    before = run_ensemble(cands, rate, scale, k, step)
    rng = np.random.default_rng(9)
    scrambled = {t: a.copy() for t, a in rate.items()}
    for a in scrambled.values():
        a[cut - k + 1 : n - k] = rng.permutation(a[cut - k + 1 : n - k])
    after = run_ensemble(cands, scrambled, scale, k, step)
    for t in TARGETS:
        assert np.array_equal(before.final[t][: cut + 1], after.final[t][: cut + 1], equal_nan=True)


def test_the_last_row_alone_is_fitted_or_takes_held_weights() -> None:
    k, step = 5, 60
    n = k + 1440 + 26 * 60  # the last row is one where the backtest's schedule fits the weights
    rate, scale, cands = _ensemble_inputs(n, seed=5)
    full = run_ensemble(cands, rate, scale, k, step)
    last = run_ensemble(cands, rate, scale, k, step, last_row_only=True)
    assert last.averaged["mean_p90"][-1] and not last.averaged["mean_p90"][:-1].any()
    assert full.averaged["mean_p90"][-1]
    for t in TARGETS:  # the same fit, on the same resolved windows
        for c in cands:
            assert last.weights[t][c.name][-1] == pytest.approx(full.weights[t][c.name][-1], abs=1e-9)
        assert last.final[t][-1] == pytest.approx(full.final[t][-1], rel=1e-9)
    held = {t: {"moving_average": 1.0, "gone": 0.5} for t in TARGETS}  # a candidate no longer there
    kept = run_ensemble(cands, rate, scale, k, step, last_row_only=True, held_averaging=held)
    assert kept.weights["mean_p90"]["moving_average"][-1] == 1.0
    expected = cands[0].f["mean_p90"][-1] + kept.offsets["moving_average"]["mean_p90"][-1] * 100.0
    assert kept.final["mean_p90"][-1] == pytest.approx(expected)


def test_a_frozen_state_falls_back_to_the_exponential_weights_when_averaged_candidates_are_missing() -> None:
    n, k, step = 3005, 5, 60
    rate, scale, cands = _ensemble_inputs(n, seed=6)
    out = run_ensemble(cands, rate, scale, k, step)
    row = n - 1
    state = out.state_at(row)
    for t in TARGETS:
        assert state.fallback_weights[t] == {m: float(a[row]) for m, a in out.exponential_weights[t].items()}
    early = out.state_at(100)  # not averaged yet: nothing to fall back to
    assert early.fallback_weights == {}
    # a state whose averaging chose a candidate that has no forecast at this origin
    frozen = EnsembleState(
        offsets={"autoreg": dict.fromkeys(TARGETS, 0.0), "moving_average": dict.fromkeys(TARGETS, 0.5)},
        weights={t: {"autoreg": 1.0, "moving_average": 0.0} for t in TARGETS},
        fallback_weights={t: {"autoreg": 0.3, "moving_average": 0.7} for t in TARGETS},
    )
    raw = {"autoreg": dict.fromkeys(TARGETS, float("nan")), "moving_average": dict.fromkeys(TARGETS, 10.0)}
    got = frozen.apply(raw, scale=2.0)
    assert got == dict.fromkeys(TARGETS, 11.0)
    assert all(
        np.isnan(v)
        for v in EnsembleState(weights=frozen.weights, offsets=frozen.offsets).apply(raw, 2.0).values()
    )


def _live_forecaster(hours: int) -> tuple[DeploymentForecaster, np.ndarray]:
    """A live forecaster with one-hour calibration and loss windows, without the level model (fitted
    a minute after the learned model, its live record in a one-hour loss window starts a minute
    later, and the averaging waits for a full record), and ``hours`` of 10-s counts for it."""
    settings = ForecasterSettings(
        learned_min_history_seconds=2 * 3600,
        model=ModelSettings(max_iter=20, max_rows=1000),
        level=None,
        ensemble=EnsembleSettings(calib_window_seconds=3600, loss_window_seconds=3600),
    )
    rng = np.random.default_rng(6)
    y = rng.poisson(200 + 100 * np.sin(np.arange(hours * 360) / 500)).astype(float)
    return DeploymentForecaster("ns/chat", settings), y


def test_the_live_forecaster_fits_the_averaging_weights_hourly_and_not_with_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = ensemble_module.fit_averaging_weights

    def counted(*args: object, **kwargs: object) -> np.ndarray | None:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ensemble_module, "fit_averaging_weights", counted)
    fc, y = _live_forecaster(8)
    hour = 360  # steps

    def live(steps: range) -> None:  # a forecast every step, which the learned model's record keeps
        for i in steps:
            fc.observe(StepSeries(i * 10.0, 10, y[i : i + 1]))
            fc.predict(i * 10.0 + 10)

    fc.observe(StepSeries(0.0, 10, y[: 4 * hour]))
    fc.refit(4 * 3600.0)
    live(range(4 * hour, 6 * hour))
    fc.refit(5 * 3600.0 + 3600)  # every candidate now has a full loss window of forecasts
    assert len(calls) == len(TARGETS)
    live(range(6 * hour, 6 * hour + 6))
    fc.refit(6 * 3600.0 + 60)  # a recalibration: the held weights are used
    assert len(calls) == len(TARGETS)
    live(range(6 * hour + 6, 7 * hour + 1))
    fc.refit(7 * 3600.0 + 10)  # the learned model is refitted: the due averaging fit waits
    assert len(calls) == len(TARGETS)
    live(range(7 * hour + 1, 7 * hour + 7))
    fc.refit(7 * 3600.0 + 70)  # the next recalibration fits it
    assert len(calls) == 2 * len(TARGETS)
    assert fc.predict(7 * 3600.0 + 70).reason == "Learned"


def test_a_fresh_forecaster_keeps_averaging_after_its_learned_model_is_refitted() -> None:
    """The origins between a learned model's training cut and its first live forecast are forecast
    out of sample at that refit; the record keeps them, so that the next model's later cut does not
    leave a hole in the loss window (the averaging waits for a full one, and stopped for a day)."""
    fc, y = _live_forecaster(9)
    hour = 360  # steps
    fc.observe(StepSeries(0.0, 10, y[: 6 * hour]))
    fc.refit(6 * 3600.0)  # fitted on 5 h; its sixth hour, forecast out of sample, fills the window
    assert fc._fitted is not None and fc._fitted.averaging
    # an hour and two minutes live: the model is refitted at 7 h (cut at 6 h), and the averaging a
    # minute later, while the loss window still holds the last minutes of the sixth hour
    for i in range(6 * hour, 7 * hour + 12):
        fc.observe(StepSeries(i * 10.0, 10, y[i : i + 1]))
        now = i * 10.0 + 10
        fc.predict(now)
        if fc.refit_due(now):
            fc.refit(now)
    assert fc._fitted.model_fitted_at >= 7 * 3600.0
    assert fc._fitted.averaging_fitted_at > fc._fitted.model_fitted_at
    assert fc._fitted.averaging, "the averaging stopped: the record lost the first model's sixth hour"
