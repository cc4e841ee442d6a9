"""The serving side of the twin: a fleet of batched replicas as a fluid queue, second by second.

Each serving replica runs ``workers`` batches at once; a batch of ``b`` rows takes ``s(b)`` seconds
(the measured capacity profile, interpolated as the planner's capacity model does). Per one-second
tick with ``lam`` requests/s arriving, spread evenly over ``n`` serving replicas:

- **batches formed**: a worker seeing ``r`` requests/s runs batches of what arrived while the
  previous batch ran: the fixed point of ``b = r * s(b)``, between 1 and the batch limit;
- **throughput**: ``n * workers * b / s(b)`` at the batch limit (what a saturated fleet serves);
- **backlog**: arrivals beyond throughput queue (a fluid backlog shared by the replicas); beyond
  the runtime's queue limit per replica they are refused (HTTP 429 in the runtime);
- **p99 latency**: an idle worker's batcher waits up to ``delay`` for company; a request then waits
  for the batch already running (up to ``s(b)``, in proportion to how busy the worker is) and runs
  in its own batch (``s(b)``); plus the backlog's drain time. That is the *base*; on top of it comes
  the wait that arrivals' own randomness causes within the second (the fluid queue cannot see it):
  Kingman's heavy-traffic tail, ``P(wait > x) = rho * exp(-x * (1 - rho) * mu / v)`` with ``rho`` a
  replica's utilisation, ``mu`` its throughput and ``v = (ca2 + cs2) / 2`` the variability (Poisson
  arrivals, ``ca2 = 1``; service times ``cs2 = 0.3``, calibrated by ``make bench-twin``). A second's
  p99 is where that tail falls to 1%; a minute's p99 is where the arrival-weighted mixture of its
  seconds' tails does (:func:`outrider_scheduler.simulate.runner.minute_p99_ms`).

The model is checked against real runtime processes by ``make bench-twin`` (per-minute p99 of the
twin beside the measured one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from outrider_scheduler.planner.capacity import CapacityModel
from outrider_scheduler.planner.profile import CapacityProfile

__all__ = ["ServerModel", "TickResult", "second_p99"]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TickResult:
    """What one second of serving did."""

    served: float
    """Requests completed."""
    rejected: float
    """Requests refused (queue full, or no serving replica)."""
    backlog: float
    """Requests waiting at the end of the tick."""
    p99_s: float
    """p99 latency of the tick's requests (inf when none could be served)."""
    capacity_rps: float
    """What the serving replicas could complete per second at the batch limit."""
    batch: float
    """Mean rows per executed batch."""
    base_s: float = 0.0
    """p99 without the arrivals' randomness (batching, running batch, backlog drain)."""
    tail_share: float = 0.0
    """Share of requests that wait for the randomness of arrivals (a replica's utilisation)."""
    tail_rate: float = math.inf
    """Decay rate (1/s) of that wait's exponential tail."""


