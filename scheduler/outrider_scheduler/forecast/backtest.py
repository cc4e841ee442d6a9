"""Rolling-origin backtests of Outrider's forecaster against the peers' baselines.

Every step-grid origin is a forecast origin. When the step is wider than the trace's bins (1-s
traces use 10-s steps) the trace is cut into interleaved phase grids and the origins of all phases
are pooled, so short traces still give hundreds of windows. Scoring starts once every method is
calibrated and Outrider's weights have a loss history, and all methods are scored on the same
origins.

Losses (``pinball_p50``, ``pinball_p90``) concern the window's mean rate and are divided by the
trace's mean rate. ``coverage_p90`` is the share of windows whose mean rate was at or under the
p90; ``peak_under_rate`` the share whose peak rate (busiest step bin) was at or under the p90 of
the peak (both up to a thousandth of a request per step: :func:`.ensemble.covered`). ``mase`` is
the mean absolute error of the p50 divided by that of the naive forecast "the next window's mean
equals the last window's mean" over the same origins.

Coverage is a rate over *windows*, and the windows of neighbouring origins overlap, so a short trace
holds few independent outcomes: half an hour of scored origins is six non-overlapping 5-minute
windows. ``calibration_range`` gives the range a perfectly calibrated p90 would show over that many
independent windows (binomial, central 90%); a coverage outside it is evidence of miscalibration,
one inside it is not evidence either way. Real forecast errors are correlated from one window to
the next, so the true spread is wider still: the range is a lower bound on the sampling noise.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import binom

from .baselines import BASELINE_NAMES, OPTIONAL_BASELINES, prophet_available
from .ensemble import QUANTILES, TARGETS, EnsembleSettings, covered, pinball
from .errors import ForecastError, InsufficientHistoryError
from .pipeline import ENSEMBLE_CANDIDATES, WalkForward, WalkForwardResult, eps_for, run_walk_forward
from .series import effective_horizon, step_seconds_for, to_step_series
from .traces import Trace, load_trace

__all__ = [
    "BacktestSettings",
    "calibration_range",
    "format_table",
    "independent_windows",
    "min_history_seconds",
    "run_backtest",
    "run_backtest_windows",
    "write_outputs",
]

Array = npt.NDArray[np.float64]
Progress = Callable[[str], None]
MIN_EVAL_ORIGINS = 30
"""Fewest scored origins (per phase) a backtest accepts."""
QUICK_MAX_ROWS = 4000
"""Most training rows of a quick backtest's learned model (thinned evenly over the history). It keeps
the full model's boosting rounds: the 60 it had before 2026-12-06 (night) scored worse on days 1-4
of the week and of its thinned copies (see docs/forecaster.md)."""


@dataclass(frozen=True)
class BacktestSettings:
    """What a backtest runs."""

    horizon_seconds: int = 300
    """Forecast horizon."""
    quick: bool = False
    """Fewer training rows, fewer phases, and fewer refits on traces under a day (for tests and
    ``--quick``). A long trace is still refitted every ``refit_every_seconds`` (6 h): refitting a
    week once a day left the first fit, on 3 h of history, serving all of the first day, and the
    live forecaster refits every hour."""
    max_phases: int = 10
    """At most this many interleaved phase grids (when the step is wider than the trace bins)."""
    walk_forward: WalkForward = field(default_factory=WalkForward)
    """Schedules, windows and model settings."""
    score_from_seconds: float = 0.0
    """Score only origins at or after this time of the trace (seconds from its start). Everything
    before still trains the models as history: a held-out split in time, not a shorter trace."""
    score_until_seconds: float | None = None
    """Score only origins before this time (None: to the end)."""

    def effective(self) -> BacktestSettings:
        """The settings actually used (``quick`` shrinks the work)."""
        if not self.quick:
            return self
        m = self.walk_forward.model
        wf = dataclasses.replace(
            self.walk_forward,
            min_refits=4,
            arima_window_seconds=3600,
            model=dataclasses.replace(m, max_rows=min(m.max_rows, QUICK_MAX_ROWS)),
        )
        return dataclasses.replace(self, quick=True, max_phases=min(self.max_phases, 2), walk_forward=wf)


def min_history_seconds(bin_seconds: int, horizon_seconds: int, ensemble: EnsembleSettings) -> int:
    """The shortest trace that a backtest can score (the error message quotes it)."""
    step = step_seconds_for(bin_seconds, horizon_seconds)
    k = max(1, horizon_seconds // step)
    steps = max(2 * k, 20) + 2 * k + ensemble.min_calib + MIN_EVAL_ORIGINS
    return steps * step + step


def independent_windows(origin_times: Array, horizon_seconds: int) -> int:
    """How many pairwise non-overlapping forecast windows fit among scored origins at these times."""
    if len(origin_times) == 0:
        return 0
    span = float(np.max(origin_times) - np.min(origin_times))
    return int(span // horizon_seconds) + 1


def calibration_range(windows: int, tau: float = 0.9, level: float = 0.9) -> tuple[float, float]:
    """Central ``level`` range of the coverage a calibrated ``tau`` quantile shows over ``windows``
    independent windows (binomial); ``(0, 1)`` when there are none."""
    if windows <= 0:
        return 0.0, 1.0
    lo, hi = binom.ppf([(1 - level) / 2, (1 + level) / 2], windows, tau)
    return float(lo) / windows, float(hi) / windows


def baselines_of(res: WalkForwardResult) -> list[str]:
    """The baselines a walk-forward run computed, in report order."""
    return [m for m in (*BASELINE_NAMES, *OPTIONAL_BASELINES) if m in res.candidates]


def _phase_scores(
    res: WalkForwardResult, eps: float, baselines: list[str], window: tuple[float, float | None] = (0.0, None)
) -> dict[str, Any]:
    """Per-origin forecasts and actuals on the rows every method can be scored on, inside the
    scoring ``window`` (origin times from, until)."""
    tg = res.targets
    known = np.isfinite(tg.rate["mean_p50"])
    ok = known.copy()
    for m in baselines:
        for t in TARGETS:
            ok &= np.isfinite(res.ensemble.calibrated[m][t])
    for t in TARGETS:
        ok &= np.isfinite(res.ensemble.final[t])
    ok &= res.ensemble.warm
    if ok.any():
        first = int(np.argmax(ok))
        ok[:first] = False
    times = res.features.t0 + res.features.step * res.origins.astype(np.float64)
    ok &= times >= window[0]
    if window[1] is not None:
        ok &= times < window[1]
    rows = np.nonzero(ok)[0]
    fc: dict[str, dict[str, Array]] = {}
    fc["outrider"] = {t: res.ensemble.final[t][rows] for t in TARGETS}
    for m in baselines:
        fc[m] = {t: res.ensemble.calibrated[m][t][rows] for t in TARGETS}
    for d in fc.values():
        d["mean_p90"] = np.maximum(d["mean_p90"], d["mean_p50"])
        d["peak_p90"] = np.maximum(d["peak_p90"], d["mean_p90"])
    k = len(res.origins) - int(np.sum(known))  # rows without actuals == horizon steps
    mean = tg.rate["mean_p50"]
    prev = np.full(len(mean), np.nan)
    prev[k:] = mean[:-k] if k else mean
    # the naive forecast for origin i is the mean of [i-k, i) which is the actual of origin i-k
    return {
        "rows": rows,
        "origin_times": times[rows],
        "actual_mean": mean[rows],
        "actual_peak": tg.rate["peak_p90"][rows],
        "naive": prev[rows],
        "forecasts": fc,
        "learned_share": float(res.learned_active[rows].mean()) if rows.size else 0.0,
    }


def _timing(res: WalkForwardResult, name: str, n_origins: int) -> tuple[float, float]:
    if name == "outrider":
        used = [res.candidates[m] for m in ENSEMBLE_CANDIDATES if m in res.candidates]
        fit = sum(c.fit_seconds for c in used)
        pred = sum(c.predict_seconds for c in used) + res.ensemble_seconds
    else:
        fit, pred = res.candidates[name].fit_seconds, res.candidates[name].predict_seconds
    return fit, pred * 1000.0 / max(n_origins, 1)


def _prefixed(say: Progress, phase: int, message: str) -> None:
    say(f"phase {phase}: {message}")


def run_backtest(
    trace: Trace | str | Path, settings: BacktestSettings | None = None, progress: Progress | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Backtest every method on ``trace``; return (the ``backtest.json`` dict, arrays for plotting)."""
    s = settings or BacktestSettings()
    return run_backtest_windows(trace, s, [(s.score_from_seconds, s.score_until_seconds)], progress)[0]


