"""The autoscaling policies Outrider is compared with, each modelled on its own documentation.

Every policy sees what it would see in a cluster — request rates of the serving pods, through its
own metric pipeline and windows — and changes the pod count of a plain Deployment (new pods serve
after the measured ``new_pod_s``). ``docs/simulate.md`` cites the source of each rule.

- ``static-peak``: the peak replica count all the time.
- ``oracle``: knows the future arrivals and the exact capacity; provisions ``new_pod_s`` ahead for the
  highest rate of the coming minute; no standby. The lower bound on GPU-hours.
- ``hpa``: Kubernetes HPA v2 on per-pod requests/s (a Pods metric with an AverageValue target at 70%
  of capacity, read as a 1-minute rate as a Prometheus adapter serves it): every 15 s
  ``ceil(ready * metric / target)``, no change within 10% of the target, not-yet-ready pods counted
  as idle when scaling up, at most max(+4 pods, +100%) per 15 s up, and down only to the highest
  recommendation of the last 300 s.
- ``kpa``: Knative's autoscaler on requests/s: every 2 s, desired = observed / (target * 70%) over a
  60-s stable window, or the larger of the stable and 6-s panic windows while in panic (entered
  when the panic window asks for 200% of the ready pods; never down in panic; it ends 60 s after
  the last trigger); at most 1000x up and 2x down per tick, relative to the ready pods.
- ``dynamo``: a Dynamo-style throughput planner: every 180 s (its default adjustment interval),
  predict the next interval's load with an ARIMA(2,1,0) on the last 50 intervals (Dynamo's default
  predictor is auto-ARIMA on the same window), replicas = ceil(predicted / per-replica throughput),
  the throughput derated by a correction factor of observed over expected latency (which, as
  Dynamo's decode correction, only ever adds replicas); it scales at once in both directions.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .fleet import SERVING, Fleet

__all__ = [
    "DynamoPolicy",
    "HpaPolicy",
    "KpaPolicy",
    "Observation",
    "OraclePolicy",
    "Policy",
    "StaticPolicy",
]

Array = npt.NDArray[np.float64]


@dataclass
class Observation:
    """What a policy may look at when it runs (second ``now``)."""

    now: int
    rates: Array
    """Arrivals per second of the whole trace (policies may read only ``rates[:now]``; the oracle more)."""
    fleet: Fleet
    last_p99_s: float
    """p99 latency of the last second, seconds."""
    expected_p99_s: float
    """What the profile predicts for that load and fleet (for correction factors)."""
    backlog: float = 0.0
    """Requests queued over the whole fleet at the end of the last second."""


class Policy(Protocol):
    """A scaling policy: called every ``interval_s`` seconds; changes the fleet."""

    name: str
    interval_s: int

    def start(self, fleet: Fleet, initial: int = 1) -> None:
        """Create the initial pods (``initial``: what the first minute needs)."""
        ...

    def act(self, obs: Observation) -> None:
        """Decide at ``obs.now`` and change ``obs.fleet``."""
        ...


def _mean(rates: Array, start: int, end: int) -> float:
    start = max(0, start)
    return float(rates[start:end].mean()) if end > start else 0.0


@dataclass
class StaticPolicy:
    """The peak count, always."""

    replicas: int
    name: str = "static-peak"
    interval_s: int = 3600

    def start(self, fleet: Fleet, initial: int = 1) -> None:
        """Start the peak count serving."""
        fleet.add_serving(self.replicas)

    def act(self, obs: Observation) -> None:
        """Nothing to decide."""


@dataclass
class OraclePolicy:
    """Knows the future: enough pods, started ``new_pod_s`` ahead, for the coming minute's peak."""

    capacity_rps: float
    """Requests/s one replica serves within the SLO (exact, from the model)."""
    lead_s: int
    name: str = "oracle"
    interval_s: int = 1
    max_replicas: int = 1000
    actions: int = 0

    def start(self, fleet: Fleet, initial: int = 1) -> None:
        """The pods the first minute needs (every policy starts from the same fleet)."""
        fleet.add_serving(max(1, initial))

    def act(self, obs: Observation) -> None:
        """Size for the highest rate between now and a minute after new pods would be ready."""
        end = min(len(obs.rates), obs.now + self.lead_s + 60)
        peak = float(obs.rates[obs.now : end].max()) if end > obs.now else 0.0
        need = min(self.max_replicas, max(1, math.ceil(peak / self.capacity_rps)))
        if need != len([p for p in obs.fleet.pods if p.target == SERVING]):
            obs.fleet.scale_serving_to(need, obs.now)
            self.actions += 1


