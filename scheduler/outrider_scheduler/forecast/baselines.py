"""The baselines peers use, each evaluated at many origins at once.

Every baseline makes a point forecast of the window's mean rate; its quantiles come from the same
conformal calibration as every other candidate (see ``ensemble``), so comparisons are fair.

* ``last_value``: the rate of the last step bin (Dynamo's planner calls this *constant*).
* ``moving_average``: the mean rate over the last horizon.
* ``seasonal_naive``: the mean rate over the same window one week ago, else one day ago, else (the
  history does not cover a day yet) one horizon ago, which equals the moving average.
* ``ets``: Holt's additive damped-trend exponential smoothing. Parameters are fitted with statsmodels
  on a bounded recent window on a schedule, and the state is filtered forward to every origin.
  Seasonal Holt-Winters is not used: a daily season is thousands of step bins long.
* ``arima``: an ARIMA(p,d,q) chosen by KPSS (d) and AIC (p, q) with statsmodels on a bounded window on
  a schedule; forecasts at every origin come from the fitted ARMA recursion.
* ``prophet`` (optional, the ``backtest`` extra): Prophet with its default settings, refitted on the
  same schedule as ETS and ARIMA on up to two weeks of history (averaged into at most 2,000 points);
  between refits its forecast is its fitted curve, which is how Prophet forecasts: it does not
  condition on the latest observations.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter
from threadpoolctl import threadpool_limits

from .ets import DEFAULT_PARAMS, EtsParams, damping_factor, filter_ets, fit_ets
from .features import DAY, WEEK, WindowSums

__all__ = [
    "BASELINE_NAMES",
    "OPTIONAL_BASELINES",
    "Candidate",
    "arima_forecasts",
    "ets_forecasts",
    "point_candidate",
    "prophet_available",
    "prophet_forecasts",
    "refit_segments",
    "simple_point_forecasts",
]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BASELINE_NAMES = ("last_value", "moving_average", "seasonal_naive", "ets", "arima")
"""Baselines in the order they are reported."""
OPTIONAL_BASELINES = ("prophet",)
"""Baselines run when their package is installed (``prophet``: the ``backtest`` extra)."""
PROPHET_MAX_POINTS = 2000
"""Prophet is fitted on at most this many points: longer histories are averaged into wider bins."""


@dataclass
class Candidate:
    """Raw quantile forecasts (requests/s) of one method at every origin (NaN where it has none)."""

    name: str
    """Method name."""
    f: dict[str, Array]
    """Target (``mean_p50``, ``mean_p90``, ``peak_p90``) -> forecast rate per origin."""
    fit_seconds: float = 0.0
    """Total time spent fitting or refitting."""
    predict_seconds: float = 0.0
    """Total time spent producing the forecasts."""
    calibrate: bool = True
    """Whether the ensemble shifts the forecasts by conformal offsets. False for forecasts that are
    already quantiles fitted on a long history (the learned model's own quantiles, which the ensemble
    also weighs unshifted: see ``ensemble.LEARNED_RAW``)."""


def point_candidate(name: str, point: Array, fit_s: float = 0.0, pred_s: float = 0.0) -> Candidate:
    """A candidate whose three raw quantiles are all its point forecast (calibration spreads them)."""
    f = np.maximum(point, 0.0)
    return Candidate(name, {"mean_p50": f, "mean_p90": f.copy(), "peak_p90": f.copy()}, fit_s, pred_s)


def _window_mean(sums: WindowSums, a: IntArray, b: IntArray) -> Array:
    ok = a >= 0
    a0 = np.where(ok, a, 0)
    out = sums(a0, b) / np.maximum(b - a0, 1)
    return np.where(ok, out, np.nan)


def simple_point_forecasts(
    rates: Array, origins: IntArray, k: int, step_seconds: int
) -> dict[str, tuple[Array, float]]:
    """Point forecasts (and seconds taken) of last_value, moving_average and seasonal_naive."""
    sums = WindowSums(rates)
    out: dict[str, tuple[Array, float]] = {}
    t = time.perf_counter()
    out["last_value"] = (rates[origins - 1], time.perf_counter() - t)
    t = time.perf_counter()
    out["moving_average"] = (_window_mean(sums, np.maximum(origins - k, 0), origins), time.perf_counter() - t)
    t = time.perf_counter()
    seasonal = _window_mean(sums, np.maximum(origins - k, 0), origins)
    for season in (DAY, WEEK):
        s = season // step_seconds
        has = origins - s >= 0
        end = np.clip(origins - s + k, 0, len(rates))
        seasonal = np.where(has, _window_mean(sums, origins - s, end), seasonal)
    out["seasonal_naive"] = (seasonal, time.perf_counter() - t)
    return out


def refit_segments(origins: IntArray, refits: Sequence[int]) -> list[tuple[int, IntArray]]:
    """Split origins by the latest refit at or before each: (refit, positions in ``origins``) per
    refit, in order (origins before the first get none)."""
    refit_arr = np.asarray(sorted(refits), dtype=np.int64)
    seg = np.searchsorted(refit_arr, origins, side="right") - 1
    return [(int(refit_arr[j]), np.nonzero(seg == j)[0]) for j in range(len(refit_arr))]


def ets_forecasts(
    rates: Array,
    origins: IntArray,
    k: int,
    refits: Sequence[int],
    window: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[Array, float, float]:
    """Damped Holt forecasts of the window mean at each origin: (forecasts, fit s, predict s)."""
    fit_s = 0.0
    params: list[tuple[int, EtsParams]] = []
    for r in sorted(refits):
        started = time.perf_counter()
        p = fit_ets(rates[max(0, r - window) : r])
        fit_s += time.perf_counter() - started
        # a failed fit keeps the previous parameters (or plain smoothing)
        params.append((r, p or (params[-1][1] if params else DEFAULT_PARAMS)))
    started = time.perf_counter()
    out = np.full(len(origins), np.nan)
    if not params:
        return out, fit_s, 0.0
    n = len(rates)
    level = np.empty(n + 1)
    trend = np.empty(n + 1)
    phis = np.empty(n + 1)
    starts = [p[0] for p in params]
    # the state at index t has consumed rates[:t]; the parameters switch at each refit origin (the
    # first ones also run before it), and each segment carries on from the state the last one left
    state: tuple[float, float] | None = None
    for i, (_, p) in enumerate(params):
        lo = 0 if i == 0 else min(starts[i], n)
        hi = n if i + 1 == len(params) else min(starts[i + 1], n)  # >= lo: the starts are sorted
        lv, tr = filter_ets(rates[:hi], p, start=lo, state=state)
        level[lo : hi + 1], trend[lo : hi + 1], phis[lo : hi + 1] = lv, tr, p.phi
        state = (float(lv[-1]), float(tr[-1]))
    seg_ok = origins >= starts[0]
    fc = level[origins] + trend[origins] * damping_factor(phis[origins], k)
    out = np.where(seg_ok, fc, np.nan)
    return out, fit_s, time.perf_counter() - started


def _fit_arima(seg: Array) -> tuple[int, float, Array, Array] | None:
    """Choose and fit an ARIMA on ``seg``; return (d, mean, ar, ma) or None if every fit failed."""
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.stattools import kpss

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        try:
            d = 1 if float(kpss(seg, regression="c", nlags="auto")[1]) < 0.05 else 0
        except Exception:
            d = 0
        best: tuple[float, tuple[int, float, Array, Array]] | None = None
        for p, q in ((1, 1), (2, 0), (0, 1)):
            try:
                res = ARIMA(seg, order=(p, d, q), trend="c" if d == 0 else "n").fit()
            except Exception:
                continue
            aic = float(res.aic)
            if not np.isfinite(aic):
                continue
            names = list(res.model.param_names)
            vals = np.asarray(res.params, dtype=np.float64)
            mean = float(vals[names.index("const")]) if "const" in names else 0.0
            ar = np.array([vals[names.index(f"ar.L{j}")] for j in range(1, p + 1)])
            ma = np.array([vals[names.index(f"ma.L{j}")] for j in range(1, q + 1)])
            if best is None or aic < best[0]:
                best = (aic, (d, mean, ar, ma))
    return None if best is None else best[1]


def arima_forecasts(
    rates: Array, origins: IntArray, k: int, refits: Sequence[int], window: int
) -> tuple[Array, float, float]:
    """ARIMA forecasts of the window mean at each origin: (forecasts, fit s, predict s)."""
    out = np.full(len(origins), np.nan)
    fit_s = pred_s = 0.0
    last: tuple[int, float, Array, Array] | None = None
    for r, idx in refit_segments(origins, refits):
        started = time.perf_counter()
        fitted = _fit_arima(rates[max(0, r - window) : r])
        last = fitted or last
        fit_s += time.perf_counter() - started
        if last is None or idx.size == 0:
            continue
        started = time.perf_counter()
        d, mean, ar, ma = last
        w = rates - mean if d == 0 else np.concatenate(([0.0], np.diff(rates)))
        e = lfilter(np.concatenate(([1.0], -ar)), np.concatenate(([1.0], ma)), w)
        org = origins[idx]
        p, q = len(ar), len(ma)
        lag = max(p, q, 1)
        cols = np.arange(1, lag + 1)
        pos = org[:, None] - cols[None, :]  # positions i-1, i-2, ...
        valid = pos >= 0
        wb = np.where(valid, w[np.maximum(pos, 0)], 0.0)  # wb[:, j] = w[i-1-j]
        eb = np.where(valid, e[np.maximum(pos, 0)], 0.0)
        preds = np.zeros((len(org), k))
        for h in range(k):
            nxt = np.zeros(len(org))
            if p:
                nxt += wb[:, :p] @ ar
            if q:
                nxt += eb[:, :q] @ ma
            preds[:, h] = nxt
            wb = np.concatenate((nxt[:, None], wb[:, :-1]), axis=1)
            eb = np.concatenate((np.zeros((len(org), 1)), eb[:, :-1]), axis=1)
        path = mean + preds if d == 0 else rates[org - 1][:, None] + np.cumsum(preds, axis=1)
        out[idx] = path.mean(axis=1)
        pred_s += time.perf_counter() - started
    return out, fit_s, pred_s


def prophet_available() -> bool:
    """Whether the optional ``prophet`` package can be imported."""
    for name in ("prophet", "prophet.plot", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # import chatter (plotly) and Stan progress
    try:
        import cmdstanpy.utils
        import prophet  # noqa: F401
    except Exception:
        return False
    # Both set their own levels: prophet on import, cmdstanpy when its logger is first fetched (it
    # then adds a handler of its own if logging is unconfigured), so fetch it first, then quiet it.
    cmdstanpy.utils.get_logger()
    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return True


def _fit_prophet(seg: Array, first_row: int, t0: float, step: int) -> Any | None:
    """Fit Prophet on ``seg`` (rates of rows ``first_row ..``), averaged into at most the point limit."""
    import pandas as pd
    from prophet import Prophet

    agg = max(1, math.ceil(len(seg) / PROPHET_MAX_POINTS))
    drop = len(seg) % agg  # keep the newest rows whole
    y = seg[drop:].reshape(-1, agg).mean(axis=1)
    if len(y) < 3:
        return None
    start = t0 + (first_row + drop) * step
    ds = pd.to_datetime(start + np.arange(len(y)) * agg * step + agg * step / 2.0, unit="s")
    model = Prophet(uncertainty_samples=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(pd.DataFrame({"ds": ds, "y": y}))
    return model


def prophet_forecasts(
    rates: Array,
    origins: IntArray,
    k: int,
    refits: Sequence[int],
    window: int,
    t0: float,
    step: int,
) -> tuple[Array, float, float]:
    """Prophet forecasts of the window mean at each origin: (forecasts, fit s, predict s).

    The model fitted at refit ``r`` sees only rows before ``r`` and forecasts every origin up to the
    next refit: the mean of its curve over the origin's window ``[i, i + k)``.
    """
    import pandas as pd

    out = np.full(len(origins), np.nan)
    fit_s = pred_s = 0.0
    model: Any | None = None
    for r, idx in refit_segments(origins, refits):
        started = time.perf_counter()
        first = max(0, r - window)
        with contextlib.suppress(Exception):  # a failed fit keeps the previous model
            model = _fit_prophet(rates[first:r], first, t0, step) or model
        fit_s += time.perf_counter() - started
        if model is None or idx.size == 0:
            continue
        started = time.perf_counter()
        org = origins[idx]
        rows = np.arange(int(org.min()), int(org.max()) + k)
        ds = pd.to_datetime(t0 + rows * step + step / 2.0, unit="s")
        try:
            predicted = model.predict(pd.DataFrame({"ds": ds}))["yhat"]
        except Exception:  # this segment gets no forecast (NaN), like origins before the first fit
            pred_s += time.perf_counter() - started
            continue
        yhat = np.maximum(np.asarray(predicted, dtype=np.float64), 0.0)
        cs = np.concatenate(([0.0], np.cumsum(yhat)))
        a = org - rows[0]
        out[idx] = (cs[a + k] - cs[a]) / k
        pred_s += time.perf_counter() - started
    return out, fit_s, pred_s
