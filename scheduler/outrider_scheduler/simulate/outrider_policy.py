"""Outrider in the twin: the planner's own decision core (:func:`outrider_scheduler.planner.core.decide`),
imported, not copied, driven with views built from the simulated pods, plus the operator's part
(pool Deployments sized to the planner's targets).

Every second the planner sees what it sees in a cluster: each pod's runtime sample (state, the
requests it received, the last second's p99, its queue share, the batch size in effect) and the
forecast the real forecaster made at the last 10-s step (a walk-forward over the trace, so it only
ever knows the past). Its pod operations move simulated pods with the measured timings: a warm
pod serves after ``warm_promotion_s``, a cold one after ``cold_to_serving_s``, a new one after
``new_pod_s``; a demoted pod drains for a second, then is warm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from outrider_operator.api import labels
from outrider_operator.api.runtime import BatchingSettings, LatencyWindow, ModelState, RuntimeLoad
from outrider_operator.api.spec import DynamicBatching, InferenceDeploymentSpec
from outrider_operator.api.status import ActionKind
from outrider_scheduler.planner.capacity import CapacityModel
from outrider_scheduler.planner.core import decide
from outrider_scheduler.planner.decisions import CoreSettings, Memory, OpKind
from outrider_scheduler.planner.observe import DeploymentView, ForecastView, PodView
from outrider_scheduler.planner.signals import LoadRates

from .fleet import COLD, SERVING, WARM, Fleet, SimPod
from .policies import Observation

__all__ = ["OutriderPolicy"]

Array = npt.NDArray[np.float64]
_POOL_STATE = {labels.POOL_ACTIVE: SERVING, labels.POOL_WARM: WARM, labels.POOL_COLD: COLD}
_MODEL_STATE = {SERVING: ModelState.SERVING, WARM: ModelState.WARM, COLD: ModelState.COLD}
"""The runtime state a simulated pod reports (pods on their way report the one they left, as cold)."""


@dataclass
class OutriderPolicy:
    """The planner's decisions, with the operator's pool sizing, on a simulated fleet."""

    spec: InferenceDeploymentSpec
    model: CapacityModel
    forecast_peak: Array | None
    """Forecast p90 peak (requests/s) made at each second (NaN before the first forecast)."""
    horizon_s: int = 300
    name: str = "outrider"
    interval_s: int = 1
    settings: CoreSettings = field(default_factory=CoreSettings)
    memory: Memory = field(default_factory=Memory)
    actions: int = 0
    promotions: int = 0
    cold_starts: int = 0
    _load: dict[str, float] = field(default_factory=dict)
    _queue_share: float = 0.0
    _batching: dict[int, BatchingSettings] = field(default_factory=dict)

    def start(self, fleet: Fleet, initial: int = 1) -> None:
        """The spec's pools, ready (the active one with what the first minute needs)."""
        fleet.batch = self.spec.batching.max_batch_size
        for pool, n in (
            (labels.POOL_ACTIVE, max(1, self.spec.replicas.min, initial)),
            (labels.POOL_WARM, self.spec.standby.warm),
            (labels.POOL_COLD, self.spec.standby.cold),
        ):
            for _ in range(n):
                fleet.add(pool, _POOL_STATE[pool], 0.0, 0.0)

    def act(self, obs: Observation) -> None:
        """One planner cycle, then the operator's reconcile of the pool sizes."""
        fleet, now = obs.fleet, obs.now
        view = self._view(obs)
        plan = decide(view, self.model, self.memory, self.settings)
        by_name = {p.name: p for p in fleet.pods}
        t = fleet.timings
        for op in plan.ops:
            pod = by_name.get(op.pod)
            if pod is None:
                continue
            if op.kind is OpKind.PROMOTE and pod.state == WARM:
                fleet.move(pod, SERVING, now, t.warm_promotion_s)
                pod.demoted_at = None
            elif op.kind is OpKind.LOAD and pod.state == COLD:
                fleet.move(pod, SERVING, now, t.cold_to_serving_s)
                pod.demoted_at = None
            elif op.kind is OpKind.DEMOTE and pod.state == SERVING:
                fleet.move(pod, WARM, now, 1.0)  # out of the Service at once, drained, then warm
                pod.demoted_at = float(now)
            elif op.kind is OpKind.UNLOAD and pod.state == WARM:
                fleet.move(pod, COLD, now, 0.0)
                pod.demoted_at = float(now)
            elif op.kind is OpKind.RELEASE:
                pod.released = True
            elif op.kind is OpKind.RESIZE and op.batch_size is not None:
                fleet.batch = op.batch_size
        for action in plan.actions:
            self.actions += 1
            if action.kind is ActionKind.PROMOTE_WARM:
                self.promotions += action.count
            elif action.kind is ActionKind.LOAD_COLD:
                self.cold_starts += action.count
        self._reconcile(fleet, now, plan.active_target, plan.warm_target, plan.cold_target)

    def _reconcile(self, fleet: Fleet, now: int, active: int, warm: int, cold: int) -> None:
        """The operator: each pool's Deployment to its size; released pods go first, then the newest."""
        t = fleet.timings
        start_s = max(0.0, t.new_pod_s - t.cold_to_serving_s)  # a pod without a model to load
        ready_after = {
            labels.POOL_ACTIVE: t.new_pod_s,
            labels.POOL_WARM: t.new_pod_s,
            labels.POOL_COLD: start_s,
        }
        for pool, size in ((labels.POOL_ACTIVE, active), (labels.POOL_WARM, warm), (labels.POOL_COLD, cold)):
            pods = [p for p in fleet.pods if p.pool == pool]
            if len(pods) < size:
                for _ in range(size - len(pods)):
                    fleet.add(pool, _POOL_STATE[pool], float(now), ready_after[pool])
            elif len(pods) > size:
                order = sorted(pods, key=lambda p: (not p.released, p.state == SERVING, -p.created))
                for pod in order[: len(pods) - size]:
                    fleet.pods.remove(pod)

    def _view(self, obs: Observation) -> DeploymentView:
        fleet, now = obs.fleet, obs.now
        serving = fleet.serving()
        lam = float(obs.rates[now - 1]) if now > 0 else 0.0
        per = lam / len(serving) if serving else 0.0
        p99_ms = obs.last_p99_s * 1000 if math.isfinite(obs.last_p99_s) else 60_000.0
        self._queue_share = obs.backlog / len(serving) if serving else 0.0
        # one latency window per tick for every serving pod (and one for the rest), one batching
        # settings object per batch size: building them per pod was most of a replay's time
        count = int(per * 2)
        windows = (
            LatencyWindow.model_construct(window_seconds=2.0, count=count, p99_ms=p99_ms, p50_ms=None),
            LatencyWindow.model_construct(window_seconds=2.0, count=count, p99_ms=None, p50_ms=None),
        )
        batching = self._batching.get(fleet.batch)
        if batching is None:
            batching = self._batching[fleet.batch] = BatchingSettings.model_construct(
                model="twin",
                max_batch_size=fleet.batch,
                min_batch_delay_ms=10.0,
                lookahead_window=3,
                dynamic=DynamicBatching.ENABLED,
            )
        # and one sample per pod state present, copied per pod with the pod's own fields (a copy
        # costs a third of constructing one)
        present = {p.state if p.state in _MODEL_STATE else COLD for p in fleet.pods}
        samples = {
            state: RuntimeLoad.model_construct(  # no validation: a million samples per simulated week
                model="twin",
                state=_MODEL_STATE[state],
                requested_state=_MODEL_STATE[state],
                boot_id="",
                uptime_seconds=0.0,
                received=0,
                completed=0,
                failed=0,
                rejected=0,
                rows_completed=0,
                inflight=0,
                queue_depth=int(self._queue_share) if state == SERVING else 0,
                queue_limit=1024,
                workers=self.model.workers,
                latency=windows[0] if state == SERVING else windows[1],
                batching=batching,
                loading=False,
                draining=False,
                batch_stats=[],
            )
            for state in present
        }
        pods = tuple(self._pod(p, per, samples, now) for p in fleet.pods)
        forecast = None
        if self.forecast_peak is not None and now > 0:
            peak = float(self.forecast_peak[now - 1])
            if math.isfinite(peak):
                forecast = ForecastView(peak, self.horizon_s, float(now - 1))
        return DeploymentView("sim", "twin", self.spec, pods, float(now), forecast)

    def _pod(self, pod: SimPod, per: float, samples: dict[str, RuntimeLoad], now: int) -> PodView:
        serving = pod.state == SERVING
        if serving:
            self._load[pod.name] = self._load.get(pod.name, 0.0) + per
        state = pod.state if pod.state in _MODEL_STATE else COLD
        done = int(self._load.get(pod.name, 0.0))
        load = samples[state].model_copy(
            update={
                "boot_id": pod.name,
                "uptime_seconds": float(now - pod.created),
                "received": done,
                "completed": done,
                "rows_completed": done,
                "batch_stats": [],  # its own list: the copy is shallow, the rest is read-only
            }
        )
        rates = LoadRates(
            load, per if serving else 0.0, per if serving else 0.0, 0.0, 1.0, 0.0 if serving else 60.0, 1.0
        )
        busy = None
        if pod.state.startswith("to_"):
            busy = "promote" if pod.target == SERVING else "starting"
        return PodView(
            name=pod.name,
            pool=pod.pool,
            role=labels.ROLE_SERVING
            if serving or (pod.target == SERVING and pod.pool == labels.POOL_ACTIVE)
            else labels.ROLE_STANDBY,
            created=pod.created,
            ready=not pod.state.startswith("to_"),
            released=pod.released,
            demoted_at=pod.demoted_at,
            endpoint_ready=serving,
            rates=rates,
            busy=busy,
        )
