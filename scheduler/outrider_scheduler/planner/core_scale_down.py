"""The way down of :func:`~.core.decide`: serving -> warm (after draining) -> cold -> released.

Rule 5 of :mod:`.core`: only to the highest count observed load wanted over the stabilization
window (or what the forecast wants, if higher), one pod at a time, only while every serving pod is
healthy and, for an active-pool pod, its PodDisruptionBudget allows it. A drained pod unloads at
once when the warm pool has the spec's pods, else after another window; a cold one is released
after another window. Promoted standby pods leave serving first.
"""

from __future__ import annotations

from outrider_operator.api import labels
from outrider_operator.api.status import ActionKind, ActionTrigger

from .core_sizing import Cycle, Readings, Trend
from .decisions import Action, OpKind, PodOp
from .observe import PodKind, PodView

__all__ = ["scale_down"]


def _order_victims(pods: list[PodView]) -> list[PodView]:
    """Promoted standby-pool pods leave serving first, then the newest active pods."""
    return sorted(pods, key=lambda p: (p.pool == labels.POOL_ACTIVE, -p.created, p.name))


def scale_down(c: Cycle, readings: Readings, trend: Trend, active_pods: list[PodView]) -> None:
    """Add the way down's operations, actions and notes (a scale-down held, and why)."""
    view, settings, pods, ops, actions, notes = c.view, c.settings, c.pods, c.ops, c.actions, c.notes
    spec, now = view.spec, view.now
    serving, incoming, restartable, by = pods.serving, pods.incoming, pods.restartable, pods.by
    demand, cap_high = readings.demand, readings.cap_high
    overloaded, window, down_to = trend.overloaded, trend.window, trend.down_to
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
        # a demoted pod stays warm (promotable at once, GPU held) only while the warm pool lacks the
        # spec's pods of its own (refills still starting); else it unloads once drained, like one
        # warm for a whole window: the warm pool is what a surge takes first
        pool_warm = len([p for p in by[PodKind.WARM] if p.demoted_at is None])
        full = pool_warm >= spec.standby.warm
        for p in by[PodKind.WARM]:
            if p.demoted_at is None:
                continue
            waited = now - p.demoted_at
            if full or waited >= window:
                why = (
                    f"warm for {waited:.0f} s"
                    if waited >= window
                    else f"drained; the warm pool has its {pool_warm}"
                )
                ops.append(PodOp(OpKind.UNLOAD, p.name))
                actions.append(
                    Action(
                        ActionKind.UNLOAD,
                        ActionTrigger.LOAD_DROP,
                        (p.name,),
                        len(serving),
                        len(serving),
                        f"Unloaded {p.name} ({why}, not needed)",
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
