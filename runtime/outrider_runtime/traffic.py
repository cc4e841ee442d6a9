"""A model's live traffic: cumulative request counters and the latency of recent requests.

``GET /v2/admin/load`` reads both, every 0.5 s per pod, so both are cheap: recording a request
is O(1), and memory is bounded under any load (:class:`RecentLatencies` keeps at most
``max_samples`` entries; past that the oldest go first, so the window then covers only the most
recent ``max_samples`` requests and its count stops at that figure).

Bookkeeping (done by ``ModelService.run_inference``): a request is ``received`` when it arrives
and ``inflight`` until it ends as ``completed`` or ``failed``, so at any moment
``received == completed + failed + inflight``. ``rejected`` counts the failures that were 429s.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from outrider_operator.api.runtime import LatencyWindow

__all__ = ["MAX_LATENCY_SAMPLES", "RecentLatencies", "RequestCounters"]

MAX_LATENCY_SAMPLES = 65_536
"""Most latencies a :class:`RecentLatencies` keeps (about 1.5 MiB of floats)."""


@dataclass
class RequestCounters:
    """Inference requests of one model since the process started (all cumulative but ``inflight``)."""

    received: int = 0
    """Requests that reached inference (HTTP and gRPC), whatever their outcome."""
    completed: int = 0
    """Requests answered successfully."""
    failed: int = 0
    """Requests that failed, for any reason (rejections included)."""
    rejected: int = 0
    """Requests refused with 429 because the queue was full."""
    rows_completed: int = 0
    """Rows (sequences) in the successful requests."""
    inflight: int = 0
    """Requests being handled now."""


class RecentLatencies:
    """End-to-end latencies of the requests completed in the last ``window_s`` seconds.

    ``clock`` is a monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        window_s: float,
        max_samples: int = MAX_LATENCY_SAMPLES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s <= 0 or max_samples < 1:
            raise ValueError(f"window_s must be > 0 and max_samples >= 1, got {window_s}, {max_samples}")
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque(maxlen=max_samples)
        self._seconds: deque[float] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        """Samples held now (expired ones included until the next prune)."""
        return len(self._times)

    def _prune(self, now: float) -> None:
        cutoff = now - self.window_s
        times, seconds = self._times, self._seconds
        while times and times[0] <= cutoff:
            times.popleft()
            seconds.popleft()

    def add(self, seconds: float) -> None:
        """Record one completed request that took ``seconds``."""
        now = self._clock()
        self._prune(now)
        self._times.append(now)
        self._seconds.append(seconds)

    def summary(self) -> LatencyWindow:
        """Count, median and 99th percentile (ms) of the window; percentiles None when it is empty."""
        self._prune(self._clock())
        n = len(self._seconds)
        if not n:
            return LatencyWindow(window_seconds=self.window_s, count=0)
        p50, p99 = np.percentile(np.fromiter(self._seconds, dtype=np.float64, count=n), (50, 99)) * 1000
        return LatencyWindow(
            window_seconds=self.window_s, count=n, p50_ms=round(float(p50), 3), p99_ms=round(float(p99), 3)
        )
