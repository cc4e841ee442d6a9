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
4. **The standby pools** are the spec's sizes plus one pod per pod taken from them to serve; the
   cold pool also holds enough pods to absorb the largest load above the forecast's p90 peak seen
   in the last hour (at a replica's full capacity: a miss already is the peak). Cold pods hold no
   GPU until loaded; the warm pool, which a surge takes first, stays the spec's size.
5. **Scale down** only to the highest count that *observed* load wanted over the last
   ``scaleDownStabilizationSeconds``, or to what the current forecast wants if that is higher
   (the forecast already looks a horizon ahead: holding it for another window counted its peak
   twice), and step by step: serving -> warm (after draining) -> cold -> released for deletion.
   A drained pod unloads at once when the warm pool has the spec's pods (else after another
   stabilization period), a cold one is released after another period; one pod at a time, only
   while every serving pod is healthy and, for an active-pool pod, its PodDisruptionBudget allows
   it. Promoted standby pods leave serving first.
6. A pod whose admin API does not answer is skipped and reported; another one is used instead.

The steps live in sibling modules, in the order :func:`decide` runs them: :mod:`.core_sizing`
(signals, the wanted count, surge detection, the stabilisation history), :mod:`.core_batching`,
:mod:`.core_scale_up`, :mod:`.core_scale_down` and :mod:`.core_pools`; the data types are in
:mod:`.decisions` (re-exported here).
"""

from __future__ import annotations

from outrider_operator.api import labels

from .capacity import CapacityModel
from .core_batching import size_batch
from .core_pools import pool_targets, reserve
from .core_scale_down import scale_down
from .core_scale_up import scale_up
from .core_sizing import Cycle, count_wanted, read_signals, sort_pods, track
from .decisions import CoreSettings, Memory, Numbers, OpKind, Plan, PodOp
from .observe import DeploymentView, PodKind

__all__ = ["decide"]


def decide(view: DeploymentView, model: CapacityModel, memory: Memory, settings: CoreSettings) -> Plan:
    """Decide one cycle for one deployment. Mutates only ``memory``."""
    pods = sort_pods(view)
    by, serving, incoming, restartable = pods.by, pods.serving, pods.incoming, pods.restartable
    c = Cycle(view, model, memory, settings, pods)
    ops, actions, notes = c.ops, c.actions, c.notes

    # ---- signals, how many serving pods are wanted, surge detection, stabilisation history --------
    readings = read_signals(c)
    wanted = count_wanted(c, readings)
    trend = track(c, wanted)

    # ---- pods restarted into the wrong place, and promotions to finish ----------------------------
    for p in restartable:
        ops.append(PodOp(OpKind.PROMOTE, p.name))
    for p in by[PodKind.MISMATCH]:
        if p not in restartable and p.rates and not p.rates.load.loading:
            ops.append(PodOp(OpKind.DEMOTE, p.name))  # cold or moving: not routable, take it out
    for p in by[PodKind.UNLABELLED]:
        ops.append(PodOp(OpKind.LABEL_SERVING, p.name))

    # ---- batch size, the way up, the way down, pool targets ---------------------------------------
    batch = size_batch(c, readings, trend)
    active_pods, add_replicas = scale_up(c, readings, wanted, trend)
    scale_down(c, readings, trend, active_pods)
    targets = pool_targets(c, wanted, active_pods, add_replicas)

    numbers = Numbers(
        demand_rps=readings.demand,
        capacity_rps=(
            readings.cap_high if batch == readings.high_batch else model.capacity(batch, readings.utilisation)
        ),
        p99_ms=readings.p99,
        queue_depth=readings.queue,
        serving=len(serving),
        incoming=len(incoming),
        warm=len(by[PodKind.WARM]),
        cold=len(by[PodKind.COLD]),
        promoted=len([p for p in serving if p.pool != labels.POOL_ACTIVE]),
        unreachable=len(by[PodKind.UNREACHABLE]),
        unplaced=len(by[PodKind.UNPLACED]),
        desired=wanted.desired,
        batch_size=batch,
        forecast_needed=wanted.need_forecast,
        surge_batch=readings.high_batch,
    )
    if by[PodKind.UNREACHABLE]:
        names = ", ".join(sorted(p.name for p in by[PodKind.UNREACHABLE])[:5])
        notes.append(
            f"{len(by[PodKind.UNREACHABLE])} pod(s) did not answer the admin API and were skipped: {names}"
        )
    if by[PodKind.UNPLACED]:
        names = ", ".join(sorted(p.name for p in by[PodKind.UNPLACED])[:5])
        notes.append(
            f"{len(by[PodKind.UNPLACED])} pod(s) wait for a node with room (unschedulable) and are not "
            f"counted as capacity on its way: {names}"
        )
    if not readings.known:
        notes.append(
            "capacity unknown (no profile and no batch statistics yet): acting on p99 and queue only"
        )
    return Plan(
        ops=tuple(ops),
        actions=tuple(actions),
        active_target=targets.active_target,
        warm_target=targets.warm_target,
        cold_target=targets.cold_target,
        numbers=numbers,
        trigger_time=trend.trigger_time,
        expected_extra=targets.expected,
        reservations=reserve(view, targets.expected),
        notes=tuple(notes),
    )
