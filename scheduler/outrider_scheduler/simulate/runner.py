"""Replay a trace through every policy, second by second, and score SLO minutes and GPU-hours.

1. The trace's counts become per-second arrival rates (a bin's count spread evenly over it; traces
   finer than 10 s at their 10-s moving average, since multiplying a small trace's per-second
   counts would multiply its Poisson noise as well, unlike a really busier stream), scaled
   as far as ``peak_replicas`` replicas (the static-peak fleet) still meet the SLO in 99.9% of the
   minutes: the trace's own bursts decide how much headroom a fixed fleet needs.
2. The real forecaster runs a walk-forward over the trace (it only ever sees the past, refitting
   as the service does) and gives the 5-minute p90 peak forecast at every step; the ``outrider``
   policy reads the latest one.
3. Each policy starts its fleet and is asked to act every ``interval_s``; every second the fleet
   serves that second's arrivals (:mod:`.servers`), and GPU-seconds are counted.
4. A minute meets the SLO when its p99 (arrival-weighted over its seconds) is within
   ``slo_p99_ms`` and no request was refused.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from outrider_operator.api.resource import parse_spec
from outrider_scheduler.forecast.backtest import BacktestSettings
from outrider_scheduler.forecast.pipeline import run_walk_forward
from outrider_scheduler.forecast.series import effective_horizon, step_seconds_for, to_step_series
from outrider_scheduler.forecast.traces import Trace
from outrider_scheduler.planner.capacity import CapacityModel
from outrider_scheduler.planner.profile import CapacityProfile

from .fleet import Fleet, Timings
from .outrider_policy import OutriderPolicy
from .policies import DynamoPolicy, HpaPolicy, KpaPolicy, Observation, OraclePolicy, Policy, StaticPolicy
from .servers import ServerModel, second_p99

__all__ = [
    "ALL_POLICIES",
    "PolicyResult",
    "SimSettings",
    "Simulation",
    "build_policy",
    "minute_p99_ms",
    "outrider_spec",
    "prepare",
    "replay_rates",
    "replica_ceiling",
    "run_policy",
]

Array = npt.NDArray[np.float64]
ALL_POLICIES = ("outrider", "hpa", "kpa", "dynamo", "static-peak", "oracle")
"""Every policy, in report order."""
Progress = Callable[[str], None]
SMOOTH_SECONDS = 10
"""Traces finer than this are replayed at their moving-average rate over this many seconds."""
TWIN_REFIT_SECONDS = 24 * 3600
"""The twin's forecaster refits its models at most this often (traces under a day get at least four
refits all the same); the live forecaster refits hourly, the full backtest every 6 h."""


@dataclass(frozen=True)
class SimSettings:
    """What a simulation runs (the same for every trace: nothing is tuned to one)."""

    slo_p99_ms: float = 200.0
    peak_replicas: int = 16
    horizon_seconds: int = 300
    delay_ms: float = 10.0
    """The runtime's minBatchDelayMs."""
    max_batch: int = 16
    """The spec's batching.maxBatchSize (the planner may raise it live)."""
    queue_limit: int = 1024
    quick: bool = False
    """Only the first ``quick_seconds`` of the trace (and a lighter forecaster)."""
    quick_seconds: int = 6 * 3600
    warm_pods: int = 0
    """Outrider's warm standby pods (``standby.warm``; each holds a GPU all the time). 0, the API's
    default: in the twin a warm pod bought no SLO minute on any shared trace (docs/simulate.md)."""
    target_utilization_percent: int = 80
    """Outrider's ``scaling.targetUtilizationPercent`` (the API's default)."""
    forecast_sizing: str = "peak"
    """Outrider's ``scaling.forecastSizing`` (``peak``, the API's default, or ``mean``)."""
    variability: float = ServerModel.variability
    """``v = (ca2 + cs2) / 2`` of the random-arrival wait (:class:`ServerModel`); ``make bench-twin``
    fits it on the machine it runs on (docs/simulate.md, "Checked against reality")."""


@dataclass
class Simulation:
    """Everything the policies share: the scaled arrivals, the server model, the forecast."""

    trace: Trace
    settings: SimSettings
    profile: CapacityProfile
    timings: Timings
    rates: Array
    """Scaled arrivals per second."""
    scale: float
    server: ServerModel
    capacity_rps: float
    """One replica's capacity (80% of its throughput at the SLO batch size)."""
    slo_rps: float
    """The most requests/s one replica takes with p99 within the SLO (exact, for the oracle)."""
    forecast_peak: Array | None
    """Forecast p90 peak at every second (scaled), NaN before the first forecast."""
    notes: list[str] = field(default_factory=list)
    forecast_mean: Array | None = None
    """Forecast p90 of the horizon's mean rate at every second, like ``forecast_peak``."""


