"""The pods of one simulated deployment, their states and how long each change takes.

A pod is ``serving``, ``warm`` (model loaded, not routed), ``cold`` (weights on the node, nothing
loaded, no GPU held) or on its way to one of them (``to_serving``, ``to_warm``, ``to_cold``) until
``ready_at``. How long a change takes comes from measured timings (``bench/results/surge.json``):
a warm pod serves after ``warm_promotion_s``, a cold one after ``cold_to_serving_s``, a new pod
after ``new_pod_s`` (scheduling, start and load). GPU-hours count every pod except cold ones (the
cost model of the simulator's issue); *allocated* GPU-hours count cold pods too, as a cluster does
today: Outrider's cold-pool pods request their GPUs like every other pod.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["COLD", "SERVING", "WARM", "Fleet", "SimPod", "Timings"]

SERVING, WARM, COLD = "serving", "warm", "cold"
_HOLDS_GPU = {SERVING, WARM, "to_serving", "to_warm"}


@dataclass(frozen=True)
class Timings:
    """Seconds each change takes."""

    warm_promotion_s: float = 1.0
    cold_to_serving_s: float = 10.0
    new_pod_s: float = 60.0
    source: str = "defaults"

    @classmethod
    def from_surge_bench(cls, path: Path) -> Timings:
        """The medians ``make bench-surge`` measured, or the defaults when the file is missing."""
        try:
            doc = json.loads(path.read_text())
            t = doc["timings"]
            return cls(
                float(t["warm_promotion_s"]),
                float(t["cold_to_serving_s"]),
                float(t["new_pod_s"]),
                f"{path} (medians of {doc.get('trials', '?')} trials)",
            )
        except (OSError, ValueError, KeyError, TypeError):
            return cls()


@dataclass
class SimPod:
    """One pod."""

    name: str
    pool: str
    state: str
    ready_at: float = 0.0
    created: float = 0.0
    demoted_at: float | None = None
    released: bool = False

    @property
    def target(self) -> str:
        """The state it is in or on its way to."""
        return self.state.removeprefix("to_")


@dataclass
class Fleet:
    """The pods of one deployment."""

    timings: Timings
    gpus_per_pod: int = 1
    pods: list[SimPod] = field(default_factory=list)
    batch: int = 16
    _next: int = 0

    def add(self, pool: str, state: str, now: float, ready_after: float) -> SimPod:
        """Create a pod reaching ``state`` after ``ready_after`` seconds."""
        self._next += 1
        pod = SimPod(
            f"{pool}-{self._next}", pool, state if ready_after <= 0 else f"to_{state}", now + ready_after, now
        )
        self.pods.append(pod)
        return pod

    def add_serving(self, count: int) -> None:
        """``count`` active-pool pods serving from the start."""
        for _ in range(count):
            self.add("active", SERVING, 0.0, 0.0)

    def move(self, pod: SimPod, state: str, now: float, after: float) -> None:
        """Start moving ``pod`` to ``state``; it arrives after ``after`` seconds."""
        pod.state = state if after <= 0 else f"to_{state}"
        pod.ready_at = now + after

    def advance(self, now: float) -> None:
        """Finish the changes that are due."""
        for pod in self.pods:
            if pod.state.startswith("to_") and now >= pod.ready_at:
                pod.state = pod.target

    def count(self, state: str) -> int:
        """Pods in ``state``."""
        return sum(1 for p in self.pods if p.state == state)

    def serving(self) -> list[SimPod]:
        """Pods that serve now."""
        return [p for p in self.pods if p.state == SERVING]

    def gpus(self) -> int:
        """GPUs held now (cold pods hold none)."""
        return self.gpus_per_pod * sum(1 for p in self.pods if p.state in _HOLDS_GPU)

    def allocated(self) -> int:
        """GPUs the pods request now: every pod, cold ones included."""
        return self.gpus_per_pod * len(self.pods)

    def scale_serving_to(self, n: int, now: float) -> int:
        """Plain-Deployment scaling (HPA, KPA, ...): start new pods or remove the newest."""
        live = [p for p in self.pods if p.target == SERVING]
        if n > len(live):
            for _ in range(n - len(live)):
                self.add("active", SERVING, now, self.timings.new_pod_s)
            return n - len(live)
        if n < len(live):
            # starting pods go first, then the newest serving ones (a ReplicaSet's order)
            order = sorted(live, key=lambda p: (p.state == SERVING, -p.created))
            for pod in order[: len(live) - n]:
                self.pods.remove(pod)
            return n - len(live)
        return 0
