"""A served model: its lifecycle (cold, warm, serving), precision variants, batchers and statistics.

* **cold**: files on local disk, nothing built (``load`` takes it further);
* **warm**: sessions built, calibrated and warmed up with real inferences, not taking traffic;
* **serving**: taking traffic. Only this state makes ``/v2/health/ready`` answer 200.

Besides its state a model remembers the state last asked for (``requested_state``: the config's
``startState``, then every admin state call, repository load or unload, recorded before the work
starts) and whether a build is running (``loading``); ``/v2/health/settled`` compares the three.
Transitions run one at a time, in the order they were asked for.

Loading (cutting into shards, converting precisions, building sessions, calibrating adaptive
precision, warming up) runs in a worker thread so health checks stay responsive meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np

from outrider_runtime.batching import BatchSettings, DynamicBatcher, Pending
from outrider_runtime.config import ModelState, PrecisionPolicy, RuntimeConfig
from outrider_runtime.errors import BadRequestError, NotServingError, StateError
from outrider_runtime.load_override import LoadOverride
from outrider_runtime.metrics import RuntimeMetrics
from outrider_runtime.model_sessions import BuiltModel, build_model
from outrider_runtime.pipeline import Pipeline, length_buckets, pad_rows
from outrider_runtime.precision import AdaptivePolicy
from outrider_runtime.statistics import Stats
from outrider_runtime.tokenizer import Tokenizer
from outrider_runtime.traffic import RecentLatencies, RequestCounters

__all__ = ["ModelHandle"]

log = logging.getLogger(__name__)


class ModelHandle:
    """One model of the runtime with its state machine, pipelines and batchers."""

    def __init__(self, config: RuntimeConfig, metrics: RuntimeMetrics) -> None:
        self.config = config
        self.name = config.model.name
        self.metrics = metrics
        self.state = ModelState.COLD
        self.requested_state: ModelState = config.server.start_state
        """The state last asked for (start state, admin state call, repository load or unload)."""
        self.loading = False
        """Whether a build (sessions, calibration, warm-up) is running."""
        self.load_error: str | None = None
        """Why the last build failed (None once one succeeds)."""
        self.settings = BatchSettings.from_config(config.batching)
        self.precision = config.precision.policy
        self.pipelines: dict[PrecisionPolicy, Pipeline] = {}
        self.batchers: dict[PrecisionPolicy, DynamicBatcher] = {}
        self.policy: AdaptivePolicy | None = None
        self.agreement: dict[str, float] = {}
        self.hidden = 0
        self.max_len = 256
        self.vocab_size: int | None = None
        self.tokenizer: Tokenizer | None = None
        self.stats = Stats()
        self.counters = RequestCounters()
        self.latencies = RecentLatencies(config.server.latency_window_s)
        self.load_seconds = 0.0
        self._lock = asyncio.Lock()
        metrics.set_state(self.name, self.state)
        metrics.max_batch.labels(self.name).set(self.settings.max_batch_size)

    # ------------------------------------------------------------------ lifecycle
    @property
    def accepts_text(self) -> bool:
        """Whether the model has a tokenizer (BYTES ``text`` input accepted)."""
        return self.tokenizer is not None

    def _install(self, built: BuiltModel) -> dict[PrecisionPolicy, Pipeline]:
        """Swap a finished build in (on the event loop, between requests); returns the old sessions,
        which the caller closes once nothing runs on them any more."""
        old = self.pipelines
        self.max_len, self.tokenizer = built.max_len, built.tokenizer
        self.hidden, self.vocab_size = built.hidden, built.vocab_size
        self.pipelines, self.precision = built.pipelines, built.precision
        self.agreement, self.policy = built.agreement, built.policy
        self.load_seconds = built.load_seconds
        for name, value in built.agreement.items():
            if name != "fp32":
                self.metrics.agreement.labels(self.name, name).set(value)
        return old

    def _set_state(self, state: ModelState) -> None:
        self.state = state
        self.metrics.set_state(self.name, state)
        log.info("model %s is now %s", self.name, state.value)

    async def load(
        self, target: ModelState = ModelState.SERVING, override: LoadOverride | None = None
    ) -> None:
        """Build (or rebuild) the model and move it to ``target`` (warm or serving)."""
        if target is ModelState.COLD:
            await self.unload()
            return
        self.requested_state = target
        async with self._lock:
            await self._load(target, override)

    async def _load(self, target: ModelState, override: LoadOverride | None) -> None:
        """:meth:`load` under the lock."""
        if override is not None:
            changes: dict[str, Any] = {}
            if override.max_batch_size is not None:
                changes["max_batch_size"] = override.max_batch_size
            if override.min_batch_delay_ms is not None:
                changes["min_batch_delay_ms"] = override.min_batch_delay_ms
            if changes:
                self.resize(**changes)
        precision = override.precision if override and override.precision else self.precision
        if not self.pipelines or not self.batchers or precision is not self.precision:
            # Build first, while the current sessions keep serving (readiness stays true). Only
            # a finished build is swapped in: a failed one leaves the model as it was.
            self.loading = True
            try:
                try:
                    built = await asyncio.to_thread(build_model, self.config, precision)
                except Exception as exc:
                    self.load_error = f"{type(exc).__name__}: {exc}"
                    if not self.batchers and self.pipelines:
                        self._start_batchers()  # sessions without batchers (stopped earlier) serve again
                    raise
                self.load_error = None
                # new requests go to batchers on the new sessions at once; the old batchers finish
                # what they hold on the old sessions, which close after: nothing is refused
                old_batchers, self.batchers = self.batchers, {}
                old_pipelines = self._install(built)
                self.metrics.load_seconds.labels(self.name).set(self.load_seconds)
                self._start_batchers()
                for b in old_batchers.values():
                    await b.drain()
                for pipe in old_pipelines.values():
                    pipe.close()
            finally:
                self.loading = False
        self._set_state(target)

    @property
    def batch_concurrency(self) -> int:
        """Batches of one variant executing at once: ``server.batchConcurrency``, 1 when sharded."""
        return self.config.server.batch_concurrency if not self.config.shards else 1

    @property
    def queue_depth(self) -> int:
        """Requests queued over all of the model's batchers."""
        return sum(b.depth for b in self.batchers.values())

    def _start_batchers(self) -> None:
        for p in self.pipelines:
            b = DynamicBatcher(
                self._runner(p, self.pipelines[p]),
                self.settings,
                self.config.server.max_queue_size,
                concurrency=self.batch_concurrency,
            )
            b.start()
            self.batchers[p] = b

    async def _stop_batchers(self, drain: bool) -> None:
        for b in list(self.batchers.values()):
            await (b.drain() if drain else b.cancel())
        self.batchers.clear()

    async def unload(self) -> None:
        """Drop sessions and go back to cold (queued requests are finished first)."""
        self.requested_state = ModelState.COLD
        async with self._lock:
            await self._unload()

    async def _unload(self) -> None:
        """:meth:`unload` under the lock."""
        await self._stop_batchers(drain=True)
        for pipe in self.pipelines.values():
            pipe.close()
        self.pipelines = {}
        self._set_state(ModelState.COLD)

    async def set_state(self, state: ModelState) -> None:
        """Admin transition: warm <-> serving directly, cold via unload, warm/serving from cold via load.

        It waits for a transition already running (a load, say) and then starts from where that
        one left the model, so the last state asked for is the one the model ends in.
        """
        self.requested_state = state
        async with self._lock:
            if state is self.state:
                return
            if state is ModelState.COLD:
                await self._unload()
            elif self.state is ModelState.COLD:
                await self._load(state, None)
            else:
                if not self.pipelines:
                    raise StateError(f"model {self.name} has no sessions; cannot become {state.value}")
                self._set_state(state)

    def resize(self, **changes: Any) -> BatchSettings:
        """Change batching live on every batcher: no reload, nothing dropped."""
        from dataclasses import replace

        self.settings = replace(self.settings, **changes)
        for b in self.batchers.values():
            b.resize(**changes)
        self.metrics.max_batch.labels(self.name).set(self.settings.max_batch_size)
        return self.settings

    async def drain(self) -> None:
        """Finish queued and in-flight requests and refuse new ones (SIGTERM)."""
        await self._stop_batchers(drain=True)

    async def abort_queued(self, reason: str) -> None:
        """Fail every queued request with 503 ``reason`` (the drain ran out of time)."""
        for b in list(self.batchers.values()):
            await b.cancel(reason)
        self.batchers.clear()

    # ------------------------------------------------------------------ inference
    def _runner(self, precision: PrecisionPolicy, pipe: Pipeline) -> Any:
        """The batch executor of one batcher, bound to the sessions it was started with."""

        async def run(batch: list[Pending]) -> None:
            start = time.perf_counter()
            rows: list[np.ndarray] = []
            masks: list[np.ndarray] | None = [] if any(p.masks is not None for p in batch) else None
            for p in batch:
                self.metrics.latency.labels(self.name, "queue").observe(start - p.enqueued)
                self.stats.queue.add(start - p.enqueued)
                rows.extend(p.rows)
                if masks is not None:
                    masks.extend(p.masks if p.masks is not None else [np.ones_like(r) for r in p.rows])
            self.metrics.batch_size.labels(self.name, precision.value).observe(len(rows))
            current = self.batchers.get(precision)
            if current is not None:
                self.metrics.queue_depth.labels(self.name, precision.value).set(current.depth)
            parts: list[tuple[list[int], np.ndarray]] = []
            for bucket in length_buckets([int(r.shape[0]) for r in rows]):
                sub_masks = [masks[i] for i in bucket] if masks is not None else None
                parts.append((bucket, await pipe.run_async(pad_rows([rows[i] for i in bucket], sub_masks))))
            out = np.empty((len(rows), *parts[0][1].shape[1:]), dtype=parts[0][1].dtype)
            for bucket, part in parts:
                out[bucket] = part
            elapsed = time.perf_counter() - start
            self.metrics.latency.labels(self.name, "compute").observe(elapsed)
            self.stats.compute.add(elapsed, len(batch))
            self.stats.execution_count += 1
            self.stats.batches[len(rows)].add(elapsed)
            i = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(out[i : i + p.size])
                i += p.size

        return run

    def choose_precision(self, rows: list[np.ndarray], masks: list[np.ndarray] | None) -> PrecisionPolicy:
        """The precision variant a request runs at (adaptive: by its longest row's token count)."""
        if self.precision is not PrecisionPolicy.ADAPTIVE:
            return self.precision
        assert self.policy is not None
        length = max(int(m.sum()) for m in masks) if masks is not None else max(int(r.shape[0]) for r in rows)
        return self.policy.choose(length)

    def tokenize(self, texts: list[str]) -> list[np.ndarray]:
        """Tokenize texts server-side (BYTES input)."""
        if self.tokenizer is None:
            raise BadRequestError(f"model {self.name} has no tokenizer; send input_ids instead of text")
        return self.tokenizer.encode(texts)

    async def infer(self, rows: list[np.ndarray], masks: list[np.ndarray] | None) -> tuple[np.ndarray, str]:
        """Queue token rows for batched execution; returns their embeddings and the precision used."""
        if self.state is not ModelState.SERVING:
            raise NotServingError(f"model {self.name} is {self.state.value}, not serving")
        if len(rows) > self.settings.max_batch_size:
            raise BadRequestError(
                f"the request holds {len(rows)} rows; this model's maxBatchSize is "
                f"{self.settings.max_batch_size} (split the request)"
            )
        for r in rows:
            if r.shape[0] == 0:
                raise BadRequestError("a sequence has zero tokens")
            if r.shape[0] > self.max_len:
                raise BadRequestError(
                    f"a sequence has {r.shape[0]} tokens; this model takes at most {self.max_len}"
                )
        precision = self.choose_precision(rows, masks)
        batcher = self.batchers.get(precision)
        if batcher is None:
            raise NotServingError(f"model {self.name} is reloading")
        fut = batcher.submit(rows, masks)
        self.metrics.queue_depth.labels(self.name, precision.value).set(batcher.depth)
        self.metrics.precision_chosen.labels(self.name, precision.value).inc(len(rows))
        out = await fut
        return out, precision.value

    def queue_retry_after(self) -> float:
        """Retry-After for an overloaded response."""
        return max((b.retry_after_s() for b in self.batchers.values()), default=1.0)