@dataclass
class PolicyResult:
    """One policy's replay."""

    name: str
    minute_p99_ms: Array
    minute_rejected: Array
    minute_ok: npt.NDArray[np.bool_]
    serving: Array
    """Serving replicas, per minute (mean)."""
    gpu_seconds: float
    allocated_gpu_seconds: float
    """GPU-seconds with cold pods counted too (what their GPU requests hold on a cluster)."""
    requests: float
    rejected: float
    actions: int
    promotions: int
    cold_starts: int
    seconds: float
    """Wall time the replay took."""

    def summary(self, static_gpu_hours: float | None) -> dict[str, Any]:
        """The numbers of ``simulate.json``."""
        minutes = len(self.minute_ok)
        gpu_hours = self.gpu_seconds / 3600
        finite = self.minute_p99_ms[np.isfinite(self.minute_p99_ms)]
        return {
            "slo_minutes_pct": round(100.0 * float(self.minute_ok.mean()), 3) if minutes else 0.0,
            "violating_minutes": int((~self.minute_ok).sum()),
            "gpu_hours": round(gpu_hours, 3),
            "gpu_hours_vs_static_peak": round(gpu_hours / static_gpu_hours, 4) if static_gpu_hours else None,
            "gpu_hours_allocated": round(self.allocated_gpu_seconds / 3600, 3),
            "p99_ms": round(float(np.percentile(finite, 99)), 1) if finite.size else None,
            "rejected_requests": round(self.rejected),
            "actions": self.actions,
            "promotions": self.promotions,
            "cold_starts": self.cold_starts,
            "seconds": round(self.seconds, 2),
        }


def minute_p99_ms(base_s: Array, share: Array, rate: Array, rates: Array) -> Array:
    """Per minute: the p99 (ms) of the arrival-weighted mixture of its seconds' latency distributions.

    Second ``i`` serves ``rates[i]`` requests with latency ``base_s[i]`` plus a wait that exceeds
    ``x`` with probability ``share[i] * exp(-x * rate[i])``; the minute's p99 is the ``x`` at which
    1% of the minute's requests are slower (bisection, all minutes at once). Infinite when more than
    1% of a minute's requests could not be served at all.
    """
    n = len(rates)
    minutes = (n + 59) // 60
    pad = minutes * 60 - n

    def shape(a: Array, fill: float) -> Array:
        return np.concatenate([a, np.full(pad, fill)]).reshape(minutes, 60)

    w, b, sh, r = shape(rates, 0.0), shape(base_s, 0.0), shape(share, 0.0), shape(rate, 1.0)
    r = np.where(np.isfinite(r) & (r > 0), r, 1e9)
    total = w.sum(axis=1)
    lo = np.zeros(minutes)
    # no second has more than 1% of its requests slower than its own p99: neither has the minute
    hi = np.max(second_p99(np.where(np.isfinite(b), b, 0.0), sh, r), axis=1) + 1e-6
    for _ in range(40):
        x = (lo + hi) / 2
        over = x[:, None] - b
        slow = np.where(over < 0, 1.0, sh * np.exp(-np.maximum(over, 0.0) * r))
        too_many = (w * slow).sum(axis=1) > 0.01 * total
        lo = np.where(too_many, x, lo)
        hi = np.where(too_many, hi, x)
    unserved = (w * ~np.isfinite(b)).sum(axis=1) > 0.01 * total
    out = np.where(unserved, np.inf, hi * 1000)
    return np.where(total > 0, out, 0.0)


def _scale_for_static(server: ServerModel, rates: Array, replicas: int, batch: int, slo_ms: float) -> float:
    """The largest scale of ``rates`` at which ``replicas`` replicas meet the SLO in 99.9% of minutes."""

    def ok(scale: float) -> bool:
        scaled = rates * scale
        p99 = minute_p99_ms(*server.static_seconds(scaled, replicas, batch), scaled)
        return float((p99 <= slo_ms).mean()) >= 0.999

    lo, hi = 0.0, replicas * server.replica_rps(batch) / max(float(rates.max()), 1e-9) * 4
    for _ in range(40):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _slo_rps(server: ServerModel, batch: int, slo_s: float) -> float:
    """The highest requests/s one replica takes with the model's p99 within the SLO."""
    lo, hi = 0.0, server.replica_rps(batch)
    for _ in range(40):
        mid = (lo + hi) / 2
        if server.tick(mid, 1, batch, 0.0).p99_s <= slo_s:
            lo = mid
        else:
            hi = mid
    return lo


