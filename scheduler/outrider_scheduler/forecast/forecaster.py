"""One deployment's forecaster: its request history, fitted state and live accuracy.

Predictions are cheap and never wait for a refit: a refit (learned model plus conformal calibration
over recent history) runs in a background thread and swaps in a new frozen state when done. With
little history the forecaster uses the simple predictors only and says so (``reason=ColdStart``
and ``outrider_forecaster_learned_model_active 0``); once there is enough it adds the learned
model (``reason=Learned``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .autoreg import AutoregParams, fit_autoreg, lag_matrix
from .baselines import Candidate, point_candidate, simple_point_forecasts
from .ensemble import (
    LEARNED,
    LEARNED_ACTIVE,
    LEARNED_ACTIVE_RAW,
    LEARNED_RAW,
    LEVEL,
    TARGETS,
    EnsembleState,
    run_ensemble,
)
from .errors import ForecastError
from .ets import EtsParams, EtsState, damping_factor, filter_ets, fit_ets
from .features import FeatureSet
from .level import LevelFeatures, level_rates, level_row
from .metrics import ForecastMetrics
from .model import LearnedModel, thinned_rows
from .pipeline import (
    ENSEMBLE_CANDIDATES,
    eps_for,
    learned_raw,
    learned_uncalibrated,
    make_targets,
    simple_candidates,
)
from .published import PublishedForecasts
from .records import ForecastRecord
from .result import REASONS, ForecastResult
from .series import StepSeries
from .settings import ForecasterSettings

__all__ = ["DeploymentForecaster"]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Fitted:
    model: LearnedModel | None
    state: EnsembleState
    fitted_at: float
    model_fitted_at: float
    train_end_time: float
    """Origins at or after this time are out-of-sample for ``model``."""
    ets: EtsState | None = None
    """The ETS candidate's state at the end of the history this fit saw (None: not fitted yet)."""
    ets_fitted_at: float = 0.0
    """When the ETS parameters were last fitted."""
    autoreg: AutoregParams | None = None
    """The direct autoregression's coefficients (None: not fitted yet)."""
    autoreg_fitted_at: float = 0.0
    """When the direct autoregression was last fitted."""
    active: LearnedModel | None = None
    """The second learned model, fitted with ``model`` without the origins after long idle stretches
    (None: the history has none, or it is not fitted yet)."""
    averaging: dict[str, dict[str, float]] = field(default_factory=dict)
    """Target -> candidate -> quantile-averaging weight from the last averaging fit (empty: none
    yet, or the loss window is not full)."""
    averaging_fitted_at: float = 0.0
    """When the quantile-averaging weights were last fitted."""
    level: LearnedModel | None = None
    """The level model (``level.py``; None: not fitted yet, or switched off)."""
    level_fitted_at: float = 0.0
    """When the level model was last fitted."""
    level_train_end_time: float = 0.0
    """Origins at or after this time are out-of-sample for ``level``."""


