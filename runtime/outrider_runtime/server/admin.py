"""The runtime's side of the planner's admin contract (:mod:`outrider_operator.api.runtime`).

Pure functions over a :class:`~outrider_runtime.model_handle.ModelHandle`, used by the HTTP handlers:
validating admin bodies with the contract's models, the ``/v2/admin/load`` snapshot and the
reasons ``/v2/health/settled`` gives for answering 503. Nothing here does heavy work: the
planner polls every pod twice a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from outrider_operator.api.runtime import BatchingSettings, BatchStat, RuntimeLoad
from outrider_runtime.config import DynamicMode, ModelState, describe_validation_error
from outrider_runtime.errors import BadRequestError
from outrider_runtime.model_handle import ModelHandle

__all__ = ["batching_settings", "parse_body", "runtime_load", "unsettled_reasons"]

M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], body: dict[str, Any], route: str) -> M:
    """Validate an admin body with ``model``; a bad one is a 400 naming each bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        message = describe_validation_error(exc, f"body of POST {route}")
        if any(err["type"] == "extra_forbidden" for err in exc.errors()):
            known = sorted(f.alias or name for name, f in model.model_fields.items())
            message += f" (known fields: {', '.join(known)})"
        raise BadRequestError(message) from exc


def batching_settings(m: ModelHandle) -> BatchingSettings:
    """The dynamic batching in effect for ``m``."""
    s = m.settings
    return BatchingSettings(
        model=m.name,
        max_batch_size=s.max_batch_size,
        min_batch_delay_ms=s.min_batch_delay_ms,
        lookahead_window=s.lookahead_window,
        dynamic=DynamicMode.ENABLED if s.dynamic else DynamicMode.DISABLED,
    )


def runtime_load(m: ModelHandle, *, boot_id: str, uptime_s: float, draining: bool) -> RuntimeLoad:
    """The ``GET /v2/admin/load`` snapshot of ``m``."""
    c = m.counters
    return RuntimeLoad(
        model=m.name,
        state=m.state,
        requested_state=m.requested_state,
        loading=m.loading,
        draining=draining,
        boot_id=boot_id,
        uptime_seconds=round(uptime_s, 3),
        received=c.received,
        completed=c.completed,
        failed=c.failed,
        rejected=c.rejected,
        rows_completed=c.rows_completed,
        inflight=c.inflight,
        queue_depth=m.queue_depth,
        queue_limit=m.config.server.max_queue_size,
        workers=m.batch_concurrency,
        latency=m.latencies.summary(),
        batching=batching_settings(m),
        batch_stats=[
            BatchStat(batch_size=size, count=acc.count, seconds=acc.ns / 1e9)
            for size, acc in sorted(m.stats.batches.items())
        ],
    )


def unsettled_reasons(models: Iterable[ModelHandle], draining: bool) -> list[str]:
    """Why the server is not settled (empty when it is): draining, a build running, a state not reached."""
    reasons = ["the server is draining"] if draining else []
    for m in models:
        if m.loading:
            reasons.append(f"model {m.name} is loading")
        if m.state != m.requested_state:
            reason = f"model {m.name} is {m.state.value}, {m.requested_state.value} was requested"
            if m.load_error and not m.loading and m.requested_state is not ModelState.COLD:
                reason += f" (the last load failed: {m.load_error})"
            reasons.append(reason)
    return reasons
