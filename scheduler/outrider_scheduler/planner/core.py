"""The planner's pure decision core: one deployment's observations in, a :class:`Plan` out.

No I/O and no clock of its own: :func:`decide` reads a :class:`~.observe.DeploymentView`, the
deployment's :class:`~.capacity.CapacityModel` and its :class:`Memory` (what earlier cycles
decided), and returns pod operations, pool targets and the actions to report. The same code runs
in the live planner and can be driven by a trace-replay simulator.

Rules (``docs/planner.md`` explains them with figures):

1. **Demand** is the request rate arriving at the deployment's pods; **capacity** of one replica
   comes from the capacity model at the batch size in use. The wanted number of serving pods is
   the largest of: demand over capacity at the largest batch that keeps p99 under target; the
   forecast p90 peak over capacity at the spec's batch size (headroom stays for surprises); one
   more than now while p99 misses its target with a queue; ``replicas.min``. At most ``replicas.max``.
2. **Surge** (wanted > serving + on their way, for two samples in a row): raise the batch size on
   serving pods, promote warm pods (pods on their way down first, then the warm pool), start cold
   pods loading, and ask the active pool for the rest (new pods on spare GPUs). Standby pools are
   refilled by asking their Deployments for one more pod per pod taken from them.
3. **Ahead of the forecast**: a gap that only the forecast shows is closed with new pods (and pods
   on their way down), keeping the warm pool for what the forecast misses.
4. **The warm pool** is the spec's size, one more pod per pod taken from it to serve, and enough
   pods to absorb the largest load above the forecast's p90 peak seen in the last hour (at a
   replica's full capacity: a miss already is the peak, and promoted pods are there for it).
5. **Scale down** only to the highest count that *observed* load wanted over the last
   ``scaleDownStabilizationSeconds``, or to what the current forecast wants if that is higher (the
   forecast already looks a horizon ahead: holding it for another window counted its peak twice),
   and step by step: serving -> warm (after draining) -> cold -> released for deletion, each step
   after another stabilization period; one pod at a time, only while every serving pod is healthy
   and, for an active-pool pod, its PodDisruptionBudget allows it. Promoted standby pods leave
   serving first.
6. A pod whose admin API does not answer is skipped and reported; another one is used instead.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from outrider_operator.api import labels
from outrider_operator.api.runtime import ModelState
from outrider_operator.api.spec import DynamicBatching, ScalingMode
from outrider_operator.api.status import ActionKind, ActionTrigger

from .capacity import CapacityModel
from .observe import DeploymentView, PodKind, PodView, classify

__all__ = [
    "Action",
    "CoreSettings",
    "Memory",
    "Numbers",
    "OpKind",
    "Plan",
    "PodOp",
    "decide",
]


class OpKind(StrEnum):
    """One operation on one pod (what the actuator executes)."""

    PROMOTE = "promote"
    """Runtime to serving, then label serving (the model is loaded: instant)."""
    LOAD = "load"
    """Runtime to serving from cold (a load); the label follows once it serves."""
    LABEL_SERVING = "label-serving"
    """Finish a promotion: the runtime serves, the label follows."""
    DEMOTE = "demote"
    """Label standby and note ``demoted-at`` (traffic stops; the runtime drains)."""
    SETTLE_WARM = "settle-warm"
    """Runtime to warm (after draining, or a restarted pod back to its place)."""
    UNLOAD = "unload"
    """Runtime to cold (the next step down), ``demoted-at`` renewed."""
    RELEASE = "release"
    """Negative pod-deletion-cost: the ReplicaSet deletes this pod first when its pool shrinks."""
    RESIZE = "resize"
    """Set the runtime's max batch size."""


@dataclass(frozen=True)
class PodOp:
    """One operation for the actuator."""

    kind: OpKind
    pod: str
    batch_size: int | None = None


@dataclass(frozen=True)
class Action:
    """A reported decision: one Event, one lastScalingAction, one metric increment."""

    kind: ActionKind
    trigger: ActionTrigger
    pods: tuple[str, ...]
    from_serving: int
    to_serving: int
    message: str
    adds_capacity: bool = False
    """Whether readiness of the new capacity is measured (promote, load, add replicas)."""
    count: int = 0
    """How many pods (or replicas) the action concerns."""


