"""Forecaster benchmark: full backtests of every shared trace plus the live forecaster's costs.

Writes ``bench/results/forecast/<trace>/backtest.json|png`` and the summary
``bench/results/forecast.json`` (ratio of Outrider's pinball_p90 to the best baseline's, coverage,
and the service timings), and prints the summary JSON.

Service timings, measured side by side in this one run on a week of 10-s data:
* ``predict_ms``: median wall time of one deployment's forecast (history of a week);
* ``refit_seconds``: wall time of one deployment's scheduled refit, an hour after the last: the
  learned model(s) and calibration; ``level_refit_seconds``: the recalibration a minute later, which
  fits the level model (live, no one refit fits both);
* ``cycle_500_cpu_seconds``: process CPU time to add one new 10-s bin to and forecast 500
  deployments (their fitted states are copies of one fit; the prediction path is unchanged);
* ``by_recalibration_seconds``: at the default cadence (60 s) and at 300 s, the CPU time of a plain
  recalibration, and from these figures ``background_cpu_seconds_per_hour`` (one deployment's refits
  and recalibrations) and ``deployments_per_core``: how many deployments one core forecasts every
  10 s and recalibrates on time. The background refits run in threads of the serving process, and
  the GIL keeps them to about one core (two threads recalibrating two deployments side by side took
  0.9 times as long as one thread doing both in turn).

Every forecaster here publishes its metrics, as the service's do, and has published a forecast
every step for a while before it is timed, so its live accuracy scores a full window each time.

``service_replay`` runs the live forecaster step by step over day 3 of the week-long trace and
reports its own live accuracy (the figures its metrics publish).

``slices`` cuts the week-long trace into shorter traces (1 h and 6 h, evenly spaced) and backtests
each like any other trace. It shows what the targets mean on short traces: how widely coverage
scatters around 0.9 when a trace holds only a handful of independent windows, and how often some
baseline beats Outrider in hindsight. Skip it with ``--no-slices``.

``held_out`` runs the week-long trace's walk-forward once more and scores that one run twice: on days 1-4
(where settings may be chosen) and on days 5-7 (held out, reported untouched). ``held_out_thinned``
does the same on copies of the week that keep each request with probability 20% and 5% (binomial
thinning with a fixed seed, so the figures are reproducible): the same daily and weekly shape at a
twentieth of the volume, with the counting noise of a quieter deployment. The settings were never
chosen on one trace alone; these copies are how a change is checked on more than one level.
``held_out_idle_nights`` does it once more on a copy thinned to 1% with no request from 0:00 to
6:00: a quiet service that sleeps at night.

``functions`` backtests the 50 busiest series of the Azure Functions per-function file one by one
(1-minute bins, one day each) and reports the distribution of the ratio and the coverage, not only
an aggregate. Skip it with ``--no-functions``.

``--service-only`` measures only the live costs and the replay, and replaces those entries of an
existing ``forecast.json`` (the backtests take most of an hour; the live path changes more often).

Usage: ``python bench/forecast_bench.py [--quick] [--traces DIR] [--only NAME ...] [--no-slices]
[--no-functions] [--service-only]``
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from outrider_scheduler.forecast.backtest import (
    BacktestSettings,
    format_table,
    run_backtest,
    run_backtest_windows,
    stderr_progress,
    write_outputs,
)
from outrider_scheduler.forecast.metrics import ForecastMetrics
from outrider_scheduler.forecast.series import StepSeries
from outrider_scheduler.forecast.service import DeploymentForecaster, ForecasterSettings
from outrider_scheduler.forecast.traces import Trace, load_trace

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def service_costs(week_trace: Path | Trace) -> dict[str, Any]:
    """The live forecaster's costs on a week of 10-s data: refit wall and CPU time, predict time,
    and the CPU time of one 10-s cycle of 500 deployments (see the module docstring)."""
    counts = (week_trace if isinstance(week_trace, Trace) else load_trace(week_trace)).counts
    settings = ForecasterSettings()
    metrics = ForecastMetrics()
    fc = DeploymentForecaster("bench/week", settings, metrics)
    fc.observe(StepSeries(0.0, 10, counts[:-400]))
    _published_for_a_while(fc)
    now = float(len(counts[:-400]) * 10)
    stderr_progress("service: refitting one deployment on a week of 10-s data")
    fc.refit(now, force_model=True)  # the first fit, with its backfilled records
    walls, cpus, level_walls, level_cpus, recal_cpus = [], [], [], [], []
    every = settings.recalibrate_interval_seconds
    for i in range(1, 4):  # the scheduled refits of the next hours, and a minute after each
        hour = now + i * settings.refit_interval_seconds
        t0, c0 = time.perf_counter(), time.process_time()
        fc.refit(hour)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        assert fc._fitted is not None and fc._fitted.model_fitted_at == hour
        t0, c0 = time.perf_counter(), time.process_time()
        fc.refit(hour + every)
        level_walls.append(time.perf_counter() - t0)
        level_cpus.append(time.process_time() - c0)
        assert fc._fitted.level is None or fc._fitted.level_fitted_at > hour
        recal_cpus.extend(_recalibrations(fc, hour, every))
    predict = []
    for i in range(200):
        fc.observe(StepSeries(now + 10 * i, 10, counts[len(counts) - 400 + i : len(counts) - 399 + i]))
        t0 = time.perf_counter()
        res = fc.predict(now + 10 * i + 10)
        predict.append((time.perf_counter() - t0) * 1000)
    assert res.reason == "Learned", res
    stderr_progress("service: 500 deployments, one 10-s cycle")
    fleet = []
    for j in range(500):
        d = DeploymentForecaster(f"bench/d{j}", settings, metrics)
        start = (j * 97) % 20_000
        d.observe(StepSeries(0.0, 10, counts[start : start + 40_000]))
        _published_for_a_while(d)
        d._fitted = copy.copy(fc._fitted)  # share one fit; the prediction path is unchanged
        fleet.append((d, start))
    cycles = []
    for c in range(3):
        c0 = time.process_time()
        for d, start in fleet:
            i = start + 40_000 + c
            d.observe(StepSeries(40_000 * 10.0 + c * 10, 10, counts[i : i + 1]))
            d.predict(400_000.0 + c * 10)
        cycles.append(time.process_time() - c0)
    cycle = statistics.median(cycles)
    # the same forecaster recalibrating every 5 min (the calibration's schedule of origins too)
    hour = now + 4 * settings.refit_interval_seconds
    fc.settings = settings.with_recalibration(LONG_RECALIBRATION)
    fc.refit(hour)
    fc.refit(hour + LONG_RECALIBRATION)  # the level model's fit
    recal_long = _recalibrations(fc, hour, LONG_RECALIBRATION)
    capacity = {
        str(r): _capacity(statistics.median(cpus), statistics.median(level_cpus), r, cpu, cycle)
        for r, cpu in ((every, recal_cpus), (LONG_RECALIBRATION, recal_long))
    }
    return {
        "predict_ms_median": round(statistics.median(predict), 3),
        "predict_ms_p95": round(float(np.percentile(predict, 95)), 3),
        "refit_seconds_median": round(statistics.median(walls), 3),
        "refit_cpu_seconds_median": round(statistics.median(cpus), 3),
        "level_refit_seconds_median": round(statistics.median(level_walls), 3),
        "cycle_500_cpu_seconds_median": round(cycle, 3),
        "by_recalibration_seconds": capacity,
        "targets": {"predict_ms": 5.0, "refit_seconds": 2.0, "cycle_500_cpu_seconds": 1.0},
    }


LONG_RECALIBRATION = 300
"""The longer recalibration cadence whose cost the benchmark reports beside the default's."""


