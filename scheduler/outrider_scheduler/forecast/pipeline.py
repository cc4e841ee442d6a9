"""Walk-forward forecasting of one step series by every candidate, leak-free by construction.

``run_walk_forward`` computes, for consecutive origins ``1..n``, the raw forecasts of the baselines
and of the learned model (refitted on a schedule, each fit using only windows that had ended by the
refit time), then the conformal ensemble. Backtests score it; the live service uses the same
functions on recent history to derive its calibration state.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .autoreg import autoreg_forecasts
from .baselines import (
    Candidate,
    arima_forecasts,
    ets_forecasts,
    point_candidate,
    prophet_available,
    prophet_forecasts,
    simple_point_forecasts,
)
from .ensemble import (
    LEARNED,
    LEARNED_ACTIVE,
    LEARNED_ACTIVE_RAW,
    LEARNED_RAW,
    LEVEL,
    TARGETS,
    EnsembleOutput,
    EnsembleSettings,
    run_ensemble,
    to_rates,
)
from .features import FeatureSet, log_rate
from .level import LEVEL_SETTINGS, LevelFeatures, level_rates
from .model import LearnedModel, ModelSettings
from .series import StepSeries, peak_targets

__all__ = [
    "ENSEMBLE_CANDIDATES",
    "Targets",
    "WalkForward",
    "WalkForwardResult",
    "eps_for",
    "learned_raw",
    "learned_uncalibrated",
    "make_targets",
    "run_walk_forward",
    "simple_candidates",
]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[str], None]

ENSEMBLE_CANDIDATES = (
    "outrider_gbm",
    "outrider_gbm_raw",
    "last_value",
    "moving_average",
    "seasonal_naive",
    "ets",
    "autoreg",
    LEARNED_ACTIVE,
    LEARNED_ACTIVE_RAW,
    LEVEL,
)
"""Candidates the Outrider ensemble combines (``outrider_gbm`` is the learned model, conformally
calibrated; ``outrider_gbm_raw`` the same model's own quantiles, as they are; the ``_active`` pair
the second learned model, present only while the history has long idle stretches; ``autoreg`` the
direct autoregression of the ``autoreg`` module; ``level_gbm`` the level model of the ``level``
module, its own quantiles). ARIMA and Prophet are baselines only: their fits
cost more than the live refit budget allows; ETS (a two-number state) and the direct
autoregression (one small linear solve) recover part of their gain at a fraction of the cost."""

LATE_CANDIDATES = (LEARNED, LEARNED_RAW, "autoreg", LEARNED_ACTIVE, LEARNED_ACTIVE_RAW, LEVEL)
"""Candidates that need enough history for a first fit: the ensemble does not wait for them."""


def eps_for(horizon_seconds: int) -> float:
    """The log-scale offset: one request per horizon, as a rate."""
    return 1.0 / horizon_seconds


@dataclass
class Targets:
    """Actual mean and peak rates (and their logs) per origin row; NaN where the window is not over."""

    rate: dict[str, Array]
    """Target -> actual rate per origin."""
    base: Array
    """Mean rate over the last horizon at each origin."""
    scale: Array
    """Calibration scale at each origin: the mean rate over the last four horizons plus eps."""


def make_targets(series: StepSeries, k: int, eps: float, origins: IntArray, features: FeatureSet) -> Targets:
    """Targets of every origin ``i``: window ``[i, i+k)``; NaN where it runs past the data."""
    sums, peaks = peak_targets(series.y, k)
    n_known = len(sums)
    if n_known == 0:  # shorter than one horizon: no window is over yet
        mean_rate = np.full(len(origins), np.nan)
        peak_rate = np.full(len(origins), np.nan)
    else:
        ok = origins < n_known
        idx = np.where(ok, origins, 0)
        mean_rate = np.where(ok, sums[idx] / (k * series.step_seconds), np.nan)
        peak_rate = np.where(ok, peaks[idx] / series.step_seconds, np.nan)
    rate = {"mean_p50": mean_rate, "mean_p90": mean_rate, "peak_p90": peak_rate}
    scale = features.mean(origins, 4 * k, clip=True) + eps
    return Targets(rate=rate, base=features.base(origins), scale=scale)


def simple_candidates(rates: Array, origins: IntArray, k: int, step_seconds: int) -> dict[str, Candidate]:
    """The closed-form candidates (last value, moving average, seasonal naive) at ``origins``."""
    return {
        name: point_candidate(name, point, 0.0, secs)
        for name, (point, secs) in simple_point_forecasts(rates, origins, k, step_seconds).items()
    }


def learned_raw(model: LearnedModel, x: Array, base: Array, eps: float) -> dict[str, Array]:
    """The learned model's forecasts (requests/s) for feature rows ``x`` with base levels ``base``."""
    lb = log_rate(base, eps)
    pred = model.predict(x)
    return {t: to_rates(lb + pred[t], eps) for t in TARGETS}


def learned_uncalibrated(raw: dict[str, Array], name: str = LEARNED_RAW) -> Candidate:
    """A learned model's own quantiles as a candidate the ensemble does not shift (``LEARNED_RAW``,
    or ``LEARNED_ACTIVE_RAW``; its fit and predict time are the learned model's, counted there)."""
    return Candidate(name, raw, calibrate=False)