def replay_rates(trace: Trace) -> Array:
    """The trace's arrivals per second, unscaled: a bin's count spread evenly over its seconds."""
    per_second = np.repeat(trace.counts / trace.bin_seconds, trace.bin_seconds).astype(np.float64)
    if trace.bin_seconds < SMOOTH_SECONDS:
        # a trace's per-second counts carry its own small-number noise; multiplied up it would be a
        # stream many times noisier than a busier real one: scale the 10-s mean rate instead
        kernel = np.ones(SMOOTH_SECONDS) / SMOOTH_SECONDS
        per_second = np.convolve(per_second, kernel, mode="same")
    return per_second


def prepare(
    trace: Trace,
    profile: CapacityProfile,
    timings: Timings,
    settings: SimSettings,
    progress: Progress | None = None,
) -> Simulation:
    """Scale the trace, build the server model and run the forecaster's walk-forward."""
    say = progress or (lambda _m: None)
    if settings.quick and trace.duration_seconds > settings.quick_seconds:
        bins = settings.quick_seconds // trace.bin_seconds
        trace = dataclasses.replace(trace, counts=trace.counts[:bins])
    per_second = replay_rates(trace)
    server = ServerModel(
        profile, profile.workers, settings.delay_ms / 1000, settings.queue_limit, settings.variability
    )
    model = CapacityModel.from_profile(profile)
    batch = model.best_batch(settings.slo_p99_ms, settings.delay_ms, 4 * settings.max_batch)
    capacity = model.capacity(max(batch, settings.max_batch))
    if float(per_second.max(initial=0.0)) <= 0:
        raise ValueError(f"trace {trace.name} has no requests")
    scale = _scale_for_static(
        server, per_second, settings.peak_replicas, settings.max_batch, settings.slo_p99_ms
    )
    rates = per_second * scale
    slo = _slo_rps(server, max(batch, settings.max_batch), settings.slo_p99_ms / 1000)
    sim = Simulation(trace, settings, profile, timings, rates, scale, server, capacity, slo, None)
    # the forecaster sees what the fleet receives: the replayed arrivals, in 1-s bins
    replayed = Trace(f"{trace.name} (replayed)", 0, 1, rates)
    forecast = _forecast(replayed, settings, len(rates), say, sim.notes)
    if forecast is not None:
        sim.forecast_peak, sim.forecast_mean = forecast
    return sim


