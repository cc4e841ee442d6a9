"""The pool targets of :func:`~.core.decide`, and the GPUs held back for the replicas on their way.

The active pool keeps its pods less those released, plus the replicas the way up adds. Each
standby pool (rule 4 of :mod:`.core`) is the spec's size plus one pod per pod taken from it to
serve; the cold pool also holds enough pods to absorb the largest load above the forecast's p90
peak seen in the miss window (cold pods hold no GPU until they are loaded).
"""

from __future__ import annotations

from dataclasses import dataclass

from outrider_operator.api import labels
from outrider_operator.api.spec import ScalingMode
from outrider_operator.api.status import ActionKind, ActionTrigger

from .core_sizing import Cycle, Wanted
from .decisions import Action, OpKind
from .observe import DeploymentView, PodKind, PodView

__all__ = ["PoolTargets", "pool_targets", "reserve"]


@dataclass(frozen=True)
class PoolTargets:
    """The pool sizes to publish, and how many pods are expected beyond those there now."""

    active_target: int
    warm_target: int
    cold_target: int
    expected: int
    """New active replicas plus standby pods still to come."""


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
        if kind in (PodKind.UNREACHABLE, PodKind.UNPLACED):
            # unknown, or a refill still waiting for a node: neither refilled for nor counted (a
            # waiting refill counted as taken would ask for another, which would wait too)
            continue
        if p.name in promoting or p.demoted_at is not None or kind not in (plain[p.pool], PodKind.MOVING):
            out[p.pool] += 1
    return out


def pool_targets(c: Cycle, wanted: Wanted, active_pods: list[PodView], add_replicas: int) -> PoolTargets:
    """Size the pools; report a refill of the standby pools and a warm pool grown for misses."""
    view, memory, settings, pods, ops, actions = c.view, c.memory, c.settings, c.pods, c.ops, c.actions
    spec = view.spec
    kinds, serving = pods.kinds, pods.serving
    absorb, worst_miss = wanted.absorb, wanted.worst_miss
    released_now = {op.pod for op in ops if op.kind is OpKind.RELEASE}
    active_target = len([p for p in active_pods if p.name not in released_now]) + add_replicas
    active_target = max(spec.replicas.min, min(spec.replicas.max, active_target))
    taken = _taken(
        view.pods, kinds, released_now, {op.pod for op in ops if op.kind in (OpKind.PROMOTE, OpKind.LOAD)}
    )
    # each standby pool: the spec's size and one more per pod taken from it to serve; the cold pool
    # also holds enough pods to absorb the largest load the forecast missed in the last hour: they
    # hold no GPU until loaded (the operator caps the total)
    warm_target = spec.standby.warm + taken[labels.POOL_WARM]
    cold_target = spec.standby.cold + taken[labels.POOL_COLD] + absorb
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
                f"Cold pool grows to {cold_target}: demand went {worst_miss:.0f} req/s above the "
                f"forecast's p90 peak in the last {settings.miss_window_seconds / 60:.0f} min "
                f"({absorb} pods absorb that)",
                count=absorb - memory.absorb,
            )
        )
    memory.absorb = absorb
    expected = max(0, active_target - len(active_pods)) + max(0, refill)
    return PoolTargets(active_target, warm_target, cold_target, expected)


def reserve(view: DeploymentView, expected: int) -> tuple[tuple[str, int], ...]:
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