@dataclass(frozen=True)
class WalkForward:
    """Schedules and windows of a walk-forward run."""

    refit_every_seconds: int = 6 * 3600
    """Learned model and ARIMA/ETS refit interval (capped so a short trace still gets ~12 refits)."""
    min_refits: int = 12
    """The refit interval shrinks (down to one horizon) until the series gets at least this many."""
    ets_window_seconds: int = 6 * 3600
    """History ETS parameters are fitted on."""
    arima_window_seconds: int = 2 * 3600
    """History ARIMA is fitted on."""
    autoreg_window_seconds: int = 6 * 3600
    """Origins (seconds of them) the direct autoregression is fitted on."""
    learned_min_history_seconds: int = 3 * 3600
    """History before the learned model becomes a candidate (the service's cold-start rule)."""
    arima: bool = True
    """Whether to compute the ARIMA baseline (slow; only backtests need it)."""
    prophet: bool = True
    """Whether to compute the Prophet baseline when the package is installed (backtests only)."""
    prophet_window_seconds: int = 14 * 86_400
    """History Prophet is fitted on."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Learned-model settings."""
    level: ModelSettings | None = field(default_factory=lambda: LEVEL_SETTINGS)
    """Level-model settings (None: no level model). It is fitted on the learned model's schedule."""
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)
    """Ensemble settings."""


@dataclass
class WalkForwardResult:
    """Everything a backtest or the service needs from one walk-forward run."""

    origins: IntArray
    targets: Targets
    candidates: dict[str, Candidate]
    ensemble: EnsembleOutput
    learned_active: Array
    """Per origin: whether the learned model had been fitted by then."""
    refits: list[int]
    last_model: LearnedModel | None
    features: FeatureSet
    ensemble_seconds: float