@dataclass(frozen=True)
class Numbers:
    """What the decision was based on (published in status.plan and metrics)."""

    demand_rps: float = 0.0
    capacity_rps: float = math.nan
    """One replica's capacity at the chosen batch size (nan when unknown)."""
    p99_ms: float | None = None
    queue_depth: int = 0
    serving: int = 0
    incoming: int = 0
    warm: int = 0
    cold: int = 0
    promoted: int = 0
    unreachable: int = 0
    desired: int = 0
    batch_size: int = 1
    forecast_needed: int = 0
    surge_batch: int = 1
    """The batch size a surge would raise serving pods to (the largest within the p99 target)."""


@dataclass(frozen=True)
class Plan:
    """The outcome of one decision."""

    ops: tuple[PodOp, ...]
    actions: tuple[Action, ...]
    active_target: int
    warm_target: int
    cold_target: int
    numbers: Numbers
    trigger_time: float | None = None
    """When the overload behind these actions was first seen (unix seconds)."""
    expected_extra: int = 0
    reservations: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()
    """Things the user should know (unreachable pods, PDB holding a scale-down, ...)."""


@dataclass(frozen=True)
class CoreSettings:
    """Knobs of the decision rules."""

    confirm_samples: int = 2
    """Consecutive overloaded cycles before the surge path acts."""
    batch_growth: int = 4
    """The batch size may grow to this multiple of the spec's maxBatchSize (at most 4096)."""
    batch_step: float = 1.25
    """Once raised, a batch size is raised again only to at least this multiple (no 14 -> 15 churn)."""
    lower_batch_below: float = 0.6
    """Back to the spec's batch size when demand is below this share of capacity at that size."""
    calm_seconds: float = 10.0
    """How long load must stay low before the batch size goes back down."""
    drain_idle_seconds: float = 1.0
    """A demoted pod is switched to warm once no request arrived for this long."""
    drain_timeout_seconds: float = 30.0
    """... or at the latest after this long."""
    forecast_max_age_seconds: float = 120.0
    """An older forecast is not acted on."""
    min_latency_samples: int = 10
    """Requests in a pod's latency window before its p99 counts."""
    miss_window_seconds: float = 3600.0
    """The warm pool absorbs the largest load the forecast missed over this window."""


@dataclass
class Memory:
    """What the planner remembers about one deployment between cycles (rebuilt after a restart)."""

    desired_history: deque[tuple[float, int]] = field(default_factory=deque)
    """(time, serving pods the observed load wanted), decreasing: its first entry is the largest of
    the window."""
    overloaded_cycles: int = 0
    overload_since: float | None = None
    calm_since: float | None = None
    batch_target: int | None = None
    absorb: int = 0
    """Warm pods added to absorb forecast misses (reported when it grows)."""
    misses: deque[tuple[float, float]] = field(default_factory=deque)
    """(time, requests/s above the forecast's p90 peak) over ``miss_window_seconds``, decreasing: its
    first entry is the largest miss of the window."""
    started: float | None = None
    """First cycle: the history is seeded with the pods serving then, so a restart never scales down
    before a full stabilisation window has passed."""


_DONE = (PodKind.GONE,)
_N = TypeVar("_N", int, float)


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


def _order_promotable(pods: list[PodView]) -> list[PodView]:
    """Pods on their way down first (cancelling is cheapest), then the pool meant for it, newest last."""
    rank = {labels.POOL_WARM: 1, labels.POOL_COLD: 1, labels.POOL_ACTIVE: 2}
    return sorted(pods, key=lambda p: (p.demoted_at is None, rank.get(p.pool, 3), p.created, p.name))


def _order_victims(pods: list[PodView]) -> list[PodView]:
    """Promoted standby-pool pods leave serving first, then the newest active pods."""
    return sorted(pods, key=lambda p: (p.pool == labels.POOL_ACTIVE, -p.created, p.name))


