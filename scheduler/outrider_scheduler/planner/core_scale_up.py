"""The way up of :func:`~.core.decide`: warm pods promoted, cold pods loaded, replicas added.

A surge (rule 2 of :mod:`.core`) closes the gap between the serving pods wanted and those serving
or on their way with warm pods (pods on their way down first), then cold pods, then new replicas
of the active pool on spare GPUs. A gap that only the forecast shows (rule 3) is closed with new
pods and pods on their way down, keeping the fresh standby pods for what the forecast misses.
"""

from __future__ import annotations

import math

from outrider_operator.api import labels
from outrider_operator.api.status import ActionKind, ActionTrigger

from .core_sizing import Cycle, Readings, Trend, Wanted
from .decisions import Action, OpKind, PodOp
from .observe import ForecastView, PodKind, PodView

__all__ = ["scale_up"]


def _order_promotable(pods: list[PodView]) -> list[PodView]:
    """Pods on their way down first (cancelling is cheapest), then the pool meant for it, newest last."""
    rank = {labels.POOL_WARM: 1, labels.POOL_COLD: 1, labels.POOL_ACTIVE: 2}
    return sorted(pods, key=lambda p: (p.demoted_at is None, rank.get(p.pool, 3), p.created, p.name))


def _why(
    trigger: ActionTrigger,
    demand: float,
    capacity: float,
    p99: float | None,
    queue: int,
    forecast: ForecastView | None,
    sizing: str,
) -> str:
    parts = []
    if trigger is ActionTrigger.FORECAST and forecast is not None:
        parts.append(f"{forecast.sized_label(sizing)} {forecast.sized_rps(sizing):.1f} req/s")
    parts.append(f"demand {demand:.1f} req/s")
    if math.isfinite(capacity):
        parts.append(f"capacity {capacity:.1f} per pod")
    if p99 is not None:
        parts.append(f"p99 {p99:.0f} ms")
    parts.append(f"queue {queue}")
    return ", ".join(parts)


def scale_up(c: Cycle, readings: Readings, wanted: Wanted, trend: Trend) -> tuple[list[PodView], int]:
    """Add the way up's operations and actions; return the active pool's pods and replicas to add."""
    view, memory, pods, ops, actions = c.view, c.memory, c.pods, c.ops, c.actions
    spec = view.spec
    serving, by = pods.serving, pods.by
    demand, cap_high, p99, queue = readings.demand, readings.cap_high, readings.p99, readings.queue
    dynamic = readings.dynamic
    desired, have, need_forecast = wanted.desired, wanted.have, wanted.need_forecast
    wanted_now, forecast = wanted.wanted_now, wanted.forecast
    surge, trigger = trend.surge, trend.trigger
    sizing = str(spec.scaling.forecast_sizing)
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
            why = _why(reason, demand, cap_high, p99, queue, forecast, sizing)
            actions.append(
                Action(
                    ActionKind.PROMOTE_WARM,
                    reason,
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
                    reason,
                    tuple(p.name for p in load),
                    from_serving,
                    from_serving + len(take) + len(load),
                    f"Loading {len(load)} cold pod{'s' if len(load) > 1 else ''}: "
                    f"{_why(trigger, demand, cap_high, p99, queue, forecast, sizing)}",
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
                    reason,
                    (),
                    from_serving,
                    from_serving + add_replicas,
                    f"Adding {add_replicas} replica{'s' if add_replicas > 1 else ''} on spare GPUs: "
                    + _why(reason, demand, cap_high, p99, queue, forecast, sizing),
                    adds_capacity=True,
                    count=add_replicas,
                )
            )
    return active_pods, add_replicas
