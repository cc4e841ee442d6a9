"""Per-pod load signals from successive ``/v2/admin/load`` samples.

A :class:`PodSignals` keeps the last few samples of one pod (time, cumulative counters) and turns
them into rates over a short window (about a second at the planner's 0.5-s polling): requests
arriving, completing and refused per second. A new ``bootId`` means the process restarted: its
counters start again from zero, so the history is dropped instead of reading a negative rate.
Pure bookkeeping, no I/O: the poller feeds samples in with the time it took them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from outrider_operator.api.runtime import RuntimeLoad

__all__ = ["LoadRates", "PodSignals", "SignalBook"]


@dataclass(frozen=True)
class LoadRates:
    """Rates of one pod over the recent window, with the latest sample."""

    load: RuntimeLoad
    """The latest sample."""
    arrival_rps: float
    """Requests received per second (whatever their outcome)."""
    completion_rps: float
    """Requests answered successfully per second."""
    rejected_rps: float
    """Requests refused (429) per second."""
    rows_per_request: float | None
    """Rows per successful request over the window (None without completions)."""
    idle_seconds: float
    """Seconds since the received counter last moved (0 when requests arrive)."""
    window_seconds: float
    """How much time the rates cover (0 on the first sample)."""


@dataclass
class PodSignals:
    """Sample history of one pod."""

    window_seconds: float = 1.0
    boot_id: str = ""
    _samples: deque[tuple[float, RuntimeLoad]] = field(default_factory=lambda: deque(maxlen=32))
    _last_change: float = 0.0

    def add(self, t: float, load: RuntimeLoad) -> LoadRates:
        """Record a sample taken at monotonic time ``t`` and return the rates it gives."""
        if load.boot_id != self.boot_id:
            self._samples.clear()
            self.boot_id = load.boot_id
        prev = self._samples[-1][1] if self._samples else None
        if prev is None or load.received != prev.received:
            self._last_change = t  # conservative: a first sample never counts as idle
        self._samples.append((t, load))
        while len(self._samples) > 2 and t - self._samples[1][0] >= self.window_seconds:
            self._samples.popleft()
        t0, first = self._samples[0]
        span = t - t0
        done = load.completed - first.completed
        rows = load.rows_completed - first.rows_completed
        per_s = (lambda n: max(0, n) / span) if span > 0 else (lambda n: 0.0)
        return LoadRates(
            load=load,
            arrival_rps=per_s(load.received - first.received),
            completion_rps=per_s(done),
            rejected_rps=per_s(load.rejected - first.rejected),
            rows_per_request=rows / done if done > 0 else None,
            idle_seconds=t - self._last_change,
            window_seconds=span,
        )


@dataclass
class SignalBook:
    """The :class:`PodSignals` of every polled pod, by pod key (``namespace/name``)."""

    window_seconds: float = 1.0
    pods: dict[str, PodSignals] = field(default_factory=dict)

    def add(self, pod: str, t: float, load: RuntimeLoad) -> LoadRates:
        """Record one pod's sample."""
        signals = self.pods.get(pod)
        if signals is None:
            signals = self.pods[pod] = PodSignals(self.window_seconds)
        return signals.add(t, load)

    def retain(self, pods: set[str]) -> None:
        """Forget pods that are gone."""
        for gone in set(self.pods) - pods:
            del self.pods[gone]
