"""The per-deployment forecaster: cold start, learned mode, background refits, live accuracy."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from outrider_cli import main as cli_main
from outrider_scheduler.forecast.ensemble import EnsembleSettings
from outrider_scheduler.forecast.errors import ForecastError
from outrider_scheduler.forecast.level import LEVEL_SETTINGS
from outrider_scheduler.forecast.metrics import ForecastMetrics
from outrider_scheduler.forecast.model import ModelSettings
from outrider_scheduler.forecast.result import ForecastResult
from outrider_scheduler.forecast.series import StepSeries
from outrider_scheduler.forecast.service import DeploymentForecaster, ForecasterSettings
from outrider_scheduler.forecast.traces import load_trace

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces"
pytestmark = pytest.mark.skipif(not TRACES.is_dir(), reason=f"shared traces folder {TRACES} is absent")

SETTINGS = ForecasterSettings(
    learned_min_history_seconds=2 * 3600,
    model=ModelSettings(max_iter=30, max_rows=2000),
    level=dataclasses.replace(LEVEL_SETTINGS, max_iter=30, max_rows=2000),
    ensemble=EnsembleSettings(calib_window_seconds=3600, loss_window_seconds=3600),
)


def _week() -> np.ndarray:
    return load_trace(TRACES / "azure_llm_2024_conv_10s.csv").counts


def test_defaults_are_pinned() -> None:
    s = ForecasterSettings()
    assert (s.horizon_seconds, s.step_seconds, s.learned_min_history_seconds) == (300, 10, 3 * 3600)
    assert s.refit_interval_seconds == 3600 and s.recalibrate_interval_seconds == 60


def test_the_recalibration_cadence_is_set_live_and_in_the_calibration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = ForecasterSettings().with_recalibration(300)
    assert s.recalibrate_interval_seconds == 300 and s.ensemble.recalibrate_seconds == 300
    assert s.ensemble.calib_window_seconds == ForecasterSettings().ensemble.calib_window_seconds
    for bad in (5, 45, 610, 3600):
        with pytest.raises(ForecastError, match="multiple of the 10 s step"):
            ForecasterSettings().with_recalibration(bad)
    # the service refuses it before it connects to anything
    assert cli_main(["forecast", "serve", "--recalibrate-seconds", "45"]) == 2
    assert "--recalibrate-seconds: recalibration every 45 s" in capsys.readouterr().err


def test_insufficient_history_then_cold_start_then_learned() -> None:
    y = _week()
    fc = DeploymentForecaster("ns/chat", SETTINGS, ForecastMetrics(CollectorRegistry()))
    assert fc.predict(0.0).reason == "InsufficientHistory"
    fc.observe(StepSeries(0.0, 10, y[:10]))
    res = fc.predict(100.0)
    assert not res.forecasting and "at least 300 s" in res.message
    fc.observe(StepSeries(100.0, 10, y[10:360]))  # one hour
    fc.refit(3600.0)
    cold = fc.predict(3600.0)
    assert cold.forecasting and cold.reason == "ColdStart"
    assert cold.p50_rps > 0 and cold.p50_rps <= cold.p90_rps <= cold.peak_p90_rps
    fc.observe(StepSeries(3600.0, 10, y[360:1440]))  # four hours in all
    fc.refit(4 * 3600.0)
    learned = fc.predict(4 * 3600.0)
    assert learned.reason == "Learned"
    actual_next = y[1440:1470].mean() / 10
    assert abs(learned.p50_rps - actual_next) / actual_next < 0.2


def test_a_refit_on_less_than_one_horizon_of_history_is_harmless() -> None:
    # a new deployment: the forecaster refits before a whole horizon has been seen
    fc = DeploymentForecaster("ns/new", SETTINGS, ForecastMetrics(CollectorRegistry()))
    fc.observe(StepSeries(0.0, 10, np.full(12, 30.0)))  # 120 s of a 300 s horizon
    fc.refit(120.0)  # raised IndexError before: no window was over yet
    res = fc.predict(120.0)
    assert res.reason == "InsufficientHistory" and not res.forecasting


def test_predictions_do_not_wait_for_a_refit() -> None:
    y = _week()
    fc = DeploymentForecaster("ns/chat", SETTINGS)
    fc.observe(StepSeries(0.0, 10, y[:2000]))
    fc.refit(20_000.0)
    t = threading.Thread(target=fc.refit, args=(30_000.0, True))
    t.start()
    results = [fc.predict(20_000.0 + i) for i in range(20)]
    t.join()
    assert all(r.forecasting for r in results)


def test_live_accuracy_is_published() -> None:
    y = _week()
    registry = CollectorRegistry()
    fc = DeploymentForecaster("ns/chat", SETTINGS, ForecastMetrics(registry))
    fc.observe(StepSeries(0.0, 10, y[:1500]))
    fc.refit(15_000.0)
    # the first model's out-of-sample stand-ins for live forecasts
    backfilled = len(fc._records["outrider_gbm"])
    for i in range(1500, 1700):
        fc.observe(StepSeries(i * 10.0, 10, y[i : i + 1]))
        fc.predict(i * 10.0 + 10)
    acc = fc.accuracy()
    assert acc["windows"] >= 150
    # the learned model's live forecasts are kept as its out-of-sample record for calibration
    assert len(fc._records["outrider_gbm"]) == backfilled + 200
    fc.refit(17_000.0)
    assert fc._fitted is not None
    assert np.isfinite(fc._fitted.state.offsets["outrider_gbm"]["mean_p90"])
    # the model's own quantiles are a second candidate, weighed as they are (never shifted)
    assert fc._fitted.state.offsets["outrider_gbm_raw"] == {"mean_p50": 0.0, "mean_p90": 0.0, "peak_p90": 0.0}
    assert "outrider_gbm_raw" in fc._fitted.state.weights["mean_p90"]
    assert 0.5 <= acc["coverage_p90"] <= 1.0
    assert (
        registry.get_sample_value("outrider_forecaster_p90_coverage_ratio", {"deployment": "ns/chat"})
        == (acc["coverage_p90"])
    )
    loss = registry.get_sample_value(
        "outrider_forecaster_pinball_loss_ratio", {"deployment": "ns/chat", "target": "mean_p90"}
    )
    assert loss is not None and 0 < loss < 0.2
    # the last forecast used the refit at 15,000 s; once recalibrated, its age starts again
    age = "outrider_forecaster_calibration_age_seconds"
    assert registry.get_sample_value(age, {"deployment": "ns/chat"}) == 17_000.0 - 15_000.0
    fc.predict(17_050.0)
    assert registry.get_sample_value(age, {"deployment": "ns/chat"}) == 50.0


def _daily_ramps(days: int, ramp_at: float, base: float = 50.0, peak: float = 175.0) -> np.ndarray:
    """10-s counts: ``base`` req/s, and every day at ``ramp_at`` s a 3-min climb to ``peak``, held 3 min."""
    t = np.arange(days * 8640) * 10.0 + 5.0
    dt = (t - ramp_at) % 86_400
    rate = np.where(dt < 180, base + (peak - base) * dt / 180, np.where(dt < 360, peak, base))
    fall = (dt >= 360) & (dt < 540)
    rate = np.where(fall, peak - (peak - base) * (dt - 360) / 180, rate)
    return np.random.default_rng(3).poisson(rate * 10).astype(np.float64)


def _fresh_forecast(y: np.ndarray, now: float) -> ForecastResult:
    """A forecaster with the default settings, started at ``now`` with the 10-s counts ``y`` before it."""
    fc = DeploymentForecaster("ns/fresh", ForecasterSettings())
    fc.observe(StepSeries(0.0, 10, y[: int(now // 10)]))
    fc.refit(now)
    return fc.predict(now)


def test_a_fresh_forecaster_forecasts_a_daily_ramp_it_learned_from_earlier_days() -> None:
    """Started with eight days of history on a quiet afternoon, it sees the ninth day's ramp coming.

    Its learned model has no live record yet; without a walk-forward stand-in for one, only the
    quiet hours after its training cut would score it and the ensemble would average its forecast
    of the ramp away (it forecast a 5-min peak of 116 req/s for a ramp to 175 before this test).
    """
    ramp_at = 15 * 3600.0
    y = _daily_ramps(9, ramp_at)
    now = 8 * 86_400 + ramp_at - 120  # two minutes before the ninth ramp
    res = _fresh_forecast(y, now)
    assert res.reason == "Learned"
    assert res.peak_p90_rps >= 150, res
    later = 8 * 86_400 + ramp_at + 1800.0  # half an hour after it: back to the base rate
    quiet = _fresh_forecast(y, later)
    assert quiet.peak_p90_rps < 100, quiet  # and it does not forecast a ramp where there is none


def _hourly_bursts(hours: int, base: float = 50.0, burst: float = 150.0) -> np.ndarray:
    """10-s counts: ``base`` req/s, and in the first two minutes of every hour ``burst`` (a timer)."""
    t = np.arange(hours * 360) * 10.0 + 5.0
    rate = np.where(t % 3600 < 120, burst, base)
    return np.random.default_rng(5).poisson(rate * 10).astype(np.float64)


def test_a_forecaster_sees_the_top_of_the_hour_burst_coming() -> None:
    """Scheduled jobs fire at the top of the hour: after half a day of them, the 5-min peak forecast
    made three minutes before the hour covers the next burst, and one made in mid-hour does not
    forecast one. Without the hourly features (the load an hour ago over the coming horizon, its
    peak, the minute of the hour) the forecast three minutes before the hour was 77 req/s."""
    y = _hourly_bursts(13)
    before = 12 * 3600.0 - 180  # three minutes before the twelfth hour's burst
    res = _fresh_forecast(y, before)
    assert res.reason == "Learned"
    assert res.peak_p90_rps >= 130, res
    mid = 12 * 3600.0 + 1500  # twenty-five minutes into the hour: the next burst is 35 min away
    quiet = _fresh_forecast(y, mid)
    assert quiet.peak_p90_rps < 80, quiet


def test_the_ets_candidate_is_live_and_predict_advances_its_state() -> None:
    from outrider_scheduler.forecast.ets import filter_ets

    y = _week()
    fc = DeploymentForecaster("ns/chat", SETTINGS)
    fc.observe(StepSeries(0.0, 10, y[:600]))
    fc.refit(6_000.0)  # cold start: no learned model yet, but ETS is fitted and calibrated
    fitted = fc._fitted
    assert fitted is not None and fitted.ets is not None and fitted.model is None
    assert np.isfinite(fitted.state.offsets["ets"]["mean_p90"])
    for i in range(600, 606):  # a minute of new bins arrives before the next recalibration
        fc.observe(StepSeries(i * 10.0, 10, y[i : i + 1]))
    advanced = fitted.ets.advance(fc.series.rates[600:], 10)  # type: ignore[union-attr]
    level, _ = filter_ets(fc.series.rates, fitted.ets.params)  # type: ignore[union-attr]
    # the state kept at the refit, advanced by six bins, equals filtering the whole history from the
    # window start the refit used, up to what the damped filter has forgotten since
    assert abs(advanced.level - level[-1]) / level[-1] < 0.01
    assert advanced.time == 606 * 10.0
    res = fc.predict(6_060.0)
    assert res.forecasting and res.reason == "ColdStart"


def test_a_history_with_idle_nights_gets_a_second_learned_model_live() -> None:
    rng = np.random.default_rng(3)
    steps = np.arange(2 * 8640)  # two days of 10-s bins
    tod = (steps % 8640) * 10
    counts = rng.poisson(np.where(tod < 6 * 3600, 0.0, 40.0)).astype(np.float64)
    fc = DeploymentForecaster("ns/internal", SETTINGS, ForecastMetrics(CollectorRegistry()))
    fc.observe(StepSeries(0.0, 10, counts[:-360]))
    fc.refit(2 * 86400.0 - 3600)
    assert fc._fitted is not None and fc._fitted.active is not None
    backfilled = len(fc._records["outrider_gbm_active"])
    assert backfilled > 0  # its out-of-sample record, as for the first model
    live = [i * 10.0 + 10 for i in range(len(counts) - 360, len(counts) - 300)]
    assert not any(t in fc._records["outrider_gbm_active"] for t in live)
    for i in range(len(counts) - 360, len(counts) - 300):
        fc.observe(StepSeries(i * 10.0, 10, counts[i : i + 1]))
        res = fc.predict(i * 10.0 + 10)
        assert res.forecasting and res.p50_rps <= res.p90_rps <= res.peak_p90_rps
    assert all(t in fc._records["outrider_gbm_active"] for t in live)  # its live forecasts
    # a deployment that never idles for hours has none
    busy = DeploymentForecaster("ns/busy", SETTINGS, ForecastMetrics(CollectorRegistry()))
    busy.observe(StepSeries(0.0, 10, np.where(counts == 0, 4.0, counts)[:-360]))
    busy.refit(2 * 86400.0 - 3600)
    assert busy._fitted is not None and busy._fitted.model is not None and busy._fitted.active is None
