"""Conformal calibration and online weighting of candidates."""

from __future__ import annotations

import numpy as np

from outrider_scheduler.forecast.baselines import Candidate, point_candidate
from outrider_scheduler.forecast.ensemble import TARGETS, EnsembleSettings, run_ensemble


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


def test_fallback_before_any_loss_history() -> None:
    rate, scale, cands = _setup()
    out = run_ensemble(cands, rate, scale, 5, 60)
    assert not out.warm[:5].any()
    first = int(np.argmax(np.isfinite(out.final["mean_p50"])))
    assert out.weights["mean_p50"]["moving_average"][first] == 1.0