def decide(view: DeploymentView, model: CapacityModel, memory: Memory, settings: CoreSettings) -> Plan:
    """Decide one cycle for one deployment. Mutates only ``memory``."""
    spec, now = view.spec, view.now
    kinds: dict[str, PodKind] = {p.name: classify(p) for p in view.pods}
    by: dict[PodKind, list[PodView]] = {k: [] for k in PodKind}
    for p in view.pods:
        by[kinds[p.name]].append(p)
    notes: list[str] = []
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
    ops: list[PodOp] = []
    actions: list[Action] = []

    # ---- signals ---------------------------------------------------------------------------------
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
    cap_high = model.capacity(high_batch)
    cap_default = model.capacity(default_batch)
    known = model.known and math.isfinite(cap_high) and cap_high > 0
    if serving and p99 is not None:
        model.observe_latency(
            p99, demand / len(serving), current_batch, delay_ms, target_ms, queue / len(serving)
        )

    # ---- how many serving pods are wanted ---------------------------------------------------------
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
        if known and forecast.peak_rps > 0:
            need_forecast = math.ceil(forecast.peak_rps / cap_fc)
        # what the forecast missed (demand above its p90 peak), kept for the warm pool's size
        _push_max(memory.misses, now, max(0.0, demand - forecast.peak_rps))
    while memory.misses and memory.misses[0][0] < now - settings.miss_window_seconds:
        memory.misses.popleft()
    worst_miss = memory.misses[0][1] if memory.misses else 0.0
    # a miss is already a peak, and the pods absorbing it serve only while it lasts: full capacity
    absorb = math.ceil(worst_miss / model.raw_capacity(high_batch)) if known and worst_miss > 0 else 0
    # a warm pod is there to be promoted: none beyond what replicas.max lets serve could ever be
    room = spec.replicas.max - len(serving) - len(incoming) - len(blind) - spec.standby.warm
    absorb = min(absorb, max(0, room))
    floor = max(spec.replicas.min, 1 if demand > 0 else 0)
    if max(need_load, need_forecast) > spec.replicas.max:
        notes.append(
            f"{max(need_load, need_forecast)} serving pods wanted; replicas.max={spec.replicas.max} caps it"
        )
    wanted_now = min(spec.replicas.max, max(need_load, need_latency, floor))
    desired = min(spec.replicas.max, max(wanted_now, need_forecast))
    have = len(serving) + len(incoming) + len(restartable) + len(blind)

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
    # observed load is held for the window; the forecast is not (it looks a horizon ahead already)
    down_to = max(memory.desired_history[0][1], desired)

    # ---- pods restarted into the wrong place, and promotions to finish ----------------------------
    for p in restartable:
        ops.append(PodOp(OpKind.PROMOTE, p.name))
    for p in by[PodKind.MISMATCH]:
        if p not in restartable and p.rates and not p.rates.load.loading:
            ops.append(PodOp(OpKind.DEMOTE, p.name))  # cold or moving: not routable, take it out
    for p in by[PodKind.UNLABELLED]:
        ops.append(PodOp(OpKind.LABEL_SERVING, p.name))

    # ---- batch size -------------------------------------------------------------------------------
    if dynamic and known:
        serving_cap_default = len(serving) * cap_default if math.isfinite(cap_default) else 0.0
        # the fastest lever, and the only one left when replicas.max caps the pool: demand above
        # what the serving pods do at the spec's batch size raises it, pods coming or not
        raised = memory.batch_target > default_batch  # raised once already: raise again only by a step
        step = (
            max(memory.batch_target + 1, math.ceil(memory.batch_target * settings.batch_step))
            if raised
            else 0
        )
        if demand > serving_cap_default and memory.batch_target < high_batch and high_batch >= step:
            memory_before, memory.batch_target = memory.batch_target, high_batch
            memory.calm_since = None
            actions.append(
                Action(
                    ActionKind.RESIZE_BATCH,
                    trigger,
                    tuple(p.name for p in serving),
                    len(serving),
                    len(serving),
                    f"Resized batches {memory_before} -> {high_batch} on {len(serving)} pods: "
                    f"demand {demand:.1f} req/s over {serving_cap_default:.1f} at batch {default_batch}; "
                    f"p99 predicted {model.p99_ms(high_batch, delay_ms):.0f} ms of {target_ms:.0f}",
                    count=len(serving),
                )
            )
        elif memory.batch_target > default_batch:
            calm = demand < settings.lower_batch_below * serving_cap_default
            if calm and memory.calm_since is None:
                memory.calm_since = now
            elif not calm:
                memory.calm_since = None
            if calm and memory.calm_since is not None and now - memory.calm_since >= settings.calm_seconds:
                actions.append(
                    Action(
                        ActionKind.RESIZE_BATCH,
                        ActionTrigger.LOAD_DROP,
                        tuple(p.name for p in serving),
                        len(serving),
                        len(serving),
                        f"Resized batches {memory.batch_target} -> {default_batch}: demand {demand:.1f} "
                        f"req/s below {settings.lower_batch_below:.0%} of {serving_cap_default:.1f}",
                        count=len(serving),
                    )
                )
                memory.batch_target = default_batch
                memory.calm_since = None
    batch = memory.batch_target if dynamic else default_batch
    for p in serving + by[PodKind.UNLABELLED]:
        if p.rates and p.rates.load.batching.max_batch_size != batch and dynamic:
            ops.append(PodOp(OpKind.RESIZE, p.name, batch))

    # ---- the way up -------------------------------------------------------------------------------
    active_pods = [p for p in view.pods if p.pool == labels.POOL_ACTIVE and not p.deleting and not p.released]
    add_replicas = 0
    gap = desired - have
    forecast_only = gap > 0 and not surge
    if gap > 0 and (surge or (forecast_only and need_forecast > wanted_now)):
        from_serving = len(serving)
        reason = trigger if surge else ActionTrigger.FORECAST
        warm = _order_promotable(by[PodKind.WARM])
        if forecast_only:
            warm = [p for p in warm if p.demoted_at is not None]  # keep fresh standby for surprises
        take = warm[:gap]
        for p in take:
            ops.append(PodOp(OpKind.PROMOTE, p.name, memory.batch_target if dynamic else None))
        gap -= len(take)
        if take:
            why = _why(trigger if surge else ActionTrigger.FORECAST, demand, cap_high, p99, queue, forecast)
            actions.append(
                Action(
                    ActionKind.PROMOTE_WARM,
                    trigger if surge else ActionTrigger.FORECAST,
                    tuple(p.name for p in take),
                    from_serving,
                    from_serving + len(take),
                    f"Promoted {len(take)} warm pod{'s' if len(take) > 1 else ''}: {why}",
                    adds_capacity=True,
                    count=len(take),
                )
            )
        cold = _order_promotable(by[PodKind.COLD])
        if forecast_only:
            cold = [p for p in cold if p.demoted_at is not None]
        load = cold[:gap] if gap > 0 else []
        for p in load:
            ops.append(PodOp(OpKind.LOAD, p.name))
        gap -= len(load)
        if load:
            actions.append(
                Action(
                    ActionKind.LOAD_COLD,
                    trigger if surge else ActionTrigger.FORECAST,
                    tuple(p.name for p in load),
                    from_serving,
                    from_serving + len(take) + len(load),
                    f"Loading {len(load)} cold pod{'s' if len(load) > 1 else ''}: "
                    f"{_why(trigger, demand, cap_high, p99, queue, forecast)}",
                    adds_capacity=True,
                    count=len(load),
                )
            )
        room = spec.replicas.max - len(active_pods)
        add_replicas = max(0, min(gap, room))
        asked_before = view.recommended_active if view.recommended_active is not None else len(active_pods)
        if len(active_pods) + add_replicas > asked_before:  # report an increase once, not every cycle
            actions.append(
                Action(
                    ActionKind.ADD_REPLICAS,
                    trigger if surge else ActionTrigger.FORECAST,
                    (),
                    from_serving,
                    from_serving + add_replicas,
                    f"Adding {add_replicas} replica{'s' if add_replicas > 1 else ''} on spare GPUs: "
                    + _why(reason, demand, cap_high, p99, queue, forecast),
                    adds_capacity=True,
                    count=add_replicas,
                )
            )

    # ---- the way down -----------------------------------------------------------------------------
    if not overloaded and not incoming and not restartable:
        excess = len(serving) - max(down_to, spec.replicas.min)
        if excess > 0:
            # one pod at a time, and only while every serving pod is healthy; an active-pool pod also
            # needs its PodDisruptionBudget (maxUnavailable 1 over the active pool) to allow it
            healthy = all(p.ready and p.endpoint_ready for p in serving)
            candidates = [
                p
                for p in _order_victims(serving)
                if p.pool != labels.POOL_ACTIVE
                or view.disruptions_allowed is None
                or view.disruptions_allowed > 0
            ]
            step = min(excess, 1) if healthy and candidates else 0
            if step <= 0:
                why = (
                    "a serving pod is not ready"
                    if not healthy
                    else "the PodDisruptionBudget allows no disruption"
                )
                notes.append(f"scale-down held: {why}")
            else:
                victims = candidates[:step]
                for p in victims:
                    ops.append(PodOp(OpKind.DEMOTE, p.name))
                actions.append(
                    Action(
                        ActionKind.DEMOTE,
                        ActionTrigger.LOAD_DROP,
                        tuple(p.name for p in victims),
                        len(serving),
                        len(serving) - len(victims),
                        f"Demoted {len(victims)} pod{'s' if len(victims) > 1 else ''} to warm: wanted "
                        f"{down_to} serving over the last {window:.0f} s (demand {demand:.1f} req/s, "
                        f"capacity {cap_high:.1f} per pod)",
                        count=len(victims),
                    )
                )
    for p in by[PodKind.DRAINING]:
        load_now = p.rates.load if p.rates else None
        idle = (
            p.rates is not None
            and p.rates.idle_seconds >= settings.drain_idle_seconds
            and load_now is not None
            and load_now.inflight == 0
            and load_now.queue_depth == 0
        )
        overdue = p.demoted_at is not None and now - p.demoted_at >= settings.drain_timeout_seconds
        if idle or overdue:
            ops.append(PodOp(OpKind.SETTLE_WARM, p.name))
    if not overloaded:
        for p in by[PodKind.WARM]:
            if p.demoted_at is not None and now - p.demoted_at >= window:
                ops.append(PodOp(OpKind.UNLOAD, p.name))
                actions.append(
                    Action(
                        ActionKind.UNLOAD,
                        ActionTrigger.LOAD_DROP,
                        (p.name,),
                        len(serving),
                        len(serving),
                        f"Unloaded {p.name} (warm for {now - p.demoted_at:.0f} s, not needed)",
                        count=1,
                    )
                )
        for p in by[PodKind.COLD]:
            if p.demoted_at is not None and now - p.demoted_at >= window:
                pool_pods = [q for q in view.pods if q.pool == p.pool and not q.deleting]
                shrinkable = p.pool != labels.POOL_ACTIVE or len(active_pods) > spec.replicas.min
                if shrinkable and all(q.ready for q in pool_pods):  # else the RS deletes an unready one
                    ops.append(PodOp(OpKind.RELEASE, p.name))
                    actions.append(
                        Action(
                            ActionKind.REMOVE_REPLICAS,
                            ActionTrigger.LOAD_DROP,
                            (p.name,),
                            len(serving),
                            len(serving),
                            f"Releasing {p.name} (cold for {now - p.demoted_at:.0f} s, not needed)",
                            count=1,
                        )
                    )

    # ---- pool targets -----------------------------------------------------------------------------
    released_now = {op.pod for op in ops if op.kind is OpKind.RELEASE}
    active_target = len([p for p in active_pods if p.name not in released_now]) + add_replicas
    active_target = max(spec.replicas.min, min(spec.replicas.max, active_target))
    taken = _taken(
        view.pods, kinds, released_now, {op.pod for op in ops if op.kind in (OpKind.PROMOTE, OpKind.LOAD)}
    )
    # the warm pool: the spec's size, one more per pod taken from it to serve, and enough pods to
    # absorb the largest load the forecast missed in the last hour (the operator caps the total)
    warm_target = spec.standby.warm + taken[labels.POOL_WARM] + absorb
    cold_target = spec.standby.cold + taken[labels.POOL_COLD]
    refill = (warm_target - _count(view.pods, labels.POOL_WARM)) + (
        cold_target - _count(view.pods, labels.POOL_COLD)
    )
    if refill > 0 and any(a.adds_capacity for a in actions):
        extra = f", plus {absorb} for the {worst_miss:.0f} req/s the forecast missed" if absorb else ""
        actions.append(
            Action(
                ActionKind.REFILL_STANDBY,
                actions[0].trigger,
                (),
                len(serving),
                len(serving),
                f"Refilling standby pools to warm={warm_target} cold={cold_target} "
                f"(spec {spec.standby.warm}/{spec.standby.cold} plus pods taken to serve{extra})",
                count=refill,
            )
        )

    if absorb > memory.absorb:
        actions.append(
            Action(
                ActionKind.REFILL_STANDBY,
                ActionTrigger.FORECAST,
                (),
                len(serving),
                len(serving),
                f"Warm pool grows to {warm_target}: demand went {worst_miss:.0f} req/s above the "
                f"forecast's p90 peak in the last {settings.miss_window_seconds / 60:.0f} min "
                f"({absorb} pods absorb that)",
                count=absorb - memory.absorb,
            )
        )
    memory.absorb = absorb
    expected = max(0, active_target - len(active_pods)) + max(0, refill)
    numbers = Numbers(
        demand_rps=demand,
        capacity_rps=cap_high if batch == high_batch else model.capacity(batch),
        p99_ms=p99,
        queue_depth=queue,
        serving=len(serving),
        incoming=len(incoming),
        warm=len(by[PodKind.WARM]),
        cold=len(by[PodKind.COLD]),
        promoted=len([p for p in serving if p.pool != labels.POOL_ACTIVE]),
        unreachable=len(by[PodKind.UNREACHABLE]),
        desired=desired,
        batch_size=batch,
        forecast_needed=need_forecast,
        surge_batch=high_batch,
    )
    if by[PodKind.UNREACHABLE]:
        names = ", ".join(sorted(p.name for p in by[PodKind.UNREACHABLE])[:5])
        notes.append(
            f"{len(by[PodKind.UNREACHABLE])} pod(s) did not answer the admin API and were skipped: {names}"
        )
    if not known:
        notes.append(
            "capacity unknown (no profile and no batch statistics yet): acting on p99 and queue only"
        )
    return Plan(
        ops=tuple(ops),
        actions=tuple(actions),
        active_target=active_target,
        warm_target=warm_target,
        cold_target=cold_target,
        numbers=numbers,
        trigger_time=trigger_time,
        expected_extra=expected,
        reservations=_reserve(view, expected),
        notes=tuple(notes),
    )


