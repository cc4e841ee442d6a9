"""Online combination of candidate forecasters with conformal calibration.

For every target (``mean_p50``, ``mean_p90``, ``peak_p90``) and at every origin ``i``:

1. *Calibrate each candidate* (normalised conformalised quantile regression): the score of a past
   origin ``j`` is ``(actual_j - f_j) / scale_j``, where ``scale`` is the recent mean rate (known at
   the origin), so one set of scores serves quiet nights and busy days; the calibrated forecast is
   ``f_i + scale_i * Q_tau(scores)`` over the last ``calib_window`` origins whose windows had ended
   by ``i`` (``j <= i - k``: nothing from after the origin is used). Additive scores keep idle
   periods (zero rates) well-behaved, which log-ratio scores do not. ``Q_tau`` is a weighted
   quantile: a score's weight halves every ``half_life`` of origin time, so the calibration follows
   changes in the error level (night and day, a burstier hour) within about an hour while still
   resting on hours of scores. Offsets are recomputed every ``recalibrate_seconds`` of origins (the
   service's recalibration interval) and held in between. A candidate made with
   ``calibrate=False`` is used as it is: the learned model's own quantiles enter a second time that
   way (``LEARNED_RAW``).
2. *Weight the candidates* by their recent pinball loss (same look-back rule):
   ``w_m ∝ exp(-(L_m / min L - 1) / temperature)``, so the best recent candidate dominates and
   candidates a few percent worse still contribute. A candidate other than the moving average (the
   default) takes part only while it is better than the moving average: a Diebold-Mariano-style
   test on the per-origin loss differences over the loss window, counting ``k`` overlapping
   origins as one independent window, must give ``t < -(significance + small_sample / sqrt(n))``.
   The learned model (calibrated, and its own quantiles as they are: ``LEARNED_RAW``) is held to a
   strict threshold, so short or noisy histories stay with the
   simple candidates while persistent structure (daily cycles the learned model has found) passes
   the test; the simple candidates (last value, seasonal naive, ETS) need only a lower mean loss
   with a small-sample margin.
   The combination is the weighted mean (``weighted_mean``: a candidate without a forecast at an
   origin is left out and the others renormalised, in the backtest and live alike). Once every
   candidate has forecasts over a full loss window (a day of resolved origins), the weights are
   instead the convex combination of the candidates (calibrated, and the learned model's own
   quantiles as they are) with the least pinball loss over it (quantile averaging,
   ``averaging.py``), fitted every hour of origins: two candidates that err differently can
   together beat the best of them, which exponential weights cannot.
3. *Calibrate the combination* once more on its own recent scores, only with ``final_stage`` (off
   by default: on the shared traces the second stage added noise without improving coverage).

``run_ensemble`` does this for all origins at once (backtests); ``EnsembleState`` freezes the
offsets and weights at one origin so that ``EnsembleState.apply`` forecasts a new origin from the
candidates' raw forecasts alone (the live service, a few microseconds per deployment).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from .averaging import fit_averaging_weights
from .baselines import Candidate

__all__ = [
    "COVER_TOLERANCE_REQUESTS",
    "FALLBACK",
    "LEARNED",
    "LEARNED_ACTIVE",
    "LEARNED_ACTIVE_RAW",
    "LEARNED_RAW",
    "LEVEL",
    "QUANTILES",
    "TARGETS",
    "EnsembleOutput",
    "EnsembleSettings",
    "EnsembleState",
    "covered",
    "pinball",
    "run_ensemble",
    "to_rates",
    "weighted_lagged_quantiles",
]

Array = npt.NDArray[np.float64]

TARGETS = ("mean_p50", "mean_p90", "peak_p90")
"""Forecast targets."""
QUANTILES = {"mean_p50": 0.5, "mean_p90": 0.9, "peak_p90": 0.9}
"""Quantile level of each target."""
FALLBACK = "moving_average"
"""The candidate used alone while no candidate has a loss history yet."""
LEARNED = "outrider_gbm"
"""The learned candidate, conformally calibrated like the others."""
LEARNED_RAW = "outrider_gbm_raw"
"""The learned model's own quantiles, not shifted by calibration offsets. Its quantile regressors are
fitted on every window of the history (days, on a long trace), while a conformal offset rests on the
last few hours: with ``k`` overlapping origins per independent window, three hours of 5-min windows
are a few dozen independent scores, and the 90th percentile of a few dozen scores is noisy. Once the
model has seen enough history its own p90 is the steadier estimate; before that the calibrated copy
is better. Both are candidates, and the loss window decides between them."""
LEARNED_ACTIVE = "outrider_gbm_active"
"""A second learned model, fitted without the origins whose history ends in a long idle stretch
(``ModelSettings.idle_split_seconds``); only while the history has such stretches. At an idle base
the learned model's targets are levels in units of the log scale's offset: on a quiet service with
idle nights those rows cost the one model its daytime accuracy, while on series that are idle most
of the day they are what it learns from. Both are candidates, and the loss window decides."""
LEARNED_ACTIVE_RAW = "outrider_gbm_active_raw"
"""The second learned model's own quantiles (as ``LEARNED_RAW`` is the first's)."""
LEVEL = "level_gbm"
"""The level model's own quantiles (``level.py``): gradient-boosted quantiles of the absolute rate,
weighed without a calibration offset."""
STRICT = (LEARNED, LEARNED_RAW, LEARNED_ACTIVE, LEARNED_ACTIVE_RAW, LEVEL)
"""Candidates held to the stricter significance rule (they can fit noise)."""


@dataclass(frozen=True)
class EnsembleSettings:
    """How candidates are calibrated and weighted."""

    calib_window_seconds: int = 3 * 3600
    """Look-back of the conformal calibration, seconds of origins."""
    half_life_seconds: int = 3600
    """Half-life of the calibration scores' weights, seconds of origin age (0: equal weights)."""
    recalibrate_seconds: int = 60
    """Offsets are recomputed every this many seconds of origins and held in between (weighted
    quantiles only; the service recalibrates every 60 s too)."""
    min_calib: int = 10
    """Fewest resolved scores before a candidate counts as calibrated."""
    loss_window_seconds: int = 24 * 3600
    """Look-back of the pinball loss used for weighting, seconds of origins."""
    temperature: float = 0.05
    """Softness of the weighting (relative loss excess that costs a factor e in weight)."""
    significance: float = 1.0
    """t-statistic by which the learned model must beat the moving average to be weighted at all."""
    small_sample: float = 4.0
    """Extra t-statistic demanded from few independent windows ``n``: ``small_sample / sqrt(n)``."""
    simple_significance: float = 0.0
    """The same threshold for the simple candidates (last value, seasonal naive, ETS): a few fixed
    rules with nothing fitted to noise, so a lower mean loss than the moving average is enough once
    there are enough windows to tell."""
    simple_small_sample: float = 2.0
    """The small-sample term for the simple candidates (without it, the one-hour conversation trace
    went from 1.00 to 1.03 times the best baseline's loss)."""
    final_stage: bool = False
    """Whether the combination is calibrated again on its own scores (off by default: on the shared
    traces the second stage added noise without improving coverage)."""
    averaging: bool = True
    """Whether, once the loss window is full, the candidates are combined with quantile-averaging
    weights (``averaging.py``: the convex combination with the least pinball loss over the loss
    window) instead of the exponential weights."""
    averaging_refit_seconds: int = 3600
    """How often the averaging weights are fitted, seconds of origins (held in between)."""
    averaging_max_rows: int = 1440
    """Most origins of the loss window one averaging fit uses (evenly spaced)."""


