"""The batch size: the fastest lever of :func:`~.core.decide`, and the only one left at ``replicas.max``.

With dynamic batching and a known capacity, demand above what the serving pods do at the spec's
batch size raises it to the largest batch size within the p99 target (rule 2 of :mod:`.core`);
once load stays low for ``calm_seconds`` it goes back to the spec's size.
"""

from __future__ import annotations

import math

from outrider_operator.api.status import ActionKind, ActionTrigger

from .core_sizing import Cycle, Readings, Trend
from .decisions import Action, OpKind, PodOp
from .observe import PodKind

__all__ = ["size_batch"]


def size_batch(c: Cycle, readings: Readings, trend: Trend) -> int:
    """Raise or lower the batch size; add the resize operations and actions; return the size."""
    view, model, memory, settings, pods, ops, actions = (
        c.view,
        c.model,
        c.memory,
        c.settings,
        c.pods,
        c.ops,
        c.actions,
    )
    now = view.now
    serving, by = pods.serving, pods.by
    demand, dynamic, known = readings.demand, readings.dynamic, readings.known
    default_batch, high_batch = readings.default_batch, readings.high_batch
    cap_default, delay_ms, target_ms = readings.cap_default, readings.delay_ms, readings.target_ms
    trigger = trend.trigger
    assert memory.batch_target is not None  # set by read_signals
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
    return batch
