"""How many serving pods one deployment wants: the first steps of :func:`~.core.decide`.

In the order :func:`~.core.decide` runs them: :func:`sort_pods` sorts the pods by the situation
they are in, :func:`read_signals` reads demand, latency, queue and capacity (rule 1 of
:mod:`.core`), :func:`count_wanted` turns them into the wanted number of serving pods and the
cold pods that absorb forecast misses (rules 1 and 4), and :func:`track` keeps the memory of
overload (rule 2) and of what load wanted over the stabilisation window (rule 5).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

from outrider_operator.api import labels
from outrider_operator.api.runtime import ModelState
from outrider_operator.api.spec import DynamicBatching
from outrider_operator.api.status import ActionTrigger

from .capacity import CapacityModel
from .decisions import Action, CoreSettings, Memory, PodOp
from .observe import DeploymentView, ForecastView, PodKind, PodView, classify

__all__ = [
    "Pods",
    "Readings",
    "Trend",
    "Wanted",
    "count_wanted",
    "read_signals",
    "sort_pods",
    "track",
]

_DONE = (PodKind.GONE,)
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Pods:
    """The deployment's pods sorted by the situation they are in."""

    kinds: dict[str, PodKind]
    """Each pod's situation, by pod name."""
    by: dict[PodKind, list[PodView]]
    """The pods in each situation."""
    serving: list[PodView]
    incoming: list[PodView]
    """Pods on their way to serving (loading up, or serving without the label yet)."""
    restartable: list[PodView]
    """Pods restarted into the wrong place with the model warm (promoted back at once)."""
    blind: list[PodView]
    """Serving pods that did not answer: they still exist and count as serving."""


@dataclass(frozen=True)
class Cycle:
    """One decision's inputs, and the lists its steps append to (the plan's operations, actions and
    notes, in the order the steps run)."""

    view: DeploymentView
    model: CapacityModel
    memory: Memory
    settings: CoreSettings
    pods: Pods
    ops: list[PodOp] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Readings:
    """What the serving pods and the capacity model say this cycle."""

    demand: float
    """Requests/s arriving at the deployment's pods."""
    queue: int
    p99: float | None
    """The worst p99 of the serving pods with enough requests (ms)."""
    target_ms: float
    delay_ms: float
    default_batch: int
    """The spec's batch size."""
    dynamic: bool
    current_batch: int
    """The median batch size in effect on the serving pods."""
    high_batch: int
    """The largest batch size within the p99 target (what a surge raises serving pods to)."""
    cap_high: float
    cap_default: float
    known: bool
    """Whether one replica's capacity is known."""
    utilisation: float
    """The spec's target busy fraction of a replica (capacities are at this load)."""


@dataclass(frozen=True)
class Wanted:
    """How many serving pods are wanted, and why."""

    need_load: int
    need_latency: int
    need_forecast: int
    forecast: ForecastView | None
    worst_miss: float
    """The largest load above the forecast's p90 peak over the miss window (requests/s), whatever
    ``scaling.forecastSizing`` sizes serving pods for."""
    absorb: int
    """Cold pods added to absorb that miss."""
    wanted_now: int
    """What observed load wants."""
    desired: int
    """What observed load or the forecast wants."""
    have: int
    """Serving pods, pods on their way and pods that did not answer."""


@dataclass(frozen=True)
class Trend:
    """Whether the deployment is overloaded, and how far down it may go."""

    overloaded: bool
    trigger_time: float | None
    """When the overload was first seen (unix seconds)."""
    surge: bool
    """Overloaded for enough samples in a row to act."""
    trigger: ActionTrigger
    window: float
    """The scale-down stabilization window (seconds)."""
    down_to: int
    """The highest count observed load wanted over the window, or what the forecast wants."""


def _push_max(window: deque[tuple[float, _N]], now: float, value: _N) -> None:
    """Add ``value`` to a sliding-window maximum: entries it outdoes can never be the maximum again,
    so the deque stays decreasing and its first entry is the window's maximum once expired entries
    are popped from the left."""
    while window and window[-1][1] <= value:
        window.pop()
    window.append((now, value))


def _latency_p99(pods: list[PodView], settings: CoreSettings) -> float | None:
    worst: float | None = None
    for p in pods:
        lat = p.rates.load.latency if p.rates else None
        if lat is not None and lat.p99_ms is not None and lat.count >= settings.min_latency_samples:
            worst = lat.p99_ms if worst is None else max(worst, lat.p99_ms)
    return worst