def pinball(actual: Array, forecast: Array, tau: float) -> Array:
    """Pinball (quantile) loss of ``forecast`` as the tau-quantile of ``actual``, elementwise."""
    diff = actual - forecast
    return np.maximum(tau * diff, (tau - 1.0) * diff)


COVER_TOLERANCE_REQUESTS = 1e-3
"""A window counts as covered when its actual rate is at or under the forecast within this many
requests per step: a forecast of a perfectly periodic series (a timer) that converges on the exact
rate from below, 1e-5 under it, covers it as well as one exactly on it."""


def covered(actual: Array, forecast: Array, step_seconds: float) -> Array:
    """Whether each ``actual`` rate is at or under ``forecast`` (requests/s), up to
    :data:`COVER_TOLERANCE_REQUESTS` requests per step of ``step_seconds``."""
    return np.asarray(actual <= forecast + COVER_TOLERANCE_REQUESTS / step_seconds)


def to_rates(z: Array, eps: float) -> Array:
    """Back from the log scale ``log(rate + eps)`` to rates (never negative)."""
    return np.maximum(np.exp(z) - eps, 0.0)


def _lagged_rolling(
    values: Array, window: int, min_periods: int, lag: int, how: str, q: float = 0.5
) -> Array:
    roll = pd.Series(values).rolling(window, min_periods=min_periods)
    if how == "quantile":
        out = roll.quantile(q)
    elif how == "std":
        out = roll.std()
    elif how == "count":
        out = pd.Series(np.isfinite(values).astype(np.float64)).rolling(window, min_periods=1).sum()
    else:
        out = roll.mean()
    return np.asarray(out.shift(lag), dtype=np.float64)


