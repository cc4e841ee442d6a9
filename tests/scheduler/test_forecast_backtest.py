"""Rolling-origin backtests: no look-ahead, the backtest.json contract, and bad input handling."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outrider_cli import main as cli_main
from outrider_scheduler.forecast.backtest import (
    BacktestSettings,
    calibration_range,
    independent_windows,
    run_backtest,
    run_backtest_windows,
)
from outrider_scheduler.forecast.baselines import BASELINE_NAMES, prophet_available
from outrider_scheduler.forecast.ensemble import EnsembleSettings
from outrider_scheduler.forecast.level import LEVEL_SETTINGS
from outrider_scheduler.forecast.model import ModelSettings
from outrider_scheduler.forecast.pipeline import WalkForward, run_walk_forward
from outrider_scheduler.forecast.series import StepSeries, to_step_series
from outrider_scheduler.forecast.traces import load_trace

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces"
needs_traces = pytest.mark.skipif(not TRACES.is_dir(), reason=f"shared traces folder {TRACES} is absent")

SMALL = WalkForward(
    refit_every_seconds=3600,
    min_refits=4,
    learned_min_history_seconds=3 * 3600,
    arima_window_seconds=3600,
    model=ModelSettings(max_iter=25, max_rows=1500),
    level=dataclasses.replace(LEVEL_SETTINGS, max_iter=25, max_rows=1500),
    ensemble=EnsembleSettings(calib_window_seconds=3 * 3600, loss_window_seconds=3 * 3600),
)


@needs_traces
def test_no_information_from_after_the_origin_is_used() -> None:
    """Scrambling everything after an origin must not change any forecast made at or before it."""
    tr = load_trace(TRACES / "azure_functions_2019_sample1340_1min.csv")
    base = to_step_series(tr, 0)
    y = base.y[:900]
    cut = 700  # origin 700 sees y[:700]
    rng = np.random.default_rng(7)
    y2 = y.copy()
    y2[cut:] = rng.permutation(y2[cut:]) * 3.0
    a = run_walk_forward(StepSeries(base.t0, base.step_seconds, y), 300, SMALL)
    b = run_walk_forward(StepSeries(base.t0, base.step_seconds, y2), 300, SMALL)
    assert ("prophet" in a.candidates) == prophet_available()
    rows = a.origins <= cut
    assert a.learned_active[rows].any(), "the learned model never became active before the cut"
    for name, cand in a.candidates.items():
        for t, f in cand.f.items():
            np.testing.assert_array_equal(f[rows], b.candidates[name].f[t][rows], err_msg=f"{name} {t}")
    for t, f in a.ensemble.final.items():
        np.testing.assert_array_equal(f[rows], b.ensemble.final[t][rows], err_msg=f"final {t}")
    # and the scramble does change later forecasts, so the test can fail
    later = a.origins > cut + 10
    assert not np.allclose(a.ensemble.final["mean_p90"][later], b.ensemble.final["mean_p90"][later])


@needs_traces
def test_quick_backtest_cli_writes_the_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bt"
    rc = cli_main(
        [
            "forecast",
            "backtest",
            "--trace",
            str(TRACES / "azure_llm_2023_conv_1s.csv"),
            "--out",
            str(out),
            "--quick",
        ]
    )
    assert rc == 0
    doc = json.loads((out / "backtest.json").read_text())
    assert (out / "backtest.png").stat().st_size > 10_000
    assert doc["bin_seconds"] == 1 and doc["horizon_seconds"] == 300
    assert doc["origins"] >= 200, "a one-hour trace must still give a few hundred windows"
    expected = {"outrider", *BASELINE_NAMES} | ({"prophet"} if prophet_available() else set())
    assert set(doc["methods"]) == expected
    assert ("prophet" in doc["methods"]) == (doc["notes"] == "")
    keys = {
        "pinball_p50",
        "pinball_p90",
        "coverage_p90",
        "peak_under_rate",
        "mase",
        "fit_seconds",
        "predict_ms",
    }
    for name, row in doc["methods"].items():
        assert set(row) == keys, name
        assert all(isinstance(v, float) and np.isfinite(v) for v in row.values()), name
        assert 0.0 <= row["coverage_p90"] <= 1.0
    printed = capsys.readouterr().out
    assert "outrider" in printed and "moving_average" in printed
    # about half an hour is scored: a handful of independent windows, so a wide range
    assert 4 <= doc["independent_windows"] <= 12
    lo, hi = doc["calibration_check"]["coverage_range_if_calibrated"]
    assert lo < 0.85 and hi == 1.0
    assert doc["calibration_check"]["coverage_p90_consistent"] == (
        lo <= doc["methods"]["outrider"]["coverage_p90"] <= hi
    )
    assert "independent 300 s windows" in printed


def test_independent_windows_and_the_calibrated_coverage_range() -> None:
    times = np.arange(0.0, 1800.0, 10.0)  # origins over half an hour, 10 s apart
    assert independent_windows(times, 300) == 6  # 0, 300, ..., 1500
    assert independent_windows(times[:1], 300) == 1
    assert independent_windows(np.zeros(0), 300) == 0
    lo, hi = calibration_range(6)
    assert (lo, hi) == (4 / 6, 1.0)  # binomial(6, 0.9): 5% and 95% points are 4 and 6
    lo, hi = calibration_range(2000)
    assert 0.88 < lo < 0.9 < hi < 0.92
    # simulated calibrated forecaster over 2,000 independent windows: its coverage is in range
    rng = np.random.default_rng(3)
    inside = [lo <= np.mean(rng.random(2000) < 0.9) <= hi for _ in range(200)]
    assert 0.8 <= np.mean(inside) <= 0.99
    assert calibration_range(0) == (0.0, 1.0)


def test_too_little_history_says_how_much(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "short.csv"
    trace.write_text("t_seconds,requests\n" + "".join(f"{i * 10},{5 + i % 4}\n" for i in range(60)))
    rc = cli_main(["forecast", "backtest", "--trace", str(trace), "--out", str(tmp_path / "o"), "--quick"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "at least" in err and "300 s horizon" in err


def test_bad_trace_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("t_seconds,requests\n0,1\n10,-1\n")
    rc = cli_main(["forecast", "backtest", "--trace", str(trace), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "line 3" in capsys.readouterr().err


@needs_traces
def test_odd_bin_width_rounds_the_horizon_and_says_so(tmp_path: Path) -> None:
    from outrider_scheduler.forecast.backtest import BacktestSettings, run_backtest
    from outrider_scheduler.forecast.traces import parse_trace

    counts = load_trace(TRACES / "azure_llm_2023_conv_1s.csv").counts
    n = len(counts) // 7
    seven = counts[: n * 7].reshape(n, 7).sum(axis=1)
    text = "t_seconds,requests\n" + "".join(f"{i * 7},{int(c)}\n" for i, c in enumerate(seven))
    doc, _ = run_backtest(parse_trace(text, "seven.csv"), BacktestSettings(quick=True))
    assert doc["bin_seconds"] == 7 and doc["step_seconds"] == 14
    assert doc["horizon_seconds"] == 294
    assert any("used 294 s" in note for note in doc["repairs"])
    assert doc["origins"] > 100


def test_a_scoring_window_scores_only_the_held_out_part() -> None:
    """Split in time: everything before the window is history, only forecasts inside it are scored."""
    trace = TRACES / "azure_llm_2023_conv_1s.csv"
    full, _ = run_backtest(trace, BacktestSettings(quick=True))
    late, _ = run_backtest(trace, BacktestSettings(quick=True, score_from_seconds=2400))
    early, _ = run_backtest(trace, BacktestSettings(quick=True, score_until_seconds=2400))
    assert late["scored_seconds"] == [2400, None] and early["scored_seconds"] == [0.0, 2400]
    assert 0 < late["origins"] < full["origins"] and 0 < early["origins"] < full["origins"]
    assert late["origins"] + early["origins"] == full["origins"]  # the two halves partition the scored set
    # the same walk-forward, scored on other rows: the numbers differ
    assert late["methods"]["outrider"]["pinball_p90"] != full["methods"]["outrider"]["pinball_p90"]
    # one walk-forward scored on both windows gives what two separate backtests give
    both = run_backtest_windows(trace, BacktestSettings(quick=True), [(2400, None), (0.0, 2400)])
    timings = ("seconds", "fit_seconds", "predict_ms")  # measured anew in every run

    def scores(doc: dict[str, Any]) -> dict[str, Any]:
        methods = {m: {k: v for k, v in row.items() if k not in timings} for m, row in doc["methods"].items()}
        return {**{k: v for k, v in doc.items() if k not in timings}, "methods": methods}

    for (doc, _), alone in zip(both, (late, early), strict=True):
        assert scores(doc) == scores(alone)


def test_an_empty_scoring_window_names_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(TRACES / "azure_llm_2023_conv_1s.csv")
    args = ["forecast", "backtest", "--trace", trace, "--quick", "--out", str(tmp_path)]
    assert cli_main([*args, "--score-from", "3490"]) == 2
    assert "scoring window [3490, 3503) s" in capsys.readouterr().err
    assert cli_main([*args, "--score-from", "100", "--score-until", "50"]) == 2
    assert "0 <= from < until" in capsys.readouterr().err


@needs_traces
def test_the_models_own_quantiles_are_a_second_uncalibrated_candidate() -> None:
    base = to_step_series(load_trace(TRACES / "azure_llm_2024_conv_10s.csv"), 0, 10)
    series = StepSeries(base.t0, base.step_seconds, base.rates[: 6 * 360])  # 6 h
    res = run_walk_forward(series, 300, dataclasses.replace(SMALL, arima=False, prophet=False))
    learned = res.candidates["outrider_gbm"].f["mean_p90"]
    own = res.candidates["outrider_gbm_raw"]
    assert np.isfinite(learned).any()
    np.testing.assert_array_equal(own.f["mean_p90"], learned)
    assert own.calibrate is False and res.candidates["outrider_gbm"].calibrate is True
    # used as they are: the ensemble adds no offset to them, and shifts the calibrated copy
    assert (res.ensemble.offsets["outrider_gbm_raw"]["mean_p90"] == 0.0).all()
    shifted = res.ensemble.offsets["outrider_gbm"]["mean_p90"]
    assert np.nanmax(np.abs(shifted)) > 0


def test_a_quick_backtest_refits_a_long_trace_as_often_as_a_full_one() -> None:
    # two days of 1-min bins: a full run refits every 6 h; --quick used to stretch that to a day,
    # so the first fit (on 3 h of history) served the whole first day
    rng = np.random.default_rng(5)
    minutes = np.arange(2 * 1440)
    rates = rng.poisson(20 + 15 * np.sin(2 * np.pi * minutes / 1440)).astype(np.float64) / 60
    series = StepSeries(0, 60, rates)
    quick = BacktestSettings(quick=True).effective().walk_forward
    res = run_walk_forward(series, 300, dataclasses.replace(quick, arima=False, prophet=False))
    gaps = np.diff(res.refits) * series.step_seconds
    assert gaps.max() <= WalkForward().refit_every_seconds
    assert res.refits[0] * series.step_seconds == quick.learned_min_history_seconds


def _idle_nights(days: int, seed: int = 3) -> StepSeries:
    """Days of 1-min counts, busy by day (a daily curve) and idle from 0:00 to 6:00."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(days * 1440)
    day = 30 + 20 * np.sin(2 * np.pi * (minutes % 1440 - 360) / 1440)
    counts = rng.poisson(np.where(minutes % 1440 < 360, 0.0, day)).astype(np.float64)
    return StepSeries(0.0, 60, counts)