def _recalibrations(fc: DeploymentForecaster, after: float, every: int) -> list[float]:
    """CPU seconds of two plain recalibrations (calibration and weights, nothing fitted) at
    ``after + 2 * every`` and ``after + 3 * every``, after a refit at ``after`` and the level
    model's fit a recalibration later."""
    out = []
    for j in range(2, 4):
        c0 = time.process_time()
        fc.refit(after + j * every)
        out.append(time.process_time() - c0)
    return out


def _capacity(refit: float, level: float, every: int, recal: list[float], cycle: float) -> dict[str, Any]:
    """One deployment's background CPU an hour (its refit, the level model's a recalibration later,
    and a plain recalibration every other ``every`` s), and how many deployments one core then
    forecasts every 10 s and recalibrates on time: the refits run in threads of the serving
    process beside the cycles, and the GIL keeps them all to about one core."""
    per_hour = refit + level + (3600 / every - 2) * statistics.median(recal)
    return {
        "recalibrate_cpu_seconds_median": round(statistics.median(recal), 3),
        "background_cpu_seconds_per_hour": round(per_hour, 1),
        "deployments_per_core": int(1.0 / (per_hour / 3600 + cycle / 500 / 10)),
    }


def _published_for_a_while(fc: DeploymentForecaster) -> None:
    """Give a forecaster the published forecasts of the steps before now (the moving average and
    fixed multiples of it), as if it had been forecasting all along: scoring them is part of the cost
    of every later forecast."""
    series = fc.series
    assert series is not None
    k, step = fc.k, series.step_seconds
    rates = series.rates
    n = len(rates)
    for i in range(n - 2 * fc.settings.accuracy_window, n):
        ma = float(rates[i - k : i].mean())
        fc._published.append(series.t0 + i * step, ma, 1.2 * ma, 1.5 * ma)