@dataclass
class HpaPolicy:
    """Kubernetes HPA v2, per-pod requests/s (see the module docstring)."""

    target_rps: float
    """Per-pod requests/s target (70% of a replica's capacity)."""
    name: str = "hpa"
    interval_s: int = 15
    tolerance: float = 0.1
    metric_window_s: int = 60
    down_window_s: int = 300
    max_replicas: int = 1000
    actions: int = 0
    _recs: deque[tuple[int, int]] = field(default_factory=deque)

    def start(self, fleet: Fleet, initial: int = 1) -> None:
        """The pods the first minute needs (every policy starts from the same fleet)."""
        fleet.add_serving(max(1, initial))

    def act(self, obs: Observation) -> None:
        """One HPA sync (Pods metric, AverageValue target, default behavior)."""
        fleet = obs.fleet
        ready = len(fleet.serving())
        unready = len([p for p in fleet.pods if p.state == "to_serving"])
        current = ready + unready
        if ready == 0 or obs.now < self.metric_window_s:
            return  # no metric yet: the HPA leaves the count alone
        total = _mean(obs.rates, obs.now - self.metric_window_s, obs.now)
        ratio = total / ready / self.target_rps
        desired = current
        if ratio > 1.0 + self.tolerance and unready:
            # unready pods count as using nothing when scaling up; keep the count if that flips it
            again = total / current / self.target_rps
            if again > 1.0 + self.tolerance:
                desired = math.ceil(again * current)
        elif abs(ratio - 1.0) > self.tolerance:
            desired = math.ceil(ratio * ready)
        desired = max(1, min(self.max_replicas, desired))
        self._recs.append((obs.now, desired))
        while self._recs and self._recs[0][0] <= obs.now - self.down_window_s:
            self._recs.popleft()
        if desired > current:  # scale-up policies: +4 pods or +100% per 15 s, whichever is more
            desired = min(desired, max(current + 4, 2 * current))
        else:  # scale-down stabilisation: the highest recommendation of the window
            desired = min(current, max(r for _, r in self._recs))
        if desired != current:
            fleet.scale_serving_to(desired, obs.now)
            self.actions += 1


@dataclass
class KpaPolicy:
    """Knative's Pod Autoscaler on requests/s (see the module docstring)."""

    target_rps: float
    """Per-pod requests/s target before the 70% utilisation factor."""
    name: str = "kpa"
    interval_s: int = 2
    utilisation: float = 0.7
    stable_s: int = 60
    panic_s: int = 6
    panic_threshold: float = 2.0
    max_up_rate: float = 1000.0
    max_down_rate: float = 2.0
    max_replicas: int = 1000
    actions: int = 0
    _panic_since: int | None = None
    _panic_pods: int = 0

    def start(self, fleet: Fleet, initial: int = 1) -> None:
        """The pods the first minute needs (every policy starts from the same fleet)."""
        fleet.add_serving(max(1, initial))

    def act(self, obs: Observation) -> None:
        """One autoscaler tick (``pkg/autoscaler/scaling/autoscaler.go``'s ``Scale``)."""
        fleet = obs.fleet
        ready = max(1, len(fleet.serving()))
        current = len([p for p in fleet.pods if p.target == SERVING])
        if obs.now < self.panic_s:
            return  # no window of data yet
        per_pod = self.target_rps * self.utilisation
        max_up = math.ceil(self.max_up_rate * ready)
        max_down = math.floor(ready / self.max_down_rate)
        stable_raw = math.ceil(_mean(obs.rates, obs.now - self.stable_s, obs.now) / per_pod)
        panic_raw = math.ceil(_mean(obs.rates, obs.now - self.panic_s, obs.now) / per_pod)
        stable = min(max_up, max(max_down, stable_raw))
        panic = min(max_up, max(max_down, panic_raw))
        if panic_raw / ready >= self.panic_threshold:
            self._panic_since = obs.now
        elif self._panic_since is not None and obs.now - self._panic_since > self.stable_s:
            self._panic_since = None
            self._panic_pods = 0
        if self._panic_since is not None:  # never down while panicking
            self._panic_pods = max(self._panic_pods, stable, panic)
            desired = self._panic_pods
        else:
            desired = stable
        desired = max(1, min(self.max_replicas, desired))
        if desired != current:
            fleet.scale_serving_to(desired, obs.now)
            self.actions += 1


def _arima_210(history: list[float]) -> float:
    """One step ahead of an ARIMA(2,1,0) fitted by least squares (the last value with < 5 points)."""
    if len(history) < 5:
        return history[-1] if history else 0.0
    y = np.asarray(history, dtype=np.float64)
    d = np.diff(y)
    x = np.column_stack([d[1:-1], d[:-2]]) if len(d) > 3 else None
    if x is None:
        return float(y[-1])
    coef, *_ = np.linalg.lstsq(x, d[2:], rcond=None)
    step = float(coef[0] * d[-1] + coef[1] * d[-2])
    return max(0.0, float(y[-1]) + step)


@dataclass
class DynamoPolicy:
    """A Dynamo-style throughput planner (see the module docstring)."""

    capacity_rps: float
    """Profiled requests/s one replica serves within the SLO."""
    name: str = "dynamo"
    interval_s: int = 180
    window: int = 50
    correction: float = 1.0
    max_replicas: int = 1000
    actions: int = 0
    _history: list[float] = field(default_factory=list)

    def start(self, fleet: Fleet, initial: int = 1) -> None:
        """The pods the first minute needs (every policy starts from the same fleet)."""
        fleet.add_serving(max(1, initial))

    def act(self, obs: Observation) -> None:
        """One adjustment: correction from observed latency, the next interval's load, replicas."""
        if obs.now < self.interval_s:
            return  # Dynamo skips an interval without metrics
        self._history = [*self._history, _mean(obs.rates, obs.now - self.interval_s, obs.now)][-self.window :]
        if obs.expected_p99_s > 0 and math.isfinite(obs.last_p99_s):
            self.correction = min(4.0, max(0.25, obs.last_p99_s / obs.expected_p99_s))
        predicted = _arima_210(self._history)
        per_replica = self.capacity_rps / max(1.0, self.correction)
        desired = math.ceil(predicted / per_replica) if predicted > 0 else 1
        if obs.fleet.scale_serving_to(max(1, min(self.max_replicas, desired)), obs.now):
            self.actions += 1