class DeploymentForecaster:
    """History, fitted state and live accuracy of one deployment (thread-safe)."""

    def __init__(
        self, name: str, settings: ForecasterSettings, metrics: ForecastMetrics | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self.metrics = metrics
        self.k = settings.horizon_seconds // settings.step_seconds
        if self.k < 1 or settings.horizon_seconds % settings.step_seconds:
            raise ForecastError(
                f"horizon {settings.horizon_seconds} s must be a multiple of the "
                f"{settings.step_seconds} s step"
            )
        self.eps = eps_for(settings.horizon_seconds)
        self._lock = threading.Lock()
        self._series: StepSeries | None = None
        self._fitted: _Fitted | None = None
        self._published = PublishedForecasts(settings.accuracy_window * 2)
        # each learned model's live forecasts by origin time: its walk-forward record for calibration
        self._records: dict[str, ForecastRecord] = {
            LEARNED: ForecastRecord(),
            LEARNED_ACTIVE: ForecastRecord(),
            LEVEL: ForecastRecord(),
        }
        self.last: ForecastResult | None = None

    # -- history ---------------------------------------------------------------------------------
    def observe(self, series: StepSeries) -> None:
        """Merge newer counts into the history (overlapping bins are replaced)."""
        if series.step_seconds != self.settings.step_seconds:
            raise ForecastError(f"expected {self.settings.step_seconds} s steps, got {series.step_seconds} s")
        with self._lock:
            cur = self._series
            if cur is None or series.t0 < cur.t0:
                merged = series
            else:
                off = round((series.t0 - cur.t0) / series.step_seconds)
                n = max(len(cur.y), off + len(series.y))
                y = np.zeros(n)
                y[: len(cur.y)] = cur.y
                y[off : off + len(series.y)] = series.y
                merged = StepSeries(cur.t0, cur.step_seconds, y)
            keep = self.settings.history_seconds // self.settings.step_seconds
            if len(merged.y) > keep:
                drop = len(merged.y) - keep
                merged = StepSeries(
                    merged.t0 + drop * merged.step_seconds, merged.step_seconds, merged.y[drop:]
                )
            self._series = merged

    @property
    def series(self) -> StepSeries | None:
        """The current history."""
        return self._series

    def end_time(self) -> float | None:
        """End of the last bin in the history."""
        s = self._series
        return None if s is None else s.t0 + len(s.y) * s.step_seconds

    # -- fitting ---------------------------------------------------------------------------------
    def refit(self, now: float | None = None, force_model: bool = False) -> None:
        """Refit (the learned model if due) and recalibrate; safe to run in a background thread."""
        series = self._series
        if series is None:
            return
        now = time.time() if now is None else now
        started = time.perf_counter()
        s, k, eps = self.settings, self.k, self.eps
        rates = series.rates
        n = len(rates)
        cw = max(s.ensemble.min_calib, s.ensemble.calib_window_seconds // s.step_seconds)
        lw = max(s.ensemble.min_calib, s.ensemble.loss_window_seconds // s.step_seconds)
        prev = self._fitted
        model = prev.model if prev else None
        active = prev.active if prev else None
        model_at = prev.model_fitted_at if prev else 0.0
        train_end_time = prev.train_end_time if prev else 0.0
        fs = FeatureSet(rates, series.t0, s.step_seconds, k, eps)
        first = max(1, n - (cw + lw + 2 * k))
        enough = n * s.step_seconds >= s.learned_min_history_seconds
        if enough and self._fit_due(model is not None, model_at, now, force_model):
            holdout = min(cw, n // 3)
            cut = n - holdout  # fit on windows over by `cut`; calibrate on the rest (split conformal)
            m = self._fit(series, fs, cut)
            if m is not None:
                if model is None:
                    self._backfill_records(series, fs, first, cut, LEARNED)
                model, model_at = m, now
                train_end_time = series.t0 + cut * s.step_seconds
                a = self._fit(series, fs, cut, leave_out_idle=True)
                if a is not None and active is None:
                    self._backfill_records(series, fs, first, cut, LEARNED_ACTIVE)
                active = a
        level, level_at, level_end = self._level(series, fs, first, now, force_model, model_at == now)
        origins = np.arange(first, n + 1, dtype=np.int64)
        cands = simple_candidates(rates, origins, k, s.step_seconds)
        ets, ets_at = self._ets(series, first, origins, now, force_model, cands)
        ar, ar_at = self._autoreg(series, origins, now, force_model, cands)
        tg = make_targets(series, k, eps, origins, fs)
        times: Array = (series.t0 + origins * float(s.step_seconds)).astype(np.float64)
        oos = times >= train_end_time
        x_oos = fs.build(origins[oos]) if model is not None and oos.any() else None
        for name, raw_name, learned in (
            (LEARNED, LEARNED_RAW, model),
            (LEARNED_ACTIVE, LEARNED_ACTIVE_RAW, active),
        ):
            if learned is None:
                continue
            # Only out-of-sample forecasts enter a learned model's scores: what it forecast live
            # (recorded by predict), else the current model on origins after its training windows.
            raw = {t: np.full(len(origins), np.nan) for t in TARGETS}
            if x_oos is not None:
                pred = learned_raw(learned, x_oos, tg.base[oos], eps)
                for t in TARGETS:
                    raw[t][oos] = pred[t]
            self._merge_records(name, times, raw)
            cands[name] = Candidate(name, raw)
            cands[raw_name] = learned_uncalibrated(raw, raw_name)
        if level is not None:
            raw = {t: np.full(len(origins), np.nan) for t in TARGETS}
            later = times >= level_end
            if later.any():
                pred = self._forecasts(LEVEL, level, series, fs, origins[later])
                for t in TARGETS:
                    raw[t][later] = pred[t]
            self._merge_records(LEVEL, times, raw)
            cands[LEVEL] = Candidate(LEVEL, raw, calibrate=False)
        # The averaging weights are refitted on the ensemble's own schedule and held in between; a
        # refit that has just fitted the learned model leaves a due averaging fit (a linear program
        # per target, 8-15 ms each on a day of 10-s origins) to the next recalibration, unless it
        # is overdue by a whole interval. A target without held weights is fitted when it can be.
        averaging_at = prev.averaging_fitted_at if prev else 0.0
        held = prev.averaging if prev and prev.averaging else None
        age, every = now - averaging_at, s.ensemble.averaging_refit_seconds
        due = age >= every and (model_at != now or age >= 2 * every)
        if held is None or force_model or due:
            held, averaging_at = None, now
        ens = run_ensemble(
            [cands[c] for c in ENSEMBLE_CANDIDATES if c in cands],
            tg.rate,
            tg.scale,
            k,
            s.step_seconds,
            s.ensemble,
            last_row_only=True,
            held_averaging=held,
        )
        last = len(origins) - 1
        state = ens.state_at(last)
        averaging = {t: dict(state.weights[t]) for t, done in ens.averaged.items() if done[last]}
        with self._lock:
            self._fitted = _Fitted(
                model,
                state,
                now,
                model_at,
                train_end_time,
                ets,
                ets_at,
                ar,
                ar_at,
                active,
                averaging,
                averaging_at if averaging else 0.0,
                level,
                level_at,
                level_end,
            )
        if self.metrics:
            self.metrics.refit_seconds.observe(time.perf_counter() - started)

    def _fit_due(self, fitted: bool, fitted_at: float, now: float, force: bool) -> bool:
        """Whether a fitted part (the learned model, ETS, the autoregression) is refitted now: never
        fitted yet, forced, or fitted a refit interval ago."""
        return not fitted or force or now - fitted_at >= self.settings.refit_interval_seconds

    def _ets(
        self,
        series: StepSeries,
        first: int,
        origins: npt.NDArray[np.int64],
        now: float,
        force: bool,
        cands: dict[str, Candidate],
    ) -> tuple[EtsState | None, float]:
        """Refit the ETS parameters when due, filter them over the origins and add the candidate.

        Returns the filter's state at the end of the history (for ``predict``) and the fit time.
        """
        s, k = self.settings, self.k
        rates = series.rates
        n = len(rates)
        prev = self._fitted
        params: EtsParams | None = prev.ets.params if prev and prev.ets else None
        fitted_at = prev.ets_fitted_at if prev else 0.0
        window = max(4 * k, s.ets_window_seconds // s.step_seconds)
        if n < max(2 * k, 20):
            return None, fitted_at
        if self._fit_due(params is not None, fitted_at, now, force):
            fresh = fit_ets(rates[max(0, n - window) :])
            if fresh is not None:
                params, fitted_at = fresh, now
        if params is None:
            return None, fitted_at
        start = max(0, first - window)
        level, trend = filter_ets(rates, params, start)
        rows = origins - start
        point = level[rows] + trend[rows] * damping_factor(np.full(len(rows), params.phi), k)
        cands["ets"] = point_candidate("ets", point)
        end_time = series.t0 + n * float(s.step_seconds)
        return EtsState(params, end_time, float(level[-1]), float(trend[-1])), fitted_at

    def _autoreg(
        self,
        series: StepSeries,
        origins: npt.NDArray[np.int64],
        now: float,
        force: bool,
        cands: dict[str, Candidate],
    ) -> tuple[AutoregParams | None, float]:
        """Refit the direct autoregression when due and add its forecasts at ``origins``.

        Like ETS, the coefficients fitted on the latest windows also forecast the calibration
        origins they were fitted on (a slightly optimistic score for a model of a few dozen
        coefficients fitted on thousands of rows). Returns the coefficients and their fit time.
        """
        s, k = self.settings, self.k
        rates = series.rates
        prev = self._fitted
        params = prev.autoreg if prev else None
        fitted_at = prev.autoreg_fitted_at if prev else 0.0
        if self._fit_due(params is not None, fitted_at, now, force):
            window = max(4 * k, s.autoreg_window_seconds // s.step_seconds)
            fresh = fit_autoreg(rates, k, len(rates), window)
            if fresh is not None:
                params, fitted_at = fresh, now
        if params is None:
            return None, fitted_at
        point = params.forecast_rows(lag_matrix(rates, params.lags, origins))
        cands["autoreg"] = point_candidate("autoreg", point)
        return params, fitted_at

    def _fit(
        self, series: StepSeries, fs: FeatureSet, cut: int, leave_out_idle: bool = False
    ) -> LearnedModel | None:
        """A learned model fitted on the windows over by row ``cut`` (None: too few or idle). With
        ``leave_out_idle``, the second model: without the origins after idle stretches of at least
        ``idle_split_seconds`` (None when there are none)."""
        s, k, eps = self.settings, self.k, self.eps
        train = np.arange(1, max(1, cut - k + 1), dtype=np.int64)
        if leave_out_idle:
            stale = fs.after_idle(train, s.model.idle_split_seconds)
            if not stale.any():
                return None
            train = train[~stale]
        if not train.size:
            return None
        settings = s.model.without_idle() if leave_out_idle else s.model
        if len(train) > settings.max_rows:
            # the rows ``fit`` would keep (every window here is over, so every target is finite),
            # chosen before the features are built: a week holds 60,000 origins
            train = train[thinned_rows(len(train), settings.max_rows)]
        tg = make_targets(series, k, eps, train, fs)
        lb = np.log(tg.base + eps)
        zm = np.log(tg.rate["mean_p50"] + eps) - lb
        zp = np.log(tg.rate["peak_p90"] + eps) - lb
        m = LearnedModel(fs.names, settings)
        return m if m.fit(fs.build(train), zm, zp, float(cut * s.step_seconds)) else None

    def _level(
        self, series: StepSeries, fs: FeatureSet, first: int, now: float, force: bool, learned_now: bool
    ) -> tuple[LearnedModel | None, float, float]:
        """Refit the level model when due; return it, its fit time and its training cut's time.

        It is fitted on the learned model's schedule and split the same way (the last calibration
        window held out, so that the ensemble scores it out of sample), but not in the refit that
        has just fitted the learned model (``learned_now``), unless forced: that fit waits for the
        next recalibration, a minute later, so that no one refit pays for both. A first fit also
        backfills its record, like the learned model's.
        """
        s = self.settings
        prev = self._fitted
        model = prev.level if prev else None
        at = prev.level_fitted_at if prev else 0.0
        end = prev.level_train_end_time if prev else 0.0
        n = len(series.y)
        if s.level is None or n * s.step_seconds < s.learned_min_history_seconds:
            return model, at, end
        if not self._fit_due(model is not None, at, now, force) or (learned_now and not force):
            return model, at, end
        cw = max(s.ensemble.min_calib, s.ensemble.calib_window_seconds // s.step_seconds)
        cut = n - min(cw, n // 3)
        fresh = self._fit_level(series, fs, cut)
        if fresh is None:
            return model, at, end
        if model is None:
            self._backfill_records(series, fs, first, cut, LEVEL)
        return fresh, now, series.t0 + cut * s.step_seconds

    def _fit_level(self, series: StepSeries, fs: FeatureSet, cut: int) -> LearnedModel | None:
        """A level model fitted on the windows over by row ``cut`` (None: too few rows, or off)."""
        s, k = self.settings, self.k
        if s.level is None:
            return None
        train = np.arange(1, max(1, cut - k + 1), dtype=np.int64)
        if len(train) > s.level.max_rows:
            train = train[thinned_rows(len(train), s.level.max_rows)]
        if not train.size:
            return None
        tg = make_targets(series, k, self.eps, train, fs)
        lf = LevelFeatures(series.rates, series.t0, s.step_seconds, k)
        m = LearnedModel(lf.names, s.level)
        fitted = m.fit(lf.build(train), tg.rate["mean_p50"], tg.rate["peak_p90"], float(cut * s.step_seconds))
        return m if fitted else None

    def _forecasts(
        self, name: str, model: LearnedModel, series: StepSeries, fs: FeatureSet, origins: IntArray
    ) -> dict[str, Array]:
        """A learned model's (``name``'s) forecasts, requests/s, at ``origins``."""
        if name == LEVEL:
            lf = LevelFeatures(series.rates, series.t0, self.settings.step_seconds, self.k)
            return level_rates(model, lf.build(origins))
        return learned_raw(model, fs.build(origins), fs.base(origins), self.eps)

    def _merge_records(self, name: str, times: Array, raw: dict[str, Array]) -> None:
        """Merge ``raw`` (the current model's out-of-sample forecasts at origin ``times``, NaN
        elsewhere) with ``name``'s record, pruning the records older than the first origin.

        A forecast already recorded (live, backfilled, or kept by an earlier refit) wins, and a new
        one is kept: without it, the origins between a model's training cut and its first live
        forecast would drop out of its record once the next model's cut passes them, and the
        quantile averaging, which waits for a full day of record, would stop for a day.
        """
        with self._lock:  # predict() adds records meanwhile
            record = self._records[name]
            record.prune_before(float(times[0]))
            record.keep_unrecorded(times, raw)
            found, values = record.lookup(times)
        for j, t in enumerate(TARGETS):  # the record's columns, in this order
            raw[t] = np.where(found, values[:, j], raw[t])

    def _record(self, name: str, origin_time: float, values: dict[str, float], limit: int) -> None:
        """Record ``name``'s live forecast at ``origin_time`` (its walk-forward record), keeping at
        most ``limit`` records."""
        with self._lock:  # a background refit reads these records
            self._records[name].put(
                origin_time, values["mean_p50"], values["mean_p90"], values["peak_p90"], limit
            )

    def _backfill_records(
        self, series: StepSeries, fs: FeatureSet, first: int, cut: int, name: str = LEARNED
    ) -> None:
        """Give a first learned model a walk-forward record over the scored origins it trained on.

        A fresh forecaster (started, or restarted, with days of history) has no live forecasts of
        its learned model, so only the hours after the training cut would score it: on a quiet
        afternoon a daily ramp that it learned from earlier days would count for nothing in its
        weight until it had run live for a day, and the forecast would miss the next ramp. A second
        model, fitted only on windows over before the first scored origin, forecasts those origins
        out of sample, and its forecasts stand in for the live record the learned model lacks (live
        forecasts, once made, are never replaced).
        """
        s, k = self.settings, self.k
        end = first - k
        if end * s.step_seconds < s.learned_min_history_seconds:
            return
        if name == LEVEL:
            m = self._fit_level(series, fs, end)
        else:
            m = self._fit(series, fs, end, leave_out_idle=name == LEARNED_ACTIVE)
        if m is None:
            return
        origins = np.arange(first, cut + 1, dtype=np.int64)
        if not origins.size:
            return
        pred = self._forecasts(name, m, series, fs, origins)
        times: Array = (series.t0 + origins * float(s.step_seconds)).astype(np.float64)
        with self._lock:
            self._records[name].keep_unrecorded(times, pred)

    def refit_due(self, now: float) -> bool:
        """Whether a recalibration (and maybe a model refit) is due."""
        f = self._fitted
        return f is None or now - f.fitted_at >= self.settings.recalibrate_interval_seconds

    # -- predicting ------------------------------------------------------------------------------
    def predict(self, now: float | None = None) -> ForecastResult:
        """Forecast the next horizon from the current history and the last fitted state."""
        now = time.time() if now is None else now
        started = time.perf_counter()
        s, k, eps = self.settings, self.k, self.eps
        series, fitted = self._series, self._fitted
        if series is None or len(series.y) < k:
            have = 0 if series is None else len(series.y) * s.step_seconds
            return self._finish(
                ForecastResult(
                    self.name,
                    s.horizon_seconds,
                    0.0,
                    0.0,
                    0.0,
                    now,
                    False,
                    "InsufficientHistory",
                    f"history covers {have} s; at least {s.horizon_seconds} s are needed",
                ),
                started,
            )
        rates = series.rates
        n = len(rates)
        origin = np.array([n], dtype=np.int64)
        raw: dict[str, dict[str, float]] = {}
        for name, (point, _) in simple_point_forecasts(rates, origin, k, s.step_seconds).items():
            v = float(max(point[0], 0.0))
            raw[name] = {t: v for t in TARGETS}
        scale = float(np.mean(rates[max(0, n - 4 * k) :])) + eps
        if fitted is not None and fitted.ets is not None:
            # advance the state kept at the last refit through the bins observed since
            j = round((fitted.ets.time - series.t0) / s.step_seconds)
            if 0 <= j <= n:
                v = fitted.ets.advance(rates[j:n], s.step_seconds).forecast(k)
                raw["ets"] = {t: v for t in TARGETS}
        if fitted is not None and fitted.autoreg is not None:
            v = fitted.autoreg.forecast(rates)
            if np.isfinite(v):
                raw["autoreg"] = {t: v for t in TARGETS}
        learned = fitted is not None and fitted.model is not None
        t_now = series.t0 + n * float(s.step_seconds)
        limit = (s.ensemble.calib_window_seconds + s.ensemble.loss_window_seconds) // s.step_seconds + 4 * k
        if fitted is not None and fitted.level is not None:
            pred = level_rates(fitted.level, level_row(rates, series.t0, s.step_seconds, k))
            raw[LEVEL] = {t: float(pred[t][0]) for t in TARGETS}
            self._record(LEVEL, t_now, raw[LEVEL], limit)
        if fitted is not None and fitted.model is not None:
            fs = FeatureSet(rates, series.t0, s.step_seconds, k, eps)
            x, base = fs.build(origin), fs.base(origin)
            for name, raw_name, learned_model in (
                (LEARNED, LEARNED_RAW, fitted.model),
                (LEARNED_ACTIVE, LEARNED_ACTIVE_RAW, fitted.active),
            ):
                if learned_model is None:
                    continue
                pred = learned_raw(learned_model, x, base, eps)
                raw[name] = {t: float(pred[t][0]) for t in TARGETS}
                raw[raw_name] = raw[name]  # the same quantiles, weighed without an offset
                self._record(name, t_now, raw[name], limit)
        out = fitted.state.apply(raw, scale) if fitted is not None else {}
        if not all(np.isfinite(out.get(t, np.nan)) for t in TARGETS):
            # not calibrated yet: the moving average, uncalibrated
            ma = raw["moving_average"]["mean_p50"]
            out = {t: ma for t in TARGETS}
            learned = False
        p50 = out["mean_p50"]
        p90 = max(out["mean_p90"], p50)
        peak = max(out["peak_p90"], p90)
        reason = "Learned" if learned else "ColdStart"
        msg = (
            "learned model and simple predictors, conformally calibrated"
            if learned
            else f"simple predictors only until {s.learned_min_history_seconds} s of history"
        )
        t_origin = series.t0 + n * s.step_seconds
        self._published.append(t_origin, p50, p90, peak)
        if self.metrics and fitted is not None:
            self.metrics.calibration_age.labels(deployment=self.name).set(max(now - fitted.fitted_at, 0.0))
        return self._finish(
            ForecastResult(self.name, s.horizon_seconds, p50, p90, peak, now, True, reason, msg), started
        )

    def unavailable(self, message: str, now: float | None = None) -> ForecastResult:
        """The result when the metrics source failed: the last forecast values, ``forecasting=False``."""
        now = time.time() if now is None else now
        last = self.last
        base = (last.p50_rps, last.p90_rps, last.peak_p90_rps) if last else (0.0, 0.0, 0.0)
        res = ForecastResult(
            self.name, self.settings.horizon_seconds, *base, now, False, "MetricsUnavailable", message
        )
        if self.metrics:
            self.metrics.source_errors.labels(deployment=self.name).inc()
        return self._finish(res, None)

    def _finish(self, res: ForecastResult, started: float | None) -> ForecastResult:
        self.last = res
        m = self.metrics
        if m is None:
            return res
        if started is not None:
            m.predict_seconds.observe(time.perf_counter() - started)
        for t, v in (("mean_p50", res.p50_rps), ("mean_p90", res.p90_rps), ("peak_p90", res.peak_p90_rps)):
            m.forecast.labels(deployment=self.name, target=t).set(v)
        m.learned.labels(deployment=self.name).set(1.0 if res.reason == "Learned" else 0.0)
        m.set_reason(self.name, res.reason, REASONS)
        acc = self.accuracy()
        if acc:
            m.coverage.labels(deployment=self.name).set(acc["coverage_p90"])
            m.peak_coverage.labels(deployment=self.name).set(acc["peak_under_rate"])
            m.pinball.labels(deployment=self.name, target="mean_p50").set(acc["pinball_p50"])
            m.pinball.labels(deployment=self.name, target="mean_p90").set(acc["pinball_p90"])
        return res

    def accuracy(self) -> dict[str, float]:
        """Live accuracy over the most recent published forecasts whose windows are over."""
        series = self._series
        if series is None:
            return {}
        return self._published.accuracy(series, self.k, self.settings.accuracy_window, self.eps)