def service_replay(week_trace: Path) -> dict[str, Any]:
    """Run the live forecaster step by step over day 3 of the week (2 days of history first).

    It recalibrates every 10 min and refits the model hourly. The result is its own live accuracy,
    which can be set beside the backtest's figures for the same trace.
    """
    counts = load_trace(week_trace).counts
    settings = ForecasterSettings(recalibrate_interval_seconds=600, accuracy_window=100_000)
    fc = DeploymentForecaster("bench/replay", settings)
    start, end = 2 * 8640, 3 * 8640
    fc.observe(StepSeries(0.0, 10, counts[:start]))
    stderr_progress("service replay: day 3 of the week, one forecast per 10-s step")
    started = time.perf_counter()
    reasons: dict[str, int] = {}
    for i in range(start, end):
        now = i * 10.0
        if fc.refit_due(now):
            fc.refit(now)
        res = fc.predict(now)
        reasons[res.reason] = reasons.get(res.reason, 0) + 1
        fc.observe(StepSeries(now, 10, counts[i : i + 1]))
    acc = fc.accuracy()
    return {
        "forecasts": end - start,
        "reasons": reasons,
        "live_coverage_p90": round(acc["coverage_p90"], 4),
        "live_peak_under_rate": round(acc["peak_under_rate"], 4),
        "live_pinball_p90": round(acc["pinball_p90"], 5),
        "live_pinball_p50": round(acc["pinball_p50"], 5),
        "seconds": round(time.perf_counter() - started, 1),
    }


SLICES = ((3600, 48), (6 * 3600, 14))
"""(slice length in seconds, number of evenly spaced slices) cut from the week-long trace."""


def _spread(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "median": round(float(np.median(arr)), 4),
        "mean": round(float(arr.mean()), 4),
        "p10": round(float(np.percentile(arr, 10)), 4),
        "p90": round(float(np.percentile(arr, 90)), 4),
    }


def slice_study(week_trace: Path) -> dict[str, Any]:
    """Backtest evenly spaced 1-h and 6-h slices of the week; summarise coverage and ratio spreads."""
    tr = load_trace(week_trace)
    out: dict[str, Any] = {}
    for length, count in SLICES:
        n = length // tr.bin_seconds
        starts = np.linspace(0, len(tr.counts) - n, count).astype(int)
        cov: list[float] = []
        peak: list[float] = []
        ratio: list[float] = []
        best: dict[str, int] = {}
        stderr_progress(f"slices: {count} slices of {length // 3600} h")
        for j, a in enumerate(starts):
            t0 = tr.t0 + int(a) * tr.bin_seconds  # the slice keeps its time of day and day of week
            piece = Trace(f"{tr.name}[{a}:{a + n}]", t0, tr.bin_seconds, tr.counts[a : a + n].copy())
            doc, _ = run_backtest(piece, BacktestSettings())
            ours = doc["methods"]["outrider"]
            cov.append(ours["coverage_p90"])
            peak.append(ours["peak_under_rate"])
            ratio.append(doc["ratio_p90_vs_best_baseline"])
            best[doc["best_baseline"]] = best.get(doc["best_baseline"], 0) + 1
            if (j + 1) % 10 == 0:
                stderr_progress(f"slices: {j + 1}/{count} of {length // 3600} h done")
        c = np.asarray(cov)
        r = np.asarray(ratio)
        out[f"{length // 3600}h"] = {
            "slices": count,
            "independent_windows": int(doc["independent_windows"]),
            "coverage_p90": _spread(cov),
            "coverage_in_0.85_0.95": round(float(np.mean((c >= 0.85) & (c <= 0.95))), 3),
            "peak_under_rate": _spread(peak),
            "ratio_p90_vs_best_baseline": _spread(ratio),
            "ratio_above_1": round(float(np.mean(r > 1.0005)), 3),
            "best_baseline_counts": best,
        }
    return out