def run_backtest_windows(
    trace: Trace | str | Path,
    settings: BacktestSettings,
    windows: Sequence[tuple[float, float | None]],
    progress: Progress | None = None,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """One walk-forward over ``trace``, scored on each scoring window ``(from, until)`` in turn (the
    settings' own window is not used): one ``run_backtest`` result per window, for the cost of one."""
    say = progress or (lambda _m: None)
    s = settings.effective()
    tr = trace if isinstance(trace, Trace) else load_trace(trace)
    if s.horizon_seconds < 1:
        raise ForecastError(f"horizon must be positive, got {s.horizon_seconds} s")
    for start, until in windows:
        if start < 0 or (until is not None and until <= start):
            raise ForecastError(
                f"the scoring window must have 0 <= from < until, got from={start:g} until={until}"
            )
    step = step_seconds_for(tr.bin_seconds, s.horizon_seconds)
    horizon = effective_horizon(s.horizon_seconds, step)
    notes = list(tr.repairs)
    if horizon != s.horizon_seconds:
        notes.append(
            f"horizon {s.horizon_seconds} s is not a whole number of {step} s steps; used {horizon} s"
        )
    need = min_history_seconds(tr.bin_seconds, horizon, s.walk_forward.ensemble)
    if tr.duration_seconds < need:
        raise InsufficientHistoryError(tr.duration_seconds, need, horizon)
    per = step // tr.bin_seconds
    phases = sorted({round(p) for p in np.linspace(0, per - 1, min(per, s.max_phases))})
    eps = eps_for(horizon)
    started = time.perf_counter()
    results: list[WalkForwardResult] = []
    for j, ph in enumerate(phases):
        series = to_step_series(tr, ph, step)
        say(f"phase {j + 1}/{len(phases)}: {len(series.y)} steps of {step} s")
        res = run_walk_forward(series, horizon, s.walk_forward, functools.partial(_prefixed, say, j + 1))
        results.append(res)
    baselines = [m for m in baselines_of(results[0]) if all(m in r.candidates for r in results)]
    scored = []
    for window in windows:
        pooled = [_phase_scores(res, eps, baselines, window) for res in results]
        n_total = sum(len(p["rows"]) for p in pooled)
        if n_total < MIN_EVAL_ORIGINS:
            if window[0] > 0 or window[1] is not None:
                until = window[1] if window[1] is not None else tr.duration_seconds
                raise ForecastError(
                    f"the scoring window [{window[0]:g}, {until:g}) s of {tr.name} holds "
                    f"{n_total} scorable origins; at least {MIN_EVAL_ORIGINS} are needed"
                )
            raise InsufficientHistoryError(tr.duration_seconds, need, horizon)
        scored.append((pooled, n_total, window))
    out = []
    for pooled, n_total, window in scored:
        doc, plot = _score(tr, s, results, pooled, n_total, window, baselines, step, horizon, len(phases))
        doc["repairs"] = notes
        doc["seconds"] = round(time.perf_counter() - started, 2)
        out.append((doc, plot))
    return out


def _score(
    tr: Trace,
    s: BacktestSettings,
    results: list[WalkForwardResult],
    pooled: list[dict[str, Any]],
    n_total: int,
    window: tuple[float, float | None],
    baselines: list[str],
    step: int,
    horizon: int,
    phases: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``backtest.json`` dict (without ``repairs`` and ``seconds``) and the plot arrays of one
    scoring window's pooled phase scores."""
    actual_mean = np.concatenate([p["actual_mean"] for p in pooled])
    actual_peak = np.concatenate([p["actual_peak"] for p in pooled])
    naive = np.concatenate([p["naive"] for p in pooled])
    naive_mae = float(np.nanmean(np.abs(actual_mean - naive)))
    scale = tr.mean_rate if tr.mean_rate > 0 else 1.0
    methods: dict[str, dict[str, float]] = {}
    for m in ("outrider", *baselines):
        q = {t: np.concatenate([p["forecasts"][m][t] for p in pooled]) for t in TARGETS}
        fit = pred_ms = 0.0
        for res in results:
            f, pm = _timing(res, m, len(res.origins))
            fit += f
            pred_ms += pm / len(results)
        methods[m] = {
            "pinball_p50": float(pinball(actual_mean, q["mean_p50"], QUANTILES["mean_p50"]).mean() / scale),
            "pinball_p90": float(pinball(actual_mean, q["mean_p90"], QUANTILES["mean_p90"]).mean() / scale),
            "coverage_p90": float(np.mean(covered(actual_mean, q["mean_p90"], step))),
            "peak_under_rate": float(np.mean(covered(actual_peak, q["peak_p90"], step))),
            "mase": float(np.mean(np.abs(actual_mean - q["mean_p50"])) / naive_mae) if naive_mae > 0 else 0.0,
            "fit_seconds": round(fit, 4),
            "predict_ms": round(pred_ms, 6),
        }
    best = min(baselines, key=lambda m: methods[m]["pinball_p90"])
    # phases are interleaved copies of the same windows: independence is counted on phase 0
    windows = independent_windows(pooled[0]["origin_times"], horizon)
    lo, hi = calibration_range(windows)
    ours = methods["outrider"]
    doc: dict[str, Any] = {
        "trace": tr.name,
        "bin_seconds": tr.bin_seconds,
        "horizon_seconds": horizon,
        "origins": n_total,
        "scored_seconds": [window[0], window[1]],
        "methods": methods,
        "step_seconds": step,
        "phases": phases,
        "quick": s.quick,
        "best_baseline": best,
        "ratio_p90_vs_best_baseline": methods["outrider"]["pinball_p90"]
        / max(methods[best]["pinball_p90"], 1e-12),
        "learned_model_share": float(np.mean([p["learned_share"] for p in pooled])),
        "independent_windows": windows,
        "calibration_check": {
            "coverage_range_if_calibrated": [round(lo, 4), round(hi, 4)],
            "coverage_p90_consistent": bool(lo <= ours["coverage_p90"] <= hi),
            "peak_under_rate_consistent": bool(lo <= ours["peak_under_rate"] <= hi),
        },
        "repairs": [],
        "seconds": 0.0,
        "notes": _prophet_note(s, baselines),
    }
    first = pooled[0]
    plot = {
        "t": first["origin_times"],
        "actual_mean": first["actual_mean"],
        "actual_peak": first["actual_peak"],
        "best": best,
        "forecasts": {m: first["forecasts"][m] for m in ("outrider", best)},
    }
    return doc, plot


def _prophet_note(s: BacktestSettings, baselines: list[str]) -> str:
    if "prophet" in baselines:
        return ""
    if not s.walk_forward.prophet:
        return "prophet: turned off in the settings, not run"
    if not prophet_available():
        return "prophet: not installed, not run (pip install 'outrider[backtest]')"
    return "prophet: installed but no fit succeeded (or not in every phase); left out"


def format_table(doc: dict[str, Any]) -> str:
    """A readable table of a backtest document."""
    cols = (
        "pinball_p50",
        "pinball_p90",
        "coverage_p90",
        "peak_under_rate",
        "mase",
        "fit_seconds",
        "predict_ms",
    )
    lines = [
        f"trace {doc['trace']}: bin {doc['bin_seconds']} s, horizon {doc['horizon_seconds']} s, "
        f"{doc['origins']} origins in {doc['phases']} phase(s)",
        f"{'method':<16}" + "".join(f"{c:>16}" for c in cols),
    ]
    for name, row in doc["methods"].items():
        lines.append(f"{name:<16}" + "".join(f"{row[c]:>16.4f}" for c in cols))
    lines.append(
        f"outrider pinball_p90 / best baseline ({doc['best_baseline']}): "
        f"{doc['ratio_p90_vs_best_baseline']:.3f}"
    )
    check = doc.get("calibration_check")
    if check:
        lo, hi = check["coverage_range_if_calibrated"]
        lines.append(
            f"{doc['independent_windows']} independent {doc['horizon_seconds']} s windows: a calibrated p90 "
            f"covers {lo:.2f}-{hi:.2f} of them 90% of the time; outrider coverage "
            f"{'consistent' if check['coverage_p90_consistent'] else 'NOT consistent'}, peak "
            f"{'consistent' if check['peak_under_rate_consistent'] else 'NOT consistent'}"
        )
    return "\n".join(lines)


def write_outputs(doc: dict[str, Any], plot: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``backtest.json`` and ``backtest.png`` into ``out_dir``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "backtest.json"
    jpath.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    t = np.asarray(plot["t"])
    keep = t >= t[-1] - 2 * 86_400 if len(t) else np.zeros(0, dtype=bool)
    hours = (t[keep] - t[keep][0]) / 3600.0 if keep.any() else t
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    for ax, m in zip(axes, ("outrider", plot["best"]), strict=True):
        f = plot["forecasts"][m]
        ax.plot(hours, plot["actual_mean"][keep], color="black", lw=0.7, label="actual mean rate")
        ax.plot(hours, f["mean_p50"][keep], color="tab:blue", lw=0.8, label="p50")
        ax.fill_between(
            hours, f["mean_p50"][keep], f["mean_p90"][keep], color="tab:blue", alpha=0.25, label="p50-p90"
        )
        ax.plot(
            hours, plot["actual_peak"][keep], color="tab:red", lw=0.4, alpha=0.6, label="actual peak rate"
        )
        ax.plot(hours, f["peak_p90"][keep], color="tab:orange", lw=0.6, label="peak p90")
        row = doc["methods"][m]
        ax.set_title(
            f"{m}: pinball_p90 {row['pinball_p90']:.4f}, coverage_p90 {row['coverage_p90']:.2f}, "
            f"peak_under {row['peak_under_rate']:.2f}"
        )
        ax.set_ylabel("requests/s")
        ax.legend(loc="upper right", fontsize=7, ncol=5)
    axes[-1].set_xlabel(
        f"hours (last {hours[-1]:.1f} h of scored origins, phase 0)" if len(hours) else "hours"
    )
    fig.suptitle(f"{Path(doc['trace']).name}: {doc['horizon_seconds']} s ahead")
    fig.tight_layout()
    ppath = out / "backtest.png"
    fig.savefig(ppath, dpi=90)
    plt.close(fig)
    return jpath, ppath


def stderr_progress(message: str) -> None:
    """Progress printer used by the CLI and the benchmark."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
