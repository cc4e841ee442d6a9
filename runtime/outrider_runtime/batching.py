"""Dynamic batching with a bounded queue, a length-aware lookahead window and live resizing.

:class:`DynamicBatcher` collects requests (each one or more token rows) into batches of at most
``max_batch_size`` rows. After the oldest queued request arrives it waits up to
``min_batch_delay_ms`` for the batch to fill. To form a batch it always takes the oldest request
(so nothing starves) and then, among the next ``(lookahead_window + 1) * max_batch_size`` queued
requests, prefers those whose length is closest to it, which cuts padding in mixed-length traffic.

:meth:`DynamicBatcher.resize` swaps the settings object atomically; the loop reads it at every
batch, so a resize needs no reload and drops nothing: queued requests simply go into batches of the
new size. The queue is bounded (``max_queue_size`` requests): beyond it ``submit`` raises
:class:`~outrider_runtime.errors.OverloadedError` (HTTP 429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import numpy as np

from outrider_runtime.config import BatchingConfig, DynamicMode
from outrider_runtime.errors import NotServingError, OverloadedError

__all__ = ["BatchSettings", "DynamicBatcher", "Pending"]


@dataclass(frozen=True)
class BatchSettings:
    """Batching knobs (a frozen value; resizing swaps the whole object)."""

    max_batch_size: int = 16
    min_batch_delay_ms: float = 10.0
    lookahead_window: int = 3
    dynamic: bool = True

    @classmethod
    def from_config(cls, batching: BatchingConfig) -> BatchSettings:
        """The settings of a (validated) batching section of the runtime config."""
        return cls(
            max_batch_size=batching.max_batch_size,
            min_batch_delay_ms=batching.min_batch_delay_ms,
            lookahead_window=batching.lookahead_window,
            dynamic=batching.dynamic is DynamicMode.ENABLED,
        )

    @property
    def effective_max(self) -> int:
        """Largest batch formed: ``max_batch_size``, or 1 when dynamic batching is disabled."""
        return self.max_batch_size if self.dynamic else 1


@dataclass
class Pending:
    """A queued request: its token rows, masks, enqueue time and the future of its output rows."""

    rows: list[np.ndarray]
    masks: list[np.ndarray] | None
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def size(self) -> int:
        """Number of rows (sequences) in this request."""
        return len(self.rows)

    @property
    def length(self) -> int:
        """The longest row, in tokens."""
        return max(int(r.shape[0]) for r in self.rows)


BatchRunner = Callable[[list[Pending]], Awaitable[None]]
"""Runs one batch and resolves every ``Pending.future`` in it."""


class DynamicBatcher:
    """Forms batches from a bounded queue and hands them to a runner, one batch at a time."""

    def __init__(
        self, runner: BatchRunner, settings: BatchSettings, max_queue_size: int, concurrency: int = 1
    ) -> None:
        self._runner = runner
        self.settings = settings
        self.max_queue_size = max_queue_size
        self._queue: deque[Pending] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.in_flight = 0
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self.last_batch_rows = 0
        self.est_batch_seconds = 0.05

    @property
    def depth(self) -> int:
        """Requests waiting in the queue."""
        return len(self._queue)

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="outrider-batcher")

    def resize(self, **changes: object) -> BatchSettings:
        """Change batching settings live (e.g. ``max_batch_size=32``); returns the new settings."""
        self.settings = replace(self.settings, **changes)  # type: ignore[arg-type]
        self._wakeup.set()
        return self.settings

    def retry_after_s(self) -> float:
        """A rough time for the queue to drain by one batch, used for ``Retry-After``."""
        batches = self.depth / max(1, self.settings.effective_max)
        return max(1.0, round(batches * self.est_batch_seconds, 1))

    def submit(
        self, rows: list[np.ndarray], masks: list[np.ndarray] | None = None
    ) -> asyncio.Future[np.ndarray]:
        """Queue a request; the future resolves to its output rows."""
        if self._closing:
            raise NotServingError("the server is shutting down", retry_after_s=1.0)
        if len(self._queue) >= self.max_queue_size:
            raise OverloadedError(
                f"request queue is full ({self.max_queue_size} queued); retry later",
                retry_after_s=self.retry_after_s(),
            )
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(rows, masks, fut))
        self._wakeup.set()
        return fut

    def _take_batch(self) -> list[Pending]:
        s = self.settings
        limit = s.effective_max
        first = self._queue.popleft()
        batch = [first]
        rows = first.size
        if rows >= limit or not self._queue:
            return batch
        window = list(self._queue)[: (s.lookahead_window + 1) * limit]
        window.sort(key=lambda p: (abs(p.length - first.length), p.enqueued))
        chosen: list[Pending] = []
        for p in window:
            if rows + p.size > limit:
                continue
            chosen.append(p)
            rows += p.size
            if rows >= limit:
                break
        ids = {id(p) for p in chosen}
        self._queue = deque(p for p in self._queue if id(p) not in ids)
        batch.extend(chosen)
        return batch

    def _queued_rows(self) -> int:
        return sum(p.size for p in self._queue)

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            s = self.settings
            while self._queued_rows() < s.effective_max and not self._closing:
                # read the delay each pass: a live resize to a shorter delay releases a waiting batch
                deadline = self._queue[0].enqueued + s.min_batch_delay_ms / 1000.0
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
                s = self.settings
            await self._slots.acquire()
            if not self._queue:  # drained meanwhile (cannot happen today; keeps the loop honest)
                self._slots.release()
                continue
            batch = self._take_batch()
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[Pending]) -> None:
        rows = sum(p.size for p in batch)
        self.in_flight += rows
        self.last_batch_rows = rows
        started = time.perf_counter()
        try:
            await self._runner(batch)
        except Exception as exc:  # the runner failed as a whole: fail its requests, keep serving
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
        except asyncio.CancelledError:  # shutting down: answer the batch instead of leaving it hanging
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(NotServingError("the server is shutting down"))
            raise
        finally:
            self.in_flight -= rows
            self._slots.release()
            elapsed = time.perf_counter() - started
            self.est_batch_seconds = 0.8 * self.est_batch_seconds + 0.2 * elapsed

    async def drain(self) -> None:
        """Refuse new requests, finish every queued and in-flight one, then stop the loop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def cancel(self, reason: str = "model was unloaded") -> None:
        """Stop the loop now and fail what is still queued with 503 ``reason``."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            p = self._queue.popleft()
            if not p.future.done():
                p.future.set_exception(NotServingError(reason))