DAY = 86_400
TUNE_DAYS = 4
"""The week trace's days 1-4 are where settings may be chosen; days 5-7 are reported untouched."""
THINNED = (0.2, 0.05)
"""Fractions of the week's requests kept in its thinned copies."""
THIN_SEED = 11
"""Seed of the binomial thinning (fixed: the copies are the same in every run)."""
FUNCTION_SERIES = 50
"""How many of the busiest Azure Functions series are backtested one by one."""
WARM_UP_SECONDS = 6 * 3600
"""The function series are scored a second time from this hour on (see ``function_study``)."""


def thinned(trace: Trace, fraction: float, seed: int = THIN_SEED) -> Trace:
    """A copy of ``trace`` that keeps each request with probability ``fraction`` (binomial thinning)."""
    rng = np.random.default_rng(seed)
    counts = rng.binomial(trace.counts.astype(np.int64), fraction).astype(np.float64)
    return Trace(f"{trace.name}, {fraction:.0%} of the requests", trace.t0, trace.bin_seconds, counts)


IDLE_NIGHT_FRACTION = 0.01
"""Share of the week's requests kept in its copy with idle nights."""
IDLE_NIGHT_HOURS = (0, 6)
"""The hours of each day (from, to) without a request in that copy."""


def idle_nights(trace: Trace) -> Trace:
    """The week thinned to 1% of its requests, with no request from 0:00 to 6:00 on any day: a quiet
    service that sleeps at night (what the second learned model is for, see ``LEARNED_ACTIVE``)."""
    thin = thinned(trace, IDLE_NIGHT_FRACTION)
    hour = np.mod(trace.t0 + trace.bin_seconds * np.arange(len(thin.counts)), DAY) / 3600.0
    start, end = IDLE_NIGHT_HOURS
    counts = np.where((hour >= start) & (hour < end), 0.0, thin.counts)
    return Trace(f"{trace.name}, 1% of the requests, idle 0-6 h", trace.t0, trace.bin_seconds, counts)


def _say_split(label: str, split: dict[str, Any]) -> None:
    """One line on stderr: a held-out split's ratio and coverage on days 1-4 and days 5-7."""
    tune, held = split["days_1_4"], split["days_5_7"]
    print(
        f"{label}, days 1-4 (where settings may be chosen): ratio {tune['ratio_p90_vs_best_baseline']}, "
        f"coverage {tune['coverage_p90']}; days 5-7 (held out): ratio "
        f"{held['ratio_p90_vs_best_baseline']}, coverage {held['coverage_p90']}",
        file=sys.stderr,
    )


def held_out_split(week_trace: Path | Trace, quick: bool) -> dict[str, Any]:
    """One walk-forward over the week, scored twice: on days 1-4 and, held out, on days 5-7."""
    out: dict[str, Any] = {"tune_days": [1, TUNE_DAYS], "held_out_days": [TUNE_DAYS + 1, 7]}
    keys = ("days_1_4", "days_5_7")
    windows = [(0.0, float(TUNE_DAYS * DAY)), (float(TUNE_DAYS * DAY), None)]
    stderr_progress("held-out split: one walk-forward, scored on days 1-4 and on days 5-7")
    scored = run_backtest_windows(week_trace, BacktestSettings(quick=quick), windows, stderr_progress)
    for key, (doc, _) in zip(keys, scored, strict=True):
        ours = doc["methods"]["outrider"]
        out[key] = {
            "origins": doc["origins"],
            "best_baseline": doc["best_baseline"],
            "ratio_p90_vs_best_baseline": round(doc["ratio_p90_vs_best_baseline"], 4),
            "coverage_p90": round(ours["coverage_p90"], 4),
            "peak_under_rate": round(ours["peak_under_rate"], 4),
            "calibration_check": doc["calibration_check"],
        }
    return out


def function_series(inv_file: Path, count: int) -> list[Trace]:
    """The ``count`` busiest functions of the per-function file, each a 1-day trace of 1-min bins."""
    import gzip

    rows: list[tuple[float, str, np.ndarray]] = []
    with gzip.open(inv_file, "rt") as fh:
        header = fh.readline().rstrip("\n").split(",")
        minutes = len(header) - 3
        for line in fh:
            parts = line.rstrip("\n").split(",")
            counts = np.asarray([float(x) for x in parts[3 : 3 + minutes]], dtype=np.float64)
            rows.append((float(counts.sum()), parts[0][:12], counts))
    rows.sort(key=lambda r: -r[0])
    return [Trace(f"function {name}", 0, 60, counts) for _, name, counts in rows[:count]]