def _count(pods: tuple[PodView, ...], pool: str) -> int:
    return len([p for p in pods if p.pool == pool and not p.deleting and not p.released])


def _taken(
    pods: tuple[PodView, ...], kinds: dict[str, PodKind], released: set[str], promoting: set[str]
) -> dict[str, int]:
    """Standby-pool pods that are not plain standby now: serving, on their way, or on their way down."""
    out = {labels.POOL_WARM: 0, labels.POOL_COLD: 0}
    plain = {labels.POOL_WARM: PodKind.WARM, labels.POOL_COLD: PodKind.COLD}
    for p in pods:
        if p.pool not in out or p.deleting or p.released or p.name in released:
            continue
        kind = kinds[p.name]
        if kind is PodKind.UNREACHABLE:
            continue  # unknown: neither refilled for nor counted
        if p.name in promoting or p.demoted_at is not None or kind not in (plain[p.pool], PodKind.MOVING):
            out[p.pool] += 1
    return out


def _why(
    trigger: ActionTrigger,
    demand: float,
    capacity: float,
    p99: float | None,
    queue: int,
    forecast: object,
) -> str:
    parts = []
    if trigger is ActionTrigger.FORECAST and forecast is not None:
        parts.append(f"forecast p90 peak {getattr(forecast, 'peak_rps', 0.0):.1f} req/s")
    parts.append(f"demand {demand:.1f} req/s")
    if math.isfinite(capacity):
        parts.append(f"capacity {capacity:.1f} per pod")
    if p99 is not None:
        parts.append(f"p99 {p99:.0f} ms")
    parts.append(f"queue {queue}")
    return ", ".join(parts)


def _reserve(view: DeploymentView, expected: int) -> tuple[tuple[str, int], ...]:
    """GPUs to hold back for the next ``expected`` replicas: cached nodes first, then the emptiest."""
    per = view.spec.runtime.gpus_per_replica
    if expected <= 0 or per <= 0 or str(view.spec.scaling.mode) != ScalingMode.PREDICTIVE.value:
        return ()
    rooms = sorted(view.rooms, key=lambda r: (not r.cached, -r.free_gpus, r.node))
    out: dict[str, int] = {}
    left = expected
    for room in rooms:
        fits = room.free_gpus // per
        while fits > 0 and left > 0:
            out[room.node] = out.get(room.node, 0) + per
            fits -= 1
            left -= 1
        if left == 0:
            break
    return tuple(sorted(out.items()))
