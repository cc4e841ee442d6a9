"""A queue of InferenceDeployments to reconcile, each at most once, worked by a few threads.

Watch events of children, pods and status arrive in bursts (creating one deployment fires a
dozen); their kopf handlers only put the owner here and return, so kopf's event streams never
back up behind API calls. A key added while it waits is not added twice; a key added while a
worker reconciles it is reconciled once more afterwards (the last event is always followed by a
full pass). A pass that fails is retried after a delay that doubles per failure (the same way
client-go's rate-limited work queue backs off), up to a minute.

Keys added as ``urgent`` (a new object, a spec not yet reconciled, a planner decision: the surge
path) are taken before due keys that are not (a child's status changing, the resync timer), so a
burst of rollout progress or a resync of a thousand objects never delays a surge.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["WorkQueue"]

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name)."""


class WorkQueue:
    """Deduplicating delayed queue of keys with worker threads calling ``handle(namespace, name)``."""

    def __init__(
        self,
        handle: Callable[[str, str], object],
        *,
        workers: int = 4,
        retry_delay_s: float = 1.0,
        max_retry_delay_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handle = handle
        self.workers = workers
        self.retry_delay_s = retry_delay_s
        self.max_retry_delay_s = max_retry_delay_s
        self.clock = clock
        self._heap: list[tuple[float, int, Key]] = []
        self._urgent: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._is_urgent: set[Key] = set()
        self._running: set[Key] = set()
        self._again: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self.processed = 0
        """Passes run so far (tests and metrics)."""

    def add(self, namespace: str, name: str, delay_s: float = 0.0, *, urgent: bool = False) -> None:
        """Reconcile ``namespace/name`` after ``delay_s`` (sooner if it is already due sooner);
        ``urgent`` keys are taken before other due keys."""
        key = (namespace, name)
        due = self.clock() + delay_s
        with self._cond:
            if key in self._running:
                self._again[key] = min(due, self._again.get(key, due))
                if urgent:
                    self._is_urgent.add(key)
                return
            known = self._due.get(key)
            if known is not None and known <= due and (key in self._is_urgent or not urgent):
                return
            due = min(due, known) if known is not None else due
            self._due[key] = due
            if urgent:
                self._is_urgent.add(key)
            heapq.heappush(
                self._urgent if key in self._is_urgent else self._heap, (due, next(self._seq), key)
            )
            self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)

    def start(self) -> None:
        """Start the worker threads."""
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"reconcile-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the workers (after the passes they are running)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def _top(self, heap: list[tuple[float, int, Key]], urgent: bool) -> tuple[float, int, Key] | None:
        """The heap's first live entry (entries superseded by another due time are dropped)."""
        while heap:
            due, _, key = heap[0]
            if self._due.get(key) == due and (key in self._is_urgent) == urgent:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _next(self) -> Key | None:
        """Wait for the next due key, urgent ones first (None when stopped)."""
        with self._cond:
            while not self._stopped:
                now = self.clock()
                urgent, normal = self._top(self._urgent, True), self._top(self._heap, False)
                for entry, heap in ((urgent, self._urgent), (normal, self._heap)):
                    if entry is not None and entry[0] <= now:
                        heapq.heappop(heap)
                        key = entry[2]
                        del self._due[key]
                        self._is_urgent.discard(key)
                        self._running.add(key)
                        return key
                waits = [e[0] - now for e in (urgent, normal) if e is not None]
                self._cond.wait(min(waits) if waits else None)
            return None

    def _done(self, key: Key, failed: bool) -> None:
        with self._cond:
            self._running.discard(key)
            self.processed += 1
            retry: float | None = None
            if failed:
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                retry = min(self.max_retry_delay_s, self.retry_delay_s * 2 ** (n - 1))
            else:
                self._failures.pop(key, None)
            again = self._again.pop(key, None)
            urgent = key in self._is_urgent
            self._is_urgent.discard(key)
        if again is not None:
            self.add(*key, delay_s=max(0.0, again - self.clock()), urgent=urgent)
        elif retry is not None:
            self.add(*key, delay_s=retry)

    def _work(self) -> None:
        while (key := self._next()) is not None:
            failed = False
            try:
                self.handle(*key)
            except Exception as exc:  # a worker must survive anything one pass throws
                failed = True
                log.warning("reconcile of %s/%s failed (retrying with backoff): %s", key[0], key[1], exc)
            self._done(key, failed)