def after_warm_up(per: list[dict[str, Any]]) -> dict[str, Any]:
    """The function series' figures from hour 6 on (``per``: their entries, none failed). A series
    whose best baseline was exact from then on (a p90 pinball of 0: an idle stretch, or a timer
    without an odd minute) has no finite ratio; it is counted apart, not in the spread."""
    warm = [p["after_warm_up"] for p in per]
    scored = [w for w in warm if w["best_baseline_pinball_p90"] > 0]
    ratios = [w["ratio_p90_vs_best_baseline"] for w in scored]
    return {
        "scored_from_seconds": WARM_UP_SECONDS,
        "series_with_an_exact_baseline": len(warm) - len(scored),
        "ratio_p90_vs_best_baseline": _spread(ratios) if ratios else {},
        "ratio_above_1.1": int(sum(r > 1.1 for r in ratios)),
        "coverage_p90": _spread([w["coverage_p90"] for w in warm]) if warm else {},
    }


def function_study(inv_file: Path, quick: bool) -> dict[str, Any]:
    """Backtest the busiest functions as separate traces; the distribution of ratio and coverage.

    Each series is scored over the whole day (the figures the targets are about) and, from the same
    walk-forward, again from hour 6 on (``after_warm_up``): a one-day trace starts the forecaster
    with no history, and the learned model joins after 3 h at the earliest, so the first hours
    show its cold start rather than what it does once warm.
    """
    traces = function_series(inv_file, FUNCTION_SERIES)
    per: list[dict[str, Any]] = []
    for j, tr in enumerate(traces):
        try:
            (doc, _), (warm, _) = run_backtest_windows(
                tr, BacktestSettings(quick=quick), [(0.0, None), (float(WARM_UP_SECONDS), None)]
            )
        except Exception as exc:  # one series too short or empty must not stop the study; say so
            per.append({"trace": tr.name, "requests": float(tr.counts.sum()), "error": str(exc)})
            continue
        ours = doc["methods"]["outrider"]
        best = doc["methods"][doc["best_baseline"]]
        per.append(
            {
                "trace": tr.name,
                "requests": float(tr.counts.sum()),
                "best_baseline": doc["best_baseline"],
                "ratio_p90_vs_best_baseline": round(doc["ratio_p90_vs_best_baseline"], 4),
                # both losses per unit of the series' mean rate: a ratio of two tiny losses (a timer
                # every method forecasts almost exactly) shows here for what it is
                "outrider_pinball_p90": float(f"{ours['pinball_p90']:.3g}"),
                "best_baseline_pinball_p90": float(f"{best['pinball_p90']:.3g}"),
                "coverage_p90": round(ours["coverage_p90"], 4),
                "peak_under_rate": round(ours["peak_under_rate"], 4),
                "after_warm_up": {
                    "best_baseline": warm["best_baseline"],
                    "ratio_p90_vs_best_baseline": round(warm["ratio_p90_vs_best_baseline"], 4),
                    "best_baseline_pinball_p90": float(
                        f"{warm['methods'][warm['best_baseline']]['pinball_p90']:.3g}"
                    ),
                    "coverage_p90": round(warm["methods"]["outrider"]["coverage_p90"], 4),
                },
            }
        )
        if (j + 1) % 10 == 0:
            stderr_progress(f"functions: {j + 1}/{len(traces)} backtested")
    ok = [p for p in per if "error" not in p]
    ratios = [p["ratio_p90_vs_best_baseline"] for p in ok]
    cov = np.asarray([p["coverage_p90"] for p in ok])
    return {
        "series": len(per),
        "failed": len(per) - len(ok),
        "ratio_p90_vs_best_baseline": _spread(ratios) if ok else {},
        "ratio_max": round(max(ratios), 4) if ok else None,
        "ratio_above_1.1": int(sum(r > 1.1 for r in ratios)),
        "coverage_p90": _spread(list(cov)) if ok else {},
        "coverage_in_0.85_0.95": round(float(np.mean((cov >= 0.85) & (cov <= 0.95))), 3) if ok else None,
        "after_warm_up": after_warm_up(ok),
        "per_series": per,
    }


def _service(week_trace: Trace, week: Path) -> dict[str, Any]:
    return {
        "service": service_costs(week_trace),
        # the same on the idle-night copy: two learned models to fit and to predict with
        "service_idle_nights": service_costs(idle_nights(week_trace)),
        "service_replay": service_replay(week),
    }