def _forecast(
    trace: Trace, settings: SimSettings, seconds: int, say: Progress, notes: list[str]
) -> tuple[Array, Array] | None:
    """The forecaster's p90 peak and p90 mean at every second (walk-forward: each from the past
    alone)."""
    step = step_seconds_for(trace.bin_seconds, settings.horizon_seconds)
    horizon = effective_horizon(settings.horizon_seconds, step)
    wf = BacktestSettings(horizon, quick=True).effective().walk_forward
    # a day between refits of a long trace keeps the week's replay in its time budget: refitting
    # every 6 h (as the quick backtest does) moved the week's GPU-hours by 0.2% and cost 16 s
    wf = dataclasses.replace(wf, arima=False, prophet=False, refit_every_seconds=TWIN_REFIT_SECONDS)
    series = to_step_series(trace, 0, step)
    if len(series.y) < max(40, 4 * (horizon // step)):
        notes.append("trace too short for the forecaster: outrider runs on live signals alone")
        return None
    say(f"forecaster: walk-forward over {len(series.y)} steps of {step} s")
    res = run_walk_forward(series, horizon, wf, lambda m: say(f"  forecaster: {m}"))
    peak, mean = np.full(seconds, np.nan), np.full(seconds, np.nan)
    final = res.ensemble.final
    for i, origin in enumerate(res.origins):  # origin i: made once bin i-1 has ended
        start = int(origin) * step
        if start >= seconds:
            break
        held = slice(start, min(seconds, start + step))
        peak[held], mean[held] = final["peak_p90"][i], final["mean_p90"][i]
    return peak, mean


def replica_ceiling(s: SimSettings) -> int:
    """The most replicas any policy may run: 4x the static peak (the same for every policy)."""
    return 4 * s.peak_replicas


def outrider_spec(s: SimSettings) -> dict[str, Any]:
    """The ``InferenceDeployment`` spec the twin runs Outrider with (reported in ``simulate.json``).

    The warm pool is ``warm_pods`` (none by default); the cold pool holds no GPU.
    """
    return {
        "model": {"name": "twin", "uri": "builtin:all-minilm-l6-v2"},
        "replicas": {"min": 1, "max": replica_ceiling(s)},
        "standby": {"warm": s.warm_pods, "cold": max(1, s.peak_replicas // 8)},
        "batching": {"maxBatchSize": s.max_batch, "minBatchDelayMs": int(s.delay_ms)},
        "scaling": {
            "targetLatencyP99Ms": int(s.slo_p99_ms),
            "forecastHorizonSeconds": s.horizon_seconds,
            "targetUtilizationPercent": s.target_utilization_percent,
            "forecastSizing": s.forecast_sizing,
        },
    }


def build_policy(name: str, sim: Simulation) -> Policy:
    """The policy called ``name`` for this simulation."""
    s = sim.settings
    limit = replica_ceiling(s)
    if name == "static-peak":
        return StaticPolicy(s.peak_replicas)
    if name == "oracle":
        return OraclePolicy(sim.slo_rps, math.ceil(sim.timings.new_pod_s), max_replicas=limit)
    raw = sim.capacity_rps / 0.8  # a replica's throughput at the SLO batch size
    if name == "hpa":
        return HpaPolicy(0.7 * raw, max_replicas=limit)
    if name == "kpa":
        return KpaPolicy(raw, max_replicas=limit)
    if name == "dynamo":
        return DynamoPolicy(sim.capacity_rps, max_replicas=limit)
    if name == "outrider":
        spec = parse_spec(outrider_spec(s))
        return OutriderPolicy(
            spec,
            CapacityModel.from_profile(sim.profile),
            sim.forecast_peak,
            s.horizon_seconds,
            forecast_mean=sim.forecast_mean,
        )
    raise ValueError(f"unknown policy {name!r}; known: {', '.join(ALL_POLICIES)}")


def run_policy(sim: Simulation, policy: Policy, progress: Progress | None = None) -> PolicyResult:
    """Replay the whole trace through ``policy``."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    rates = sim.rates
    n = len(rates)
    minutes = (n + 59) // 60
    fleet = Fleet(sim.timings, batch=sim.settings.max_batch)
    first = float(rates[:60].max()) if n else 0.0
    policy.start(fleet, max(1, math.ceil(first / sim.slo_rps)))
    base = np.zeros(n)
    share = np.zeros(n)
    rate = np.ones(n)
    rejected = np.zeros(n)
    serving = np.zeros(n)
    gpu_seconds = 0.0
    allocated = 0.0
    backlog = 0.0
    last = 0.0
    expected = 0.0
    interval = policy.interval_s
    report_every = max(1, n // 10)
    server = sim.server
    for t in range(n):
        fleet.advance(t)
        if t % interval == 0:
            policy.act(Observation(t, rates, fleet, last, expected, backlog))
        k = sum(1 for p in fleet.pods if p.state == "serving")
        res = server.tick(float(rates[t]), k, fleet.batch, backlog)
        backlog = res.backlog
        last = res.p99_s
        base[t], share[t], rate[t] = res.base_s, res.tail_share, res.tail_rate
        rejected[t] = res.rejected
        serving[t] = k
        gpu_seconds += fleet.gpus()
        allocated += fleet.allocated()
        if t % 60 == 0:
            expected = server.tick(float(rates[t]), max(1, k), fleet.batch, 0.0).p99_s
        if t and t % report_every == 0:
            say(f"  {policy.name}: {100 * t // n}%")
    minute_p99 = minute_p99_ms(base, share, rate, rates)
    pad = minutes * 60 - n
    minute_rej = np.concatenate([rejected, np.zeros(pad)]).reshape(minutes, 60).sum(axis=1)
    minute_serving = (
        np.concatenate([serving, np.full(pad, serving[-1] if n else 0.0)]).reshape(minutes, 60).mean(axis=1)
    )
    ok = (minute_p99 <= sim.settings.slo_p99_ms) & (minute_rej < 0.5)
    counted = (
        getattr(policy, "actions", 0),
        getattr(policy, "promotions", 0),
        getattr(policy, "cold_starts", 0),
    )
    return PolicyResult(
        policy.name,
        minute_p99,
        minute_rej,
        ok,
        minute_serving,
        gpu_seconds,
        allocated,
        float(rates.sum()),
        float(rejected.sum()),
        int(counted[0]),
        int(counted[1]),
        int(counted[2]),
        time.perf_counter() - started,
    )
