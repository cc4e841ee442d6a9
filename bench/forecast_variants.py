"""Forecaster on week-long traces of other shapes, built from the shared week, beside an untuned GBM.

The held-out week-long traces the forecaster is judged on are not in this repository. This benchmark
builds five week-long traces from the shared week (four copies of it with shapes the conversation
week does not have, and one on its calendar only), runs the
command those traces are scored with (``outrider forecast backtest --horizon 300 --quick``) on each,
and scores it on days 1-4, days 5-7 and the whole week:

* ``diurnal_sharp``: the week's 30-min level raised to the power 2.5 (a day/night contrast of about
  180x instead of 8x, as in traffic that follows working hours), 5 req/s on average, with the
  week's own fluctuation around that level and Poisson counting noise;
* ``bursts``: a tenth of the week's volume, multiplied by bursts of 1.5-4x lasting about 90 s that
  start about every 15 min at random;
* ``on_off``: a code-completion-like service (the shape of ``azure_llm_2023_code``): a low base at
  the week's daily shape and on/off bursts of 30-120 requests per 10 s lasting 20-60 s, about one
  a minute at the mean level, independent of each other;
* ``poisson_level``: Poisson counts around the week's 30-min level at the week's own volume, so the
  expected count of every bin is known. On it the median forecast is also scored against the
  irreducible error (``location_check``);
* ``working_hours``: not the week's shape but its calendar (it starts on a Sunday): a service used
  in office hours, 10 req/s on average. Weekdays ramp from a night level to 8x it between 7:30
  and 8:30 and back between 17:00 and 18:30, with a lunch dip; weekends reach 2.5x. Each day is
  scaled by 0.85-1.15 at random, and the level wanders (a multiplicative AR(1) of 15%, correlated
  over 10 min) under Poisson counting noise. The ramps recur at the same time every weekday, which
  a model of the time of day can learn and a level that follows the last minutes cannot.

Beside the backtest's own baselines it scores a reference: an untuned gradient-boosted quantile
model (scikit-learn's ``HistGradientBoostingRegressor`` with its default settings and quantile loss
0.9) on the features such a model is usually given (the last 30 step rates, means over 1-240 min,
time of day and week, the next window a day ago and, on traces longer than a week, a week ago),
trained on absolute rates, refitted
every 6 h on the windows that had ended, not calibrated. It is our reading of "an untuned
gradient-boosted quantile model", not the independent evaluation's code, and it is not a baseline:
it never counts as the best baseline.

Writes ``bench/results/forecast-variants.json`` and prints it. Seeds are fixed, so the built traces
are the same in every run. Usage: ``python bench/forecast_variants.py [--traces DIR] [--only NAME ...]
[--out FILE]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from outrider_scheduler.forecast.backtest import BacktestSettings, run_backtest_windows, stderr_progress
from outrider_scheduler.forecast.ensemble import pinball
from outrider_scheduler.forecast.series import to_step_series
from outrider_scheduler.forecast.traces import Trace, load_trace

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "forecast-variants.json"
DAY = 86_400
TUNE_DAYS = 4
HORIZON = 300
SEED = 5
Array = npt.NDArray[np.float64]


def level(counts: Array, bins: int = 180) -> Array:
    """The counts' centred moving mean over ``bins`` bins (the edges padded with their value)."""
    padded = np.pad(counts, (bins // 2, bins - bins // 2 - 1), mode="edge")
    return np.convolve(padded, np.ones(bins) / bins, mode="valid")


def diurnal_sharp(week: Trace, rng: np.random.Generator) -> Array:
    """The week's level to the power 2.5, 5 req/s on average, its fluctuation and Poisson noise kept."""
    lam = level(week.counts)
    sharp = lam**2.5
    sharp *= 5.0 * week.bin_seconds / sharp.mean()
    return rng.poisson(sharp * week.counts / lam).astype(np.float64)


def bursts(week: Trace, rng: np.random.Generator) -> Array:
    """A tenth of the week's volume times random bursts of 1.5-4x lasting about 90 s, starting about
    every 15 min."""
    gain = np.ones(len(week.counts))
    gap, length = 900 / week.bin_seconds, 90 / week.bin_seconds  # in bins
    i = 0
    while True:
        i += int(rng.exponential(gap))
        if i >= len(gain):
            break
        gain[i : i + max(1, int(rng.exponential(length)))] *= rng.uniform(1.5, 4)
    return rng.poisson(0.1 * week.counts * gain).astype(np.float64)


def on_off(week: Trace, rng: np.random.Generator) -> Array:
    """A low base at the week's daily shape and independent on/off bursts (a code-completion shape)."""
    shape = level(week.counts)
    shape /= shape.mean()
    out = rng.poisson(0.75 * shape * week.bin_seconds / 10).astype(np.float64)
    for i in np.nonzero(rng.random(len(out)) < shape / 6)[0]:
        d = int(rng.integers(2, 7))
        out[i : i + d] += rng.poisson(rng.uniform(30, 120), size=len(out[i : i + d]))
    return out


def poisson_level(week: Trace, rng: np.random.Generator) -> Array:
    """Poisson counts around the week's 30-min level (``level``), at the week's own volume: the
    only noise is counting noise around a known expected rate."""
    return rng.poisson(level(week.counts)).astype(np.float64)


def working_hours(week: Trace, rng: np.random.Generator) -> Array:
    """An office-hours service on the week's calendar (day 0 a Sunday), 10 req/s on average: see the
    module docstring."""
    n, b = len(week.counts), week.bin_seconds
    t = week.t0 + b * np.arange(n, dtype=np.float64)
    hour = np.mod(t, DAY) / 3600.0
    weekend = np.isin(np.floor_divide(t, DAY) % 7, (0, 6))
    office = np.clip(hour - 7.5, 0.0, 1.0) * np.clip((18.5 - hour) / 1.5, 0.0, 1.0)
    lunch = 1.5 * np.exp(-(((hour - 12.5) / 0.5) ** 2)) * office
    profile = np.where(weekend, 1.0 + 1.5 * office, 1.0 + 7.0 * office - lunch)
    per_day = DAY // b
    factor = np.repeat(rng.uniform(0.85, 1.15, n // per_day + 1), per_day)[:n]
    keep = np.exp(-b / 600.0)  # the wander's correlation: 10 min
    shocks = rng.normal(0.0, 0.15 * np.sqrt(1.0 - keep * keep), n)
    wander = np.zeros(n)
    for i in range(1, n):
        wander[i] = keep * wander[i - 1] + shocks[i]
    lam = profile * factor * np.exp(wander)
    counts: Array = rng.poisson(lam * 10.0 * b / lam.mean()).astype(np.float64)
    return counts


VARIANTS: dict[str, Callable[[Trace, np.random.Generator], Array]] = {
    "diurnal_sharp": diurnal_sharp,
    "bursts": bursts,
    "on_off": on_off,
    "poisson_level": poisson_level,
    "working_hours": working_hours,
}
KNOWN_LEVEL = {"poisson_level"}
"""Variants whose expected count per bin is ``level(week.counts)``: their point forecasts are also
scored against the irreducible error (see ``location_check``)."""


def untuned_features(rates: Array, t0: float, step: int, k: int, origins: npt.NDArray[np.int64]) -> Array:
    """Feature rows of the untuned reference at ``origins`` (origin ``i`` sees ``rates[:i]``)."""
    cs = np.concatenate(([0.0], np.cumsum(rates)))
    cols = []
    for lag in range(1, 31):
        j = origins - lag
        cols.append(np.where(j >= 0, rates[np.maximum(j, 0)], np.nan))
    for minutes in (1, 5, 15, 30, 60, 240):
        w = max(1, minutes * 60 // step)
        lo = np.maximum(origins - w, 0)
        cols.append((cs[origins] - cs[lo]) / np.maximum(origins - lo, 1))
    t = t0 + step * origins.astype(np.float64)
    cols.append(np.mod(t, DAY) / 3600.0)
    cols.append(np.mod(t // DAY, 7))
    for season in (DAY, 7 * DAY):
        j = origins - season // step
        j0 = np.maximum(j, 0)
        nxt = (cs[np.minimum(j0 + k, len(rates))] - cs[j0]) / k
        cols.append(np.where(j >= 0, nxt, np.nan))
    return np.column_stack(cols)


def untuned_gbm(trace: Trace, step: int) -> Array:
    """The untuned reference's p90 of the window mean rate at every origin ``1..n`` of the trace's
    ``step``-second series (NaN before its first fit, at 3 h)."""
    rates = to_step_series(trace, 0, step).rates
    k = HORIZON // step
    n = len(rates)
    origins = np.arange(1, n + 1, dtype=np.int64)
    x = untuned_features(rates, trace.t0, step, k, origins)
    cs = np.concatenate(([0.0], np.cumsum(rates)))
    ends = np.minimum(origins + k, n)
    y = np.where(origins + k <= n, (cs[ends] - cs[origins]) / k, np.nan)
    out = np.full(n, np.nan)
    every, first = 6 * 3600 // step, 3 * 3600 // step
    for r in range(first, n + 1, every):
        train = np.nonzero(origins + k <= r)[0][-50_000:]
        cols = [c for c in range(x.shape[1]) if np.isfinite(x[train, c]).any()]
        rows = np.nonzero((origins >= r) & (origins < r + every))[0]
        model = HistGradientBoostingRegressor(loss="quantile", quantile=0.9, random_state=0)
        with threadpool_limits(limits=1):
            model.fit(x[train][:, cols], y[train])
            out[rows] = model.predict(x[rows][:, cols])
    return out


def location_check(trace: Trace, expected: Array, step: int, plot: dict[str, Any]) -> dict[str, float]:
    """How close Outrider's median forecast comes to the best possible on a trace whose expected
    count per bin (``expected``) is known: its mean absolute error over the irreducible one (the
    error of the expected window mean itself), beside a moving average's and that of a linear
    predictor fitted in hindsight on the scored origins themselves (the last 60 step rates and the
    means over 15, 30 and 60 min: an optimistic bound for any linear forecaster)."""
    rates = to_step_series(trace, 0, step).rates
    mean_rate = to_step_series(dataclasses.replace(trace, counts=expected), 0, step).rates
    k = HORIZON // step
    o = np.rint((plot["t"] - trace.t0) / step).astype(np.int64)
    cs = np.concatenate(([0.0], np.cumsum(rates)))
    ce = np.concatenate(([0.0], np.cumsum(mean_rate)))
    actual = plot["actual_mean"]
    cols = [np.ones(len(o))] + [rates[o - lag] for lag in range(1, 61)]
    cols += [(cs[o] - cs[o - w]) / w for w in (m * 60 // step for m in (15, 30, 60))]
    x = np.column_stack(cols)
    coef, *_ = np.linalg.lstsq(x, actual, rcond=None)

    def mae(forecast: Array) -> float:
        return float(np.mean(np.abs(actual - forecast)))

    floor = mae((ce[o + k] - ce[o]) / k)
    return {
        "outrider_p50_mae_vs_irreducible": round(mae(plot["forecasts"]["outrider"]["mean_p50"]) / floor, 3),
        "hindsight_linear_mae_vs_irreducible": round(mae(x @ coef) / floor, 3),
        "moving_average_mae_vs_irreducible": round(mae((cs[o] - cs[o - k]) / k) / floor, 3),
    }


def study(trace: Trace, expected: Array | None = None) -> dict[str, Any]:
    """The quick backtest of ``trace`` on days 1-4, days 5-7 and the week, with the reference (and,
    given the ``expected`` count per bin, the location check on days 5-7)."""
    windows: list[tuple[float, float | None]] = [
        (0.0, float(TUNE_DAYS * DAY)),
        (float(TUNE_DAYS * DAY), None),
        (0.0, None),
    ]
    started = time.perf_counter()
    scored = run_backtest_windows(trace, BacktestSettings(horizon_seconds=HORIZON, quick=True), windows)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {"mean_rps": round(float(trace.counts.sum()) / trace.duration_seconds, 3)}
    step = scored[0][0]["step_seconds"]
    reference = untuned_gbm(trace, step)
    for key, (doc, plot) in zip(("days_1_4", "days_5_7", "week"), scored, strict=True):
        best = doc["best_baseline"]
        actual = plot["actual_mean"]
        ref = reference[np.rint((plot["t"] - trace.t0) / step).astype(np.int64) - 1]
        ok = np.isfinite(ref)
        best_loss = pinball(actual[ok], plot["forecasts"][best]["mean_p90"][ok], 0.9).mean()
        out[key] = {
            "origins": doc["origins"],
            "best_baseline": best,
            "ratio_p90_vs_best_baseline": round(doc["ratio_p90_vs_best_baseline"], 4),
            "coverage_p90": round(doc["methods"]["outrider"]["coverage_p90"], 4),
            "untuned_gbm_ratio_p90_vs_best_baseline": round(
                float(pinball(actual[ok], ref[ok], 0.9).mean() / max(best_loss, 1e-12)), 4
            ),
            "untuned_gbm_coverage_p90": round(float(np.mean(actual[ok] <= ref[ok] + 1e-9)), 4),
            "untuned_gbm_scored_share": round(float(ok.mean()), 4),
        }
    if expected is not None:
        out["days_5_7"]["location_check"] = location_check(trace, expected, step, scored[1][1])
    out["backtest_seconds"] = round(seconds, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", default=str(REPO.parent / "shared" / "traces"), help="folder of traces")
    ap.add_argument("--only", nargs="*", default=None, help="variants to run (default: all, and the week)")
    ap.add_argument("--out", default=str(OUT), help=f"where to write the JSON (default {OUT})")
    args = ap.parse_args(argv)
    path = Path(args.traces) / "azure_llm_2024_conv_10s.csv"
    if not path.exists():
        print(f"error: {path} is absent", file=sys.stderr)
        return 2
    week = load_trace(path)
    traces = {"week": week}
    for name, build in VARIANTS.items():
        traces[name] = Trace(
            f"{week.name}, {name} (built, seed {SEED})",
            week.t0,
            week.bin_seconds,
            build(week, np.random.default_rng(SEED)),
        )
    if args.only is not None:
        unknown = sorted(set(args.only) - set(traces))
        if unknown or not args.only:
            print(
                f"error: --only takes one or more of {', '.join(traces)}; got {unknown or 'none'}",
                file=sys.stderr,
            )
            return 2
        traces = {n: t for n, t in traces.items() if n in args.only}
    summary: dict[str, Any] = {
        "command": "outrider forecast backtest --horizon 300 --quick",
        "seed": SEED,
        "traces": {},
    }
    for name, trace in traces.items():
        stderr_progress(f"{name}: quick backtest and the untuned reference")
        known = level(week.counts) if name in KNOWN_LEVEL else None
        res = summary["traces"][name] = study(trace, known)
        stderr_progress(
            f"{name}: days 5-7 ratio {res['days_5_7']['ratio_p90_vs_best_baseline']} "
            f"(untuned GBM {res['days_5_7']['untuned_gbm_ratio_p90_vs_best_baseline']}), "
            f"week {res['week']['ratio_p90_vs_best_baseline']}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
