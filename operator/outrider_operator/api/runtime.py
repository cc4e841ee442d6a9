"""The runtime's admin contract: what the planner sends to and reads from each serving pod.

Three endpoints of the per-node runtime (``outrider runtime serve``) carry it, one typed model
each, used at both ends (the runtime validates with these models, the planner builds and parses
them with the same ones):

===========================  =======================  ====================================================
``GET  /v2/admin/load``      :class:`RuntimeLoad`     live load: counters, queue, recent latency, batching
``POST /v2/admin/state``     :class:`StateChange`     move the model between cold, warm and serving
``POST /v2/admin/batching``  :class:`BatchingUpdate`  resize dynamic batching live (answered with
                                                      :class:`BatchingSettings`)
===========================  =======================  ====================================================

Counters in :class:`RuntimeLoad` are cumulative since the process started; ``bootId`` changes
when it restarts, so a reader that sees a new ``bootId`` starts its rates afresh instead of
reading a counter reset as negative load.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from outrider_operator.api.base import ApiModel
from outrider_operator.api.execution import (
    MAX_BATCH_DELAY_MS,
    MAX_BATCH_SIZE,
    MAX_LOOKAHEAD_WINDOW,
    DynamicBatching,
)

__all__ = [
    "BatchStat",
    "BatchingSettings",
    "BatchingUpdate",
    "LatencyWindow",
    "ModelState",
    "RuntimeLoad",
    "StateChange",
]


class ModelState(StrEnum):
    """Lifecycle of a model in a runtime: files on disk, sessions warmed, taking traffic."""

    COLD = "cold"
    WARM = "warm"
    SERVING = "serving"


class StateChange(ApiModel):
    """Body of ``POST /v2/admin/state``."""

    state: ModelState = Field(description="The state to move the model to: cold, warm or serving.")
    model: str | None = Field(
        default=None, max_length=128, description="Model name; the runtime's only model when omitted."
    )


class BatchingUpdate(ApiModel):
    """Body of ``POST /v2/admin/batching``: the fields to change; omitted ones stay as they are."""

    model: str | None = Field(
        default=None, max_length=128, description="Model name; the runtime's only model when omitted."
    )
    # strict: a JSON true, "32" or 3.0 is refused instead of being read as 1, 32 or 3
    max_batch_size: int | None = Field(
        default=None, strict=True, ge=1, le=MAX_BATCH_SIZE, description="Largest batch the batcher forms."
    )
    min_batch_delay_ms: float | None = Field(
        default=None,
        strict=True,
        allow_inf_nan=False,
        ge=0,
        le=MAX_BATCH_DELAY_MS,
        description="How long the batcher waits for a batch to fill, ms.",
    )
    lookahead_window: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=MAX_LOOKAHEAD_WINDOW,
        description="Queued batches scanned to group requests by length.",
    )
    dynamic: DynamicBatching | None = Field(default=None, description="Enabled or Disabled (batch 1).")


class BatchingSettings(ApiModel):
    """Dynamic batching as it is in effect (the answer of ``POST /v2/admin/batching``)."""

    model: str = Field(description="Model name.")
    max_batch_size: int = Field(ge=1, le=MAX_BATCH_SIZE, description="Largest batch the batcher forms.")
    min_batch_delay_ms: float = Field(ge=0, description="How long the batcher waits for a batch to fill, ms.")
    lookahead_window: int = Field(ge=0, description="Queued batches scanned to group requests by length.")
    dynamic: DynamicBatching = Field(description="Enabled or Disabled.")


class LatencyWindow(ApiModel):
    """End-to-end latency of the requests completed in the last ``windowSeconds``."""

    window_seconds: float = Field(gt=0, description="Length of the window.")
    count: int = Field(ge=0, description="Requests completed in the window.")
    p50_ms: float | None = Field(default=None, ge=0, description="Median latency (None without requests).")
    p99_ms: float | None = Field(default=None, ge=0, description="99th percentile latency.")


class BatchStat(ApiModel):
    """Executed batches of one size since start: how many and their summed compute time."""

    batch_size: int = Field(ge=1, description="Rows in the batch.")
    count: int = Field(ge=0, description="Batches of this size executed.")
    seconds: float = Field(ge=0, description="Summed compute time of those batches.")


class RuntimeLoad(ApiModel):
    """Answer of ``GET /v2/admin/load``: one model's live load, cheap enough to poll every 0.5 s."""

    model: str = Field(description="Model name.")
    state: ModelState = Field(description="cold, warm or serving.")
    requested_state: ModelState = Field(
        description="The state last asked for (the pool's start state, or the latest admin call)."
    )
    loading: bool = Field(default=False, description="A build is running (the model is on its way).")
    draining: bool = Field(default=False, description="The server is shutting down.")
    boot_id: str = Field(min_length=1, description="Changes whenever the process restarts.")
    uptime_seconds: float = Field(ge=0, description="Seconds since the process started.")
    received: int = Field(ge=0, description="Inference requests received (every outcome).")
    completed: int = Field(ge=0, description="Requests answered successfully.")
    failed: int = Field(ge=0, description="Requests that failed (any error, rejections included).")
    rejected: int = Field(ge=0, description="Requests refused because the queue was full (429).")
    rows_completed: int = Field(ge=0, description="Rows (sequences) in the successful requests.")
    inflight: int = Field(ge=0, description="Requests being handled now.")
    queue_depth: int = Field(ge=0, description="Requests waiting for a batch.")
    queue_limit: int = Field(ge=1, description="Queued requests beyond which new ones are refused.")
    workers: int = Field(ge=1, description="Batches that execute at once (batch concurrency).")
    latency: LatencyWindow = Field(description="Latency over the recent window.")
    batching: BatchingSettings = Field(description="Dynamic batching in effect.")
    batch_stats: list[BatchStat] = Field(
        default_factory=list, description="Executed batches by size since start (for capacity models)."
    )