def _service_only(week: Path) -> int:
    out = RESULTS / "forecast.json"
    if not week.exists() or not out.exists():
        print(f"error: --service-only needs {week} and an earlier {out}", file=sys.stderr)
        return 2
    summary = json.loads(out.read_text())
    summary.update(_service(load_trace(week), week))
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("service", "service_idle_nights", "service_replay")}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="quick backtests (for a smoke run)")
    ap.add_argument("--traces", default=str(REPO.parent / "shared" / "traces"), help="folder of traces")
    ap.add_argument("--only", nargs="*", default=None, help="trace file names to run")
    ap.add_argument("--no-slices", action="store_true", help="skip the 1-h/6-h slice study")
    ap.add_argument(
        "--no-functions", action="store_true", help="skip the per-function backtests of the busiest 50"
    )
    ap.add_argument(
        "--service-only",
        action="store_true",
        help="measure only the live costs and the replay; replace them in an existing forecast.json",
    )
    args = ap.parse_args(argv)
    folder = Path(args.traces)
    if not folder.is_dir():
        print(f"error: traces folder {folder} is absent", file=sys.stderr)
        return 2
    if args.service_only:
        return _service_only(folder / "azure_llm_2024_conv_10s.csv")
    files = [f for pat in ("*_1s.csv", "*_10s.csv", "*_1min.csv") for f in sorted(folder.glob(pat))]
    if args.only:
        files = [f for f in files if f.name in args.only]
    summary: dict[str, Any] = {"quick": args.quick, "traces": {}}
    for f in files:
        stderr_progress(f"backtest {f.name}")
        started = time.perf_counter()
        doc, plot = run_backtest(f, BacktestSettings(quick=args.quick), stderr_progress)
        write_outputs(doc, plot, RESULTS / "forecast" / f.stem)
        print(format_table(doc), file=sys.stderr)
        ours = doc["methods"]["outrider"]
        best = doc["best_baseline"]
        summary["traces"][f.name] = {
            "origins": doc["origins"],
            "best_baseline": best,
            "ratio_p90_vs_best_baseline": round(doc["ratio_p90_vs_best_baseline"], 4),
            "outrider_pinball_p90": round(ours["pinball_p90"], 5),
            "best_baseline_pinball_p90": round(doc["methods"][best]["pinball_p90"], 5),
            "coverage_p90": round(ours["coverage_p90"], 4),
            "peak_under_rate": round(ours["peak_under_rate"], 4),
            "learned_model_share": round(doc["learned_model_share"], 3),
            "independent_windows": doc["independent_windows"],
            "calibration_check": doc["calibration_check"],
            "seconds": round(time.perf_counter() - started, 1),
        }
    week = folder / "azure_llm_2024_conv_10s.csv"
    if week.exists():
        week_trace = load_trace(week)
        summary["held_out"] = held_out_split(week_trace, args.quick)
        _say_split("week", summary["held_out"])
        summary["held_out_thinned"] = {}
        for fraction in THINNED:
            stderr_progress(f"held-out split of the week thinned to {fraction:.0%} (seed {THIN_SEED})")
            split = held_out_split(thinned(week_trace, fraction), args.quick)
            summary["held_out_thinned"][f"{fraction:g}"] = {"seed": THIN_SEED, **split}
            _say_split(f"week thinned to {fraction:.0%}", split)
        stderr_progress(f"held-out split of the week with idle nights (1%, seed {THIN_SEED})")
        split = held_out_split(idle_nights(week_trace), args.quick)
        summary["held_out_idle_nights"] = {"seed": THIN_SEED, "idle_hours": list(IDLE_NIGHT_HOURS), **split}
        _say_split("week at 1% with idle nights", split)
        summary.update(_service(week_trace, week))
        if not args.no_slices and not args.quick:
            summary["slices"] = slice_study(week)
    inv = folder / "azure_functions_2019_sample1340_inv.csv.gz"
    if inv.exists() and not args.no_functions:
        fn = summary["functions"] = function_study(inv, args.quick)
        if fn["ratio_p90_vs_best_baseline"]:
            warm = fn["after_warm_up"]
            print(
                f"functions: ratio median {fn['ratio_p90_vs_best_baseline']['median']}, "
                f"{fn['ratio_above_1.1']} over 1.1; from hour 6 on: median "
                f"{warm['ratio_p90_vs_best_baseline']['median']}, {warm['ratio_above_1.1']} over 1.1 "
                f"({warm['series_with_an_exact_baseline']} with an exact baseline left out)",
                file=sys.stderr,
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "forecast.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