def _eligibility(
    raw_loss: dict[str, Array], window: int, min_periods: int, lag: int, s: EnsembleSettings
) -> dict[str, Array]:
    """0 where a candidate may be weighted, +inf where it has not significantly beaten the default."""
    out: dict[str, Array] = {}
    default = raw_loss.get(FALLBACK)
    for name, loss in raw_loss.items():
        if name == FALLBACK or default is None:
            out[name] = np.zeros(len(loss))
            continue
        d = loss - default
        mean = _lagged_rolling(d, window, min_periods, lag, "mean")
        sd = _lagged_rolling(d, window, min_periods, lag, "std")
        n_eff = np.maximum(np.nan_to_num(_lagged_rolling(d, window, 1, lag, "count")) / max(lag, 1), 1.0)
        with np.errstate(all="ignore"):
            tstat = mean / (sd / np.sqrt(n_eff))
        if name in STRICT:
            significance, small = s.significance, s.small_sample
        else:
            significance, small = s.simple_significance, s.simple_small_sample
        out[name] = np.where(tstat < -(significance + small / np.sqrt(n_eff)), 0.0, np.inf)
    return out


def _weights(
    losses: dict[str, Array], available: dict[str, Array], temperature: float, margin: dict[str, Array]
) -> dict[str, Array]:
    names = list(losses)
    lmat = np.column_stack([losses[m] for m in names])
    amat = np.column_stack([available[m] for m in names])
    lmat = np.where(amat & np.isfinite(lmat), lmat, np.nan)
    with np.errstate(all="ignore"):
        best = np.nanmin(np.where(np.isnan(lmat), np.inf, lmat), axis=1)
        rel = lmat / np.maximum(best, 1e-12)[:, None] - 1.0
        rel += np.column_stack([np.zeros(len(best)) if m == FALLBACK else margin[m] for m in names])
        w = np.exp(-rel / temperature)
    w = np.where(np.isfinite(w), w, 0.0)
    none = w.sum(axis=1) == 0
    if FALLBACK in names:
        j = names.index(FALLBACK)
        w[none, j] = np.where(amat[none, j], 1.0, 0.0)
    total = w.sum(axis=1)
    w = np.where(total[:, None] > 0, w / np.where(total > 0, total, 1.0)[:, None], 0.0)
    return {m: w[:, j] for j, m in enumerate(names)}