def sort_pods(view: DeploymentView) -> Pods:
    """Sort the deployment's pods by the situation they are in."""
    kinds: dict[str, PodKind] = {p.name: classify(p) for p in view.pods}
    by: dict[PodKind, list[PodView]] = {k: [] for k in PodKind}
    for p in view.pods:
        by[kinds[p.name]].append(p)
    serving = by[PodKind.SERVING]
    incoming = by[PodKind.LOADING_UP] + by[PodKind.UNLABELLED]
    restartable = [p for p in by[PodKind.MISMATCH] if p.rates and p.rates.load.state == ModelState.WARM]
    # pods that did not answer still exist (a NetworkPolicy, a slow pod): counting them as missing
    # would add replicas every cycle, up to replicas.max, for pods that may serve fine
    blind = [
        p
        for p in by[PodKind.UNREACHABLE]
        if p.role == labels.ROLE_SERVING and not p.deleting and not p.released
    ]
    return Pods(kinds, by, serving, incoming, restartable, blind)


def read_signals(c: Cycle) -> Readings:
    """Read demand, latency, queue and capacity; feed the serving pods' p99 to ``model``."""
    view, model, memory, settings, pods = c.view, c.model, c.memory, c.settings, c.pods
    spec = view.spec
    kinds, serving = pods.kinds, pods.serving
    live = [p for p in view.pods if p.rates is not None and kinds[p.name] not in _DONE]
    demand = sum(p.rates.arrival_rps for p in live if p.rates)
    queue = sum(p.rates.load.queue_depth for p in serving if p.rates)
    p99 = _latency_p99(serving, settings)
    target_ms = float(spec.scaling.target_latency_p99_ms)
    delay_ms = float(spec.batching.min_batch_delay_ms)
    default_batch = spec.batching.max_batch_size
    dynamic = str(spec.batching.dynamic) == DynamicBatching.ENABLED.value
    sizes = sorted(p.rates.load.batching.max_batch_size for p in serving if p.rates)
    current_batch = sizes[len(sizes) // 2] if sizes else (memory.batch_target or default_batch)
    if memory.batch_target is None:
        memory.batch_target = max(current_batch, default_batch)
    ceiling = min(4096, default_batch * settings.batch_growth) if dynamic else default_batch
    high_batch = (
        max(default_batch, model.best_batch(target_ms, delay_ms, ceiling)) if dynamic else default_batch
    )
    utilisation = spec.scaling.target_utilization_percent / 100
    cap_high = model.capacity(high_batch, utilisation)
    cap_default = model.capacity(default_batch, utilisation)
    known = model.known and math.isfinite(cap_high) and cap_high > 0
    if serving and p99 is not None:
        model.observe_latency(
            p99, demand / len(serving), current_batch, delay_ms, target_ms, queue / len(serving), utilisation
        )
    return Readings(
        demand=demand,
        queue=queue,
        p99=p99,
        target_ms=target_ms,
        delay_ms=delay_ms,
        default_batch=default_batch,
        dynamic=dynamic,
        current_batch=current_batch,
        high_batch=high_batch,
        cap_high=cap_high,
        cap_default=cap_default,
        known=known,
        utilisation=utilisation,
    )


def count_wanted(c: Cycle, readings: Readings) -> Wanted:
    """How many serving pods are wanted; keeps the forecast's misses in ``memory``."""
    view, model, memory, settings, pods, notes = c.view, c.model, c.memory, c.settings, c.pods, c.notes
    spec, now = view.spec, view.now
    serving, incoming, restartable, blind = pods.serving, pods.incoming, pods.restartable, pods.blind
    demand, queue, p99, known = readings.demand, readings.queue, readings.p99, readings.known
    target_ms, current_batch, high_batch = readings.target_ms, readings.current_batch, readings.high_batch
    cap_high, cap_default = readings.cap_high, readings.cap_default
    need_load = math.ceil(demand / cap_high) if known and demand > 0 else 0
    need_latency = 0
    waiting = queue > max(1, current_batch) * model.workers
    if p99 is not None and p99 > target_ms and (waiting or not known):
        need_latency = len(serving) + 1
    need_forecast = 0
    forecast = view.forecast
    fresh = forecast is not None and now - forecast.generated_at <= settings.forecast_max_age_seconds
    if forecast is not None and fresh:
        cap_fc = cap_default if math.isfinite(cap_default) and cap_default > 0 else cap_high
        sized = forecast.sized_rps(str(spec.scaling.forecast_sizing))
        if known and sized > 0:
            need_forecast = math.ceil(sized / cap_fc)
        # what the forecast missed (demand above its p90 peak, whatever serving is sized for), kept
        # for the cold pool's size: load between the p90 mean and the peak is load the forecast
        # foresaw, and sized for the mean, the cold pool absorbed it as well without the extra pods
        # (on a cluster each cold pod holds its GPU request; docs/simulate.md)
        _push_max(memory.misses, now, max(0.0, demand - forecast.peak_rps))
    while memory.misses and memory.misses[0][0] < now - settings.miss_window_seconds:
        memory.misses.popleft()
    worst_miss = memory.misses[0][1] if memory.misses else 0.0
    # a miss is already a peak, and the pods absorbing it serve only while it lasts: full capacity
    absorb = math.ceil(worst_miss / model.raw_capacity(high_batch)) if known and worst_miss > 0 else 0
    # a standby pod is there to serve: none beyond what replicas.max lets serve could ever be
    unplaced = len(pods.by[PodKind.UNPLACED])
    standby = spec.standby.warm + spec.standby.cold
    room = spec.replicas.max - len(serving) - len(incoming) - len(blind) - unplaced - standby
    absorb = min(absorb, max(0, room))
    floor = max(spec.replicas.min, 1 if demand > 0 else 0)
    if max(need_load, need_forecast) > spec.replicas.max:
        notes.append(
            f"{max(need_load, need_forecast)} serving pods wanted; replicas.max={spec.replicas.max} caps it"
        )
    wanted_now = min(spec.replicas.max, max(need_load, need_latency, floor))
    desired = min(spec.replicas.max, max(wanted_now, need_forecast))
    # a pod waiting for a node with room still takes its replica's place: another would wait too
    have = len(serving) + len(incoming) + len(restartable) + len(blind) + unplaced
    return Wanted(
        need_load=need_load,
        need_latency=need_latency,
        need_forecast=need_forecast,
        forecast=forecast,
        worst_miss=worst_miss,
        absorb=absorb,
        wanted_now=wanted_now,
        desired=desired,
        have=have,
    )


def track(c: Cycle, wanted: Wanted) -> Trend:
    """Detect a surge (two samples in a row) and keep the stabilisation history for scale-down."""
    view, memory, settings, pods = c.view, c.memory, c.settings, c.pods
    spec, now = view.spec, view.now
    serving, incoming = pods.serving, pods.incoming
    need_load, need_latency = wanted.need_load, wanted.need_latency
    wanted_now, desired, have = wanted.wanted_now, wanted.desired, wanted.have

    # ---- surge detection (two samples in a row) ---------------------------------------------------
    overloaded = wanted_now > have
    if overloaded:
        memory.overloaded_cycles += 1
        if memory.overload_since is None:
            memory.overload_since = now
    else:
        memory.overloaded_cycles = 0
        memory.overload_since = None
    trigger_time = memory.overload_since
    surge = overloaded and memory.overloaded_cycles >= settings.confirm_samples
    trigger = ActionTrigger.LATENCY if need_latency > need_load else ActionTrigger.SURGE

    # ---- stabilisation history (for scale-down) --------------------------------------------------
    if memory.started is None:
        memory.started = now
        _push_max(memory.desired_history, now, len(serving) + len(incoming))
    _push_max(memory.desired_history, now, wanted_now)
    window = float(spec.scaling.scale_down_stabilization_seconds)
    while memory.desired_history and memory.desired_history[0][0] < now - window:
        memory.desired_history.popleft()
    # observed load is held for the window; the forecast only briefly (it looks a horizon ahead
    # already, but the capacity it is divided by is noisy from one sample to the next)
    _push_max(memory.forecast_history, now, min(spec.replicas.max, wanted.need_forecast))
    while memory.forecast_history and memory.forecast_history[0][0] < now - settings.forecast_hold_seconds:
        memory.forecast_history.popleft()
    down_to = max(memory.desired_history[0][1], memory.forecast_history[0][1], desired)
    return Trend(
        overloaded=overloaded,
        trigger_time=trigger_time,
        surge=surge,
        trigger=trigger,
        window=window,
        down_to=down_to,
    )