def test_a_second_learned_model_leaves_out_the_rows_after_long_idle_stretches() -> None:
    wf = dataclasses.replace(SMALL, arima=False, prophet=False, level=None)  # about the learned models
    series = _idle_nights(3)
    res = run_walk_forward(series, 300, wf)
    first, active = res.candidates["outrider_gbm"], res.candidates["outrider_gbm_active"]
    own = res.candidates["outrider_gbm_active_raw"]
    assert np.isfinite(active.f["mean_p90"]).any() and own.calibrate is False
    np.testing.assert_array_equal(own.f["mean_p90"], active.f["mean_p90"])
    # it starts once the history holds a long idle stretch (the first night's fourth hour), and it
    # is another model than the first
    t = series.t0 + res.origins * series.step_seconds
    assert np.isnan(active.f["mean_p90"][t <= 3 * 3600]).all()
    both = np.isfinite(active.f["mean_p90"]) & np.isfinite(first.f["mean_p90"])
    assert not np.allclose(active.f["mean_p90"][both], first.f["mean_p90"][both])
    # nothing from after an origin reaches either model (the idle rule looks back only)
    cut = 2 * 1440 + 500
    y2 = series.y.copy()
    y2[cut:] = np.random.default_rng(8).permutation(y2[cut:]) * 3.0
    b = run_walk_forward(StepSeries(series.t0, series.step_seconds, y2), 300, wf)
    rows = res.origins <= cut
    for name in ("outrider_gbm", "outrider_gbm_active"):
        for tgt, f in res.candidates[name].f.items():
            np.testing.assert_array_equal(f[rows], b.candidates[name].f[tgt][rows], err_msg=f"{name} {tgt}")
    # a series that never idles for hours has no second model
    busy = StepSeries(0.0, 60, np.where(series.y == 0, 5.0, series.y))
    assert "outrider_gbm_active" not in run_walk_forward(busy, 300, wf).candidates