def _refit_points(n: int, k: int, step: int, wf: WalkForward, first: int) -> list[int]:
    every = max(k, min(wf.refit_every_seconds // step, max(1, n // wf.min_refits)))
    return list(range(first, n + 1, every))


@dataclass(frozen=True)
class _LearnedWalk:
    """The learned model's walk-forward: refitted at ``refits`` on the windows over by then, each fit
    forecasting the origins up to the next refit."""

    names: list[str]
    x: Array
    z_mean: Array
    z_peak: Array
    origins: IntArray
    refits: list[int]
    k: int
    step: int
    settings: ModelSettings
    base: Array
    eps: float
    absolute: bool = False
    """Whether the targets are rates themselves (the level model) rather than log-ratios to ``base``."""

    def run(
        self, leave_out: npt.NDArray[np.bool_] | None, say: Callable[[int, int], None]
    ) -> tuple[dict[str, Array], npt.NDArray[np.bool_], float, float, LearnedModel | None]:
        """Forecasts per target, where a model had been fitted, fit and predict seconds, and the last
        model; ``leave_out`` marks origins never trained on (a fit happens only while the history up
        to it has some: otherwise it would be the first model again)."""
        n = len(self.origins)
        raw = {t: np.full(n, np.nan) for t in TARGETS}
        active = np.zeros(n, dtype=bool)
        fit_s = pred_s = 0.0
        model: LearnedModel | None = None
        for j, r in enumerate(self.refits):
            say(j, r)
            train = self.origins + self.k <= r  # the window of origin i is [i, i+k): over by time r
            if leave_out is not None:
                if not leave_out[train].any():
                    model = None
                    continue
                train &= ~leave_out
            m = LearnedModel(self.names, self.settings)
            m.train_end = r
            if m.fit(self.x[train], self.z_mean[train], self.z_peak[train], float(r * self.step)):
                model = m
                fit_s += m.fit_seconds
            if model is None:
                continue
            end = self.refits[j + 1] if j + 1 < len(self.refits) else n + 1
            rows = np.nonzero((self.origins >= r) & (self.origins < end))[0]
            if rows.size == 0:
                continue
            started = time.perf_counter()
            if self.absolute:
                pred = level_rates(model, self.x[rows])
            else:
                pred = learned_raw(model, self.x[rows], self.base[rows], self.eps)
            pred_s += time.perf_counter() - started
            for t in TARGETS:
                raw[t][rows] = pred[t]
            active[rows] = True
        return raw, active, fit_s, pred_s, model


def run_walk_forward(
    series: StepSeries, horizon_seconds: int, wf: WalkForward, progress: Progress | None = None
) -> WalkForwardResult:
    """Forecast every origin ``1..n`` of ``series`` with every candidate and the ensemble."""
    say = progress or (lambda _msg: None)
    k = series.horizon_steps(horizon_seconds)
    step = series.step_seconds
    eps = eps_for(horizon_seconds)
    rates = series.rates
    n = len(rates)
    origins = np.arange(1, n + 1, dtype=np.int64)
    fs = FeatureSet(rates, series.t0, step, k, eps)
    tg = make_targets(series, k, eps, origins, fs)
    cands = simple_candidates(rates, origins, k, step)
    base_refits = _refit_points(n, k, step, wf, max(2 * k, 20))
    say(f"ets: {len(base_refits)} refits")
    fc, fit_s, pred_s = ets_forecasts(
        rates, origins, k, base_refits, max(4 * k, wf.ets_window_seconds // step)
    )
    cands["ets"] = point_candidate("ets", fc, fit_s, pred_s)
    say(f"autoreg: {len(base_refits)} refits")
    fc, fit_s, pred_s = autoreg_forecasts(
        rates, origins, k, base_refits, max(4 * k, wf.autoreg_window_seconds // step)
    )
    cands["autoreg"] = point_candidate("autoreg", fc, fit_s, pred_s)
    if wf.arima:
        say(f"arima: {len(base_refits)} refits")
        fc, fit_s, pred_s = arima_forecasts(
            rates, origins, k, base_refits, max(4 * k, wf.arima_window_seconds // step)
        )
        cands["arima"] = point_candidate("arima", fc, fit_s, pred_s)
    if wf.prophet and prophet_available():
        say(f"prophet: {len(base_refits)} refits")
        fc, fit_s, pred_s = prophet_forecasts(
            rates, origins, k, base_refits, max(4 * k, wf.prophet_window_seconds // step), series.t0, step
        )
        if np.isfinite(fc).any():  # a Prophet that cannot fit at all is left out, not scored as NaN
            cands["prophet"] = point_candidate("prophet", fc, fit_s, pred_s)
        else:
            say("prophet: no fit succeeded; left out of this run")
    # learned model(s), walk-forward
    started = time.perf_counter()
    x = fs.build(origins)
    feat_s = time.perf_counter() - started
    lb = log_rate(tg.base, eps)
    z_mean = log_rate(tg.rate["mean_p50"], eps) - lb
    z_peak = log_rate(tg.rate["peak_p90"], eps) - lb
    first_fit = max(k + wf.model.min_rows, -(-wf.learned_min_history_seconds // step))
    refits = _refit_points(n, k, step, wf, first_fit)
    walk = _LearnedWalk(fs.names, x, z_mean, z_peak, origins, refits, k, step, wf.model, tg.base, eps)
    raw, active, fit_s, pred_s, model = walk.run(
        None,
        lambda j, r: say(f"learned model: refit {j + 1}/{len(refits)} at t={series.t0 + r * step:.0f} s"),
    )
    cands[LEARNED] = Candidate(LEARNED, raw, fit_s, pred_s + feat_s)
    cands[LEARNED_RAW] = learned_uncalibrated(raw)
    stale = fs.after_idle(origins, wf.model.idle_split_seconds)
    if stale.any():
        say("learned model without the rows after long idle stretches")
        second = dataclasses.replace(walk, settings=wf.model.without_idle())
        raw2, _, fit2, pred2, _ = second.run(stale, lambda j, r: None)
        if np.isfinite(raw2["mean_p50"]).any():
            cands[LEARNED_ACTIVE] = Candidate(LEARNED_ACTIVE, raw2, fit2, pred2)
            cands[LEARNED_ACTIVE_RAW] = learned_uncalibrated(raw2, LEARNED_ACTIVE_RAW)
    if wf.level is not None:
        say("level model: refitted with the learned model")
        started = time.perf_counter()
        lf = LevelFeatures(rates, series.t0, step, k)
        lx = lf.build(origins)
        feat_s = time.perf_counter() - started
        level_walk = dataclasses.replace(
            walk,
            names=lf.names,
            x=lx,
            z_mean=tg.rate["mean_p50"],
            z_peak=tg.rate["peak_p90"],
            settings=wf.level,
            absolute=True,
        )
        raw3, _, fit3, pred3, _ = level_walk.run(None, lambda j, r: None)
        if np.isfinite(raw3["mean_p50"]).any():
            cands[LEVEL] = Candidate(LEVEL, raw3, fit3, pred3 + feat_s, calibrate=False)
    # the fitted candidates join when their first fit succeeds; the rest start together
    baseline_ok = np.all(
        [np.isfinite(c.f["mean_p50"]) for name, c in cands.items() if name not in LATE_CANDIDATES], axis=0
    )
    start = int(np.argmax(baseline_ok)) if baseline_ok.any() else n
    say("ensemble: calibrating and weighting candidates")
    started = time.perf_counter()
    ens = run_ensemble(
        [cands[m] for m in ENSEMBLE_CANDIDATES if m in cands],
        tg.rate,
        tg.scale,
        k,
        step,
        wf.ensemble,
        start,
    )
    ens_s = time.perf_counter() - started
    # baselines not in the ensemble still need their own calibration (same procedure)
    others = [c for name, c in cands.items() if name not in ENSEMBLE_CANDIDATES]
    if others:
        alone = dataclasses.replace(wf.ensemble, averaging=False)  # only their calibration is used
        extra = run_ensemble(others, tg.rate, tg.scale, k, step, alone, start)
        ens.calibrated.update(extra.calibrated)
    return WalkForwardResult(origins, tg, cands, ens, active.astype(np.float64), refits, model, fs, ens_s)