@dataclass
class ServerModel:
    """Service times of one replica and the runtime's limits."""

    profile: CapacityProfile
    workers: int = 1
    delay_s: float = 0.010
    """The batcher's ``minBatchDelayMs``, seconds."""
    queue_limit: int = 1024
    """Queued requests per replica before refusals (the runtime's ``server.maxQueueSize``)."""
    variability: float = 0.65
    """``(ca2 + cs2) / 2``: Poisson arrivals (1) and the measured service-time variability (0.3)."""

    def __post_init__(self) -> None:
        self._model = CapacityModel.from_profile(self.profile)
        self._cache: dict[int, float] = {}

    def service_s(self, batch: float) -> float:
        """Seconds one batch of ``batch`` rows takes (interpolated between whole batch sizes)."""
        lo = max(1, math.floor(batch))
        hi = lo + 1
        s_lo = self._s(lo)
        if batch <= lo:
            return s_lo
        return s_lo + (self._s(hi) - s_lo) * (batch - lo)

    def _s(self, b: int) -> float:
        got = self._cache.get(b)
        if got is None:
            got = self._cache[b] = self._model.service_seconds(b)
        return got

    def replica_rps(self, batch: int) -> float:
        """Requests/s one replica completes at full load with batches of ``batch`` rows."""
        return self.workers * batch / self.service_s(batch)

    def formed_batch(self, per_worker: float, batch: int) -> float:
        """Rows per batch a worker runs at ``per_worker`` requests/s: what arrives while the previous
        batch runs (the fixed point of ``b = rate * s(b)``), between 1 and ``batch``."""
        b = 1.0
        for _ in range(12):
            nxt = min(float(batch), max(1.0, per_worker * self.service_s(b)))
            if abs(nxt - b) < 0.01:
                break
            b = nxt
        return b

    def tail(self, per_replica: Array, batch: int) -> tuple[Array, Array]:
        """(share, rate) of the random-arrival wait at ``per_replica`` requests/s (vectorised)."""
        mu = self.replica_rps(batch)
        rho = np.clip(per_replica / mu, 0.0, 0.99)
        return rho, (1.0 - rho) * mu / self.variability

    def static_seconds(self, rates: Array, n: int, batch: int) -> tuple[Array, Array, Array]:
        """(base, tail share, tail rate) of every second of ``rates`` on a fixed fleet of ``n``:
        :meth:`tick` vectorised (:func:`second_p99` of them is each second's p99)."""
        share, rate = self.tail(rates / n, batch)
        return self._static_base(rates, n, batch), np.where(rates > 0, share, 0.0), rate

    def _static_base(self, rates: Array, n: int, batch: int) -> Array:
        """The base p99 (s) of every second of ``rates`` on a fixed fleet.

        With a fixed fleet the backlog is a reflected walk, ``B_t = S_t - min(0, min_{s<=t} S_s)``
        for the running sum ``S`` of arrivals minus throughput, so a whole trace takes milliseconds
        (the static-peak policy, and finding the trace scale it needs).
        """
        cap = n * self.replica_rps(batch)
        walk = np.cumsum(rates - cap)
        backlog = walk - np.minimum(0.0, np.minimum.accumulate(walk))
        backlog = np.minimum(backlog, self.queue_limit * n)
        per_worker = rates / n / self.workers
        sizes = np.arange(1, batch + 1, dtype=np.float64)
        table = np.array([self.service_s(b) for b in sizes])
        formed = np.ones_like(rates)
        for _ in range(12):
            formed = np.clip(per_worker * np.interp(formed, sizes, table), 1.0, float(batch))
        s_b = np.interp(formed, sizes, table)
        busy = np.minimum(1.0, per_worker * s_b / formed)
        p99 = self.delay_s * np.maximum(0.0, 1.0 - 2.0 * busy) + s_b * (1.0 + busy) + backlog / cap
        return np.where(rates > 0, p99, 0.0)

    def tick(self, lam: float, n: int, batch: int, backlog: float, dt: float = 1.0) -> TickResult:
        """Serve one tick of ``lam`` requests/s on ``n`` replicas with batch limit ``batch``."""
        arriving = lam * dt
        if n <= 0:
            never = math.inf if arriving > 0 else 0.0
            return TickResult(0.0, arriving + backlog, 0.0, never, 0.0, 1.0, never)
        per_worker = lam / n / self.workers
        formed = self.formed_batch(per_worker, batch)
        s_b = self.service_s(formed)
        busy = min(1.0, per_worker * s_b / formed)  # share of time a worker runs a batch
        mu = self.replica_rps(batch)
        cap = n * mu
        work = backlog + arriving
        served = min(work, cap * dt)
        left = work - served
        limit = self.queue_limit * n
        rejected = max(0.0, left - limit)
        left -= rejected
        # an idle worker waits up to the delay for company; a busy one starts the next batch at once.
        # A request waits for the batch running when it came (up to s_b) and then runs in its own.
        form_wait = self.delay_s * max(0.0, 1.0 - 2.0 * busy)
        drain = left / cap if cap > 0 else math.inf
        base = form_wait + s_b * (1.0 + busy) + drain if arriving > 0 else 0.0
        share = min(0.99, lam / n / mu) if arriving > 0 else 0.0
        rate = (1.0 - share) * mu / self.variability
        p99 = base + (math.log(share / 0.01) / rate if share > 0.01 else 0.0)
        return TickResult(served, rejected, left, p99, cap, formed, base, share, rate)


def second_p99(base: Array, share: Array, rate: Array) -> Array:
    """p99 (s) of each second: its base plus where its random-arrival wait's tail falls to 1%."""
    wait = np.where(share > 0.01, np.log(np.maximum(share, 0.01) / 0.01) / rate, 0.0)
    return base + wait