def weighted_lagged_quantiles(
    values: Array,
    window: int,
    min_periods: int,
    lag: int,
    qs: Sequence[float],
    half_life: float,
    stride: int = 1,
) -> list[Array]:
    """Recency-weighted ``q``-quantiles of ``values[i-lag-window+1 .. i-lag]`` for every row ``i``.

    A value ``a`` rows older than the newest in the window weighs ``2 ** (-a / half_life)``; NaNs
    weigh nothing, and rows with fewer than ``min_periods`` finite values get NaN. The quantile is
    the smallest value whose cumulative weight reaches ``q`` of the total. It is computed at the
    last row and every ``stride`` rows before it, and each result is held for the rows that follow
    (so row ``i`` may use a result computed up to ``stride - 1`` rows earlier, never a later one).
    Returns one array per level in ``qs`` (several levels share the sorting).
    """
    n = len(values)
    outs = [np.full(n, np.nan) for _ in qs]
    if n <= lag:
        return outs
    stride = max(stride, 1)
    hl = max(half_life, 1e-9)
    # Rows are taken in blocks: the values under a block's windows are sorted once, and each row
    # picks its own window's values out of that order (never a value outside it). A weight factors
    # into a per-row constant (dropped: only relative weights matter) times 2 ** (index /
    # half_life), taken relative to the block's newest index. A block spans at most 60 half-lives
    # (so weights underflow about where they would relative to each row's own newest index) and at
    # most one window's length of rows (so a long stride does not sort far more than a window).
    reach = 60 * hl / stride
    block = 64 if reach >= 64 else max(1, int(reach))
    block = max(1, min(block, 1 + window // stride))
    rows = np.arange(n - 1, lag - 1, -stride)[::-1]
    finite = np.isfinite(values)
    key = np.where(finite, values, np.inf)  # NaNs sort last and weigh nothing
    for a in range(0, len(rows), block):
        rr = rows[a : a + block]
        ends = rr - lag  # each row's window is values[end-window+1 .. end]
        lo, hi = max(int(ends[0]) - window + 1, 0), int(ends[-1]) + 1
        pos = np.argsort(key[lo:hi], kind="stable") + lo  # indices in value order
        age = ends[:, None] - pos[None, :]
        inside = (age >= 0) & (age < window) & finite[pos][None, :]
        cum = np.cumsum(np.where(inside, np.exp2((pos - (hi - 1)) / hl)[None, :], 0.0), axis=1)
        count = inside.sum(axis=1)
        enough = (count >= min_periods) & (count > 0)
        # rows whose every weight underflowed (values hundreds of half-lives old): weighed again
        # relative to their own newest value, one by one
        lost = np.nonzero(enough & (cum[:, -1] == 0))[0]
        for q, out in zip(qs, outs, strict=True):
            # the first of the row's own values where the cumulative weight reaches q of its total
            # (tolerating rounding)
            got = values[pos[np.argmax(inside & (cum >= q * cum[:, -1:] * (1 - 1e-9)), axis=1)]]
            for r in lost:
                mine = np.nonzero(inside[r])[0]
                own = np.cumsum(np.exp2(-(age[r, mine] - age[r, mine].min()) / hl))
                got[r] = values[pos[mine[np.argmax(own >= q * own[-1] * (1 - 1e-9))]]]
            out[rr] = np.where(enough, got, np.nan)
    if stride > 1:
        held = np.searchsorted(rows, np.arange(n), side="right") - 1
        src = rows[np.maximum(held, 0)]
        outs = [np.where(held >= 0, out[src], np.nan) for out in outs]
    return outs


def _calibration_quantiles(
    score: Array, window: int, lag: int, qs: Sequence[float], s: EnsembleSettings, step: int
) -> list[Array]:
    if s.half_life_seconds <= 0:
        return [_lagged_rolling(score, window, s.min_calib, lag, "quantile", q) for q in qs]
    return weighted_lagged_quantiles(
        score, window, s.min_calib, lag, qs, s.half_life_seconds / step, max(1, s.recalibrate_seconds // step)
    )


def _candidate_offsets(
    scores: dict[str, Array], window: int, lag: int, s: EnsembleSettings, step: int
) -> dict[str, Array]:
    """Conformal offset per target from a candidate's scores. Targets with the same scores (a
    point forecast's mean p50 and p90) share one pass at their two levels."""
    out: dict[str, Array] = {}
    for t in TARGETS:
        if t in out:
            continue
        group = [u for u in TARGETS if u not in out and np.array_equal(scores[u], scores[t], equal_nan=True)]
        levels = sorted({QUANTILES[u] for u in group})
        quantiles = _calibration_quantiles(scores[t], window, lag, levels, s, step)
        found = dict(zip(levels, quantiles, strict=True))
        for u in group:
            out[u] = found[QUANTILES[u]]
    return out


def weighted_mean(weights: Mapping[str, Array | float], forecasts: Mapping[str, Array | float]) -> Array:
    """Per row, the mean of the candidates' finite ``forecasts`` weighted by their positive
    ``weights`` (NaN where there is none). The one combination rule of the backtest's exponential
    and averaging weights and of the live state's ``apply``: a candidate without a forecast is left
    out and the others' weights renormalised. Scalars (the live path) are added in plain floats,
    in the same order and with the same operations as rows, so live and backtest agree exactly."""
    num: Array | float = 0.0
    den: Array | float = 0.0
    for m, w in weights.items():
        f = forecasts.get(m, np.nan)
        if isinstance(w, float) and isinstance(f, float):
            if w > 0 and math.isfinite(f):
                num += w * f
                den += w
            continue
        use = (np.asarray(w) > 0) & np.isfinite(f)
        num = num + np.where(use, np.multiply(w, np.nan_to_num(f)), 0.0)
        den = den + np.where(use, w, 0.0)
    ok = np.asarray(den) > 0
    if ok.ndim == 0:
        return np.asarray(num / den if ok else np.nan, dtype=np.float64)
    return np.asarray(np.where(ok, np.divide(num, np.where(ok, den, 1.0)), np.nan), dtype=np.float64)


@dataclass
class EnsembleState:
    """Offsets and weights frozen at one origin; applies them to fresh raw candidate forecasts."""

    offsets: dict[str, dict[str, float]] = field(default_factory=dict)
    """Candidate -> target -> conformal offset (in units of the scale); NaN: not calibrated yet."""
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    """Target -> candidate -> weight."""
    final_offsets: dict[str, float] = field(default_factory=dict)
    """Target -> offset of the combination (in units of the scale)."""
    fallback_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    """Target -> candidate -> exponential weight, where ``weights`` are quantile-averaging weights:
    used when none of the averaged candidates has a forecast (as the backtest does)."""

    def apply(self, raw: dict[str, dict[str, float]], scale: float) -> dict[str, float]:
        """Combine raw forecasts (candidate -> target -> rate) at an origin with this ``scale``.

        Returns the final forecast per target in requests/s (NaN if no candidate is usable).
        """
        out: dict[str, float] = {}
        for t in TARGETS:
            calibrated = {
                m: f[t] + self.offsets.get(m, {}).get(t, np.nan) * scale for m, f in raw.items() if t in f
            }
            mixed = float(weighted_mean(self.weights.get(t, {}), calibrated))
            if not np.isfinite(mixed) and t in self.fallback_weights:
                mixed = float(weighted_mean(self.fallback_weights[t], calibrated))
            out[t] = (
                max(mixed + self.final_offsets.get(t, 0.0) * scale, 0.0) if np.isfinite(mixed) else np.nan
            )
        return out


@dataclass
class EnsembleOutput:
    """Results of ``run_ensemble`` for every origin."""

    calibrated: dict[str, dict[str, Array]]
    """Candidate -> target -> calibrated forecast (requests/s)."""
    final: dict[str, Array]
    """Target -> final forecast of the combination (requests/s)."""
    weights: dict[str, dict[str, Array]]
    """Target -> candidate -> weight per origin."""
    offsets: dict[str, dict[str, Array]]
    """Candidate -> target -> conformal offset per origin."""
    final_offsets: dict[str, Array]
    """Target -> offset of the combination per origin."""
    warm: npt.NDArray[np.bool_]
    """Per origin: whether the weights came from loss history (False: fallback candidate alone)."""
    averaged: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    """Target -> per origin: whether the weights are quantile-averaging weights."""
    exponential_weights: dict[str, dict[str, Array]] = field(default_factory=dict)
    """Target -> candidate -> the exponential weight per origin (the same as ``weights`` where the
    origin is not averaged)."""

    def state_at(self, row: int) -> EnsembleState:
        """Freeze the offsets and weights of origin ``row``."""
        return EnsembleState(
            offsets={m: {t: float(a[row]) for t, a in d.items()} for m, d in self.offsets.items()},
            weights={t: {m: float(a[row]) for m, a in d.items()} for t, d in self.weights.items()},
            final_offsets={t: float(a[row]) for t, a in self.final_offsets.items()},
            fallback_weights={
                t: {m: float(a[row]) for m, a in self.exponential_weights[t].items()}
                for t, done in self.averaged.items()
                if done[row] and t in self.exponential_weights
            },
        )


def run_ensemble(
    candidates: list[Candidate],
    actual: dict[str, Array],
    scale: Array,
    lag: int,
    step_seconds: int,
    settings: EnsembleSettings | None = None,
    start: int = 0,
    last_row_only: bool = False,
    held_averaging: dict[str, dict[str, float]] | None = None,
) -> EnsembleOutput:
    """Calibrate, weight and combine ``candidates`` over consecutive origins (one row per step).

    ``actual`` holds the actual rate per target (NaN where the window is not over); ``scale`` the
    positive scale of each origin; ``lag`` is the horizon in rows: the score of row ``j`` is first
    used at row ``j + lag``. Scores of rows before ``start`` are ignored, so that candidates compared
    with each other are calibrated on the same origins.

    Quantile-averaging weights (``settings.averaging``) are fitted every
    ``averaging_refit_seconds`` of rows once the loss window is full, and held in between. With
    ``last_row_only`` (the live service, which needs only its newest origin) they are fitted, or
    taken from ``held_averaging`` (target -> candidate -> weight, from an earlier fit), for the last
    row alone.
    """
    s = settings or EnsembleSettings()
    cw = max(s.min_calib, s.calib_window_seconds // step_seconds)
    lw = max(s.min_calib, s.loss_window_seconds // step_seconds)
    used = np.arange(len(scale)) >= start
    calibrated: dict[str, dict[str, Array]] = {}
    offsets: dict[str, dict[str, Array]] = {}
    losses: dict[str, dict[str, Array]] = {t: {} for t in TARGETS}
    raw_loss: dict[str, dict[str, Array]] = {t: {} for t in TARGETS}
    for c in candidates:
        calibrated[c.name], offsets[c.name] = {}, {}
        if c.calibrate:
            scores = {t: np.where(used, (actual[t] - c.f[t]) / scale, np.nan) for t in TARGETS}
            offs = _candidate_offsets(scores, cw, lag, s, step_seconds)
        else:  # its own quantiles, as they are
            offs = {t: np.zeros(len(scale)) for t in TARGETS}
        for t in TARGETS:
            tau = QUANTILES[t]
            off = offs[t]
            cal = np.maximum(c.f[t] + off * scale, 0.0)
            calibrated[c.name][t], offsets[c.name][t] = cal, off
            loss = pinball(actual[t], cal, tau)
            losses[t][c.name] = _lagged_rolling(loss, lw, s.min_calib, lag, "mean")
            raw_loss[t][c.name] = loss
    weights: dict[str, dict[str, Array]] = {}
    warm = np.ones(len(scale), dtype=bool)
    final: dict[str, Array] = {}
    final_offsets: dict[str, Array] = {}
    averaged: dict[str, npt.NDArray[np.bool_]] = {}
    exponential: dict[str, dict[str, Array]] = {}
    for t in TARGETS:
        avail = {c.name: np.isfinite(calibrated[c.name][t]) for c in candidates}
        warm &= np.any([np.isfinite(losses[t][c.name]) & avail[c.name] for c in candidates], axis=0)
        margins = _eligibility(raw_loss[t], lw, s.min_calib, lag, s)
        w = _weights(losses[t], avail, s.temperature, margins)
        g = weighted_mean(w, {c.name: calibrated[c.name][t] for c in candidates})
        exponential[t] = w
        plan = _averaging_plan(len(g), start, lag, lw, s, step_seconds, last_row_only) if s.averaging else []
        held = (held_averaging or {}).get(t)
        g, w, averaged[t] = _average(calibrated, actual[t], t, plan, lag, lw, s, w, g, held)
        if s.final_stage:
            score = np.where(used, (actual[t] - g) / scale, np.nan)
            (off,) = _calibration_quantiles(score, cw, lag, (QUANTILES[t],), s, step_seconds)
            off = np.nan_to_num(off, nan=0.0)
        else:
            off = np.zeros(len(g))
        weights[t], final[t], final_offsets[t] = w, np.maximum(g + off * scale, 0.0), off
    return EnsembleOutput(calibrated, final, weights, offsets, final_offsets, warm, averaged, exponential)


def _averaging_plan(
    n: int, start: int, lag: int, window: int, s: EnsembleSettings, step: int, last_row_only: bool
) -> list[tuple[int, int]]:
    """The rows ``[a, b)`` that share one averaging fit (made at row ``a``), from the first row whose
    loss window holds ``window`` resolved origins."""
    first = max(start, 0) + lag + window - 1
    if first >= n:
        return []
    if last_row_only:
        return [(n - 1, n)]
    every = max(1, s.averaging_refit_seconds // step)
    return [(a, min(a + every, n)) for a in range(first, n, every)]


def _average(
    calibrated: dict[str, dict[str, Array]],
    actual: Array,
    target: str,
    plan: list[tuple[int, int]],
    lag: int,
    window: int,
    s: EnsembleSettings,
    weights: dict[str, Array],
    combined: Array,
    held: dict[str, float] | None,
) -> tuple[Array, dict[str, Array], npt.NDArray[np.bool_]]:
    """The combination and the weights with quantile-averaging weights over the rows of ``plan``
    (``held`` weights instead of a fit where given), and the rows where they apply. ``weights`` and
    ``combined`` are not changed; they are returned as they are when nothing is averaged.

    A fit uses the candidates with a forecast at its row, and only once each of them has forecasts
    at 99% of the loss window's resolved origins: a candidate that joined later (the second learned
    model, after the first long idle stretch) is left to the exponential weights, which can weigh
    it from its first hours, until it has a day of record. A row where none of the chosen
    candidates has a forecast keeps the exponential weights.
    """
    averaged = np.zeros(len(combined), dtype=bool)
    forecasts = {m: calibrated[m][target] for m in calibrated}
    fits = [
        (a, b, _chosen(forecasts, actual, QUANTILES[target], a, _past(a, lag, window), s, held))
        for a, b in plan
    ]
    fits = [(a, b, chosen) for a, b, chosen in fits if chosen]
    if not fits:
        return combined, weights, averaged
    out = combined.copy()
    mixed = {m: w.copy() for m, w in weights.items()}
    for a, b, chosen in fits:
        rows = slice(a, b)
        g = weighted_mean(chosen, {m: forecasts[m][rows] for m in chosen})
        ok = np.isfinite(g)
        out[rows] = np.where(ok, g, out[rows])
        averaged[rows] = ok
        for m in mixed:
            mixed[m][rows] = np.where(ok, chosen.get(m, 0.0), mixed[m][rows])
    return out, mixed, averaged


def _past(row: int, lag: int, window: int) -> slice:
    """The loss window of ``row``: the ``window`` origins whose windows had ended by it."""
    return slice(max(row - lag - window + 1, 0), row - lag + 1)


def _chosen(
    forecasts: dict[str, Array],
    actual: Array,
    tau: float,
    row: int,
    past: slice,
    s: EnsembleSettings,
    held: dict[str, float] | None,
) -> dict[str, float]:
    """The averaging weights at ``row`` (candidate -> positive weight): ``held`` where given, else
    fitted on the rows of ``past``; empty when there is nothing to fit."""
    if held is not None:
        return {m: v for m, v in held.items() if m in forecasts and v > 0}
    resolved = np.isfinite(actual[past])
    if not resolved.any():
        return {}
    usable = [m for m, f in forecasts.items() if np.isfinite(f[row])]
    if not usable or any(np.mean(np.isfinite(forecasts[m][past][resolved])) < 0.99 for m in usable):
        return {}  # a candidate without a day of forecasts yet: the exponential weights judge it
    mat = np.column_stack([forecasts[m][past] for m in usable])
    fitted = fit_averaging_weights(mat, actual[past], tau, s.averaging_max_rows)
    if fitted is None:
        return {}
    return {m: float(v) for m, v in zip(usable, fitted, strict=True) if v > 0}
