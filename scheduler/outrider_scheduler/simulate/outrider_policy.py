"""Outrider in the twin: the planner's own decision core (:func:`outrider_scheduler.planner.core.decide`),
imported, not copied, driven with views built from the simulated pods, plus the operator's part
(pool Deployments sized to the planner's targets).

Every second the planner sees what it sees in a cluster: each pod's runtime sample (state, the
last second's p99, its queue share, the batch size in effect) with the rate of requests it received
(the loop computes that rate from the runtime's cumulative counters, which the twin therefore leaves
at zero: the decision core never reads them), and the
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
    forecast_mean: Array | None = None
    """Forecast p90 of the horizon's mean rate (requests/s) at each second, like ``forecast_peak``
    (what ``scaling.forecastSizing: mean`` sizes for)."""
    settings: CoreSettings = field(default_factory=CoreSettings)
    memory: Memory = field(default_factory=Memory)
    actions: int = 0
    promotions: int = 0
    cold_starts: int = 0
    _queue_share: float = 0.0
    _batching: dict[int, BatchingSettings] = field(default_factory=dict)
    _standby: dict[tuple[str, int], LoadRates] = field(default_factory=dict)

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
        # one latency window per tick for every serving pod, one batching settings object per batch
        # size: building them per pod was most of a replay's time
        count = int(per * 2)
        window = LatencyWindow.model_construct(window_seconds=2.0, count=count, p99_ms=p99_ms, p50_ms=None)
        batching = self._batching.get(fleet.batch)
        if batching is None:
            batching = self._batching[fleet.batch] = BatchingSettings.model_construct(
                model="twin",
                max_batch_size=fleet.batch,
                min_batch_delay_ms=10.0,
                lookahead_window=3,
                dynamic=DynamicBatching.ENABLED,
            )
        # and one sample (with its rates) per pod state, shared by the pods in that state: the
        # decision core reads a sample's state, queue, latency and batching, never the cumulative
        # counters a real runtime adds (the loop turns those into the rates given here); a standby
        # pod's sample does not change from second to second, so it is built once per batch size
        rates: dict[str, LoadRates] = {}
        for state in {p.state if p.state in _MODEL_STATE else COLD for p in fleet.pods}:
            if state == SERVING:
                sample = self._sample(state, window, batching, int(self._queue_share))
                rates[state] = LoadRates(sample, per, per, 0.0, 1.0, 0.0, 1.0)
                continue
            standby = self._standby.get((state, fleet.batch))
            if standby is None:
                idle = LatencyWindow.model_construct(window_seconds=2.0, count=0, p99_ms=None, p50_ms=None)
                sample = self._sample(state, idle, batching, 0)
                standby = self._standby[(state, fleet.batch)] = LoadRates(
                    sample, 0.0, 0.0, 0.0, 1.0, 60.0, 1.0
                )
            rates[state] = standby
        pods = tuple(self._pod(p, rates) for p in fleet.pods)
        forecast = None
        if self.forecast_peak is not None and now > 0:
            peak = float(self.forecast_peak[now - 1])
            if math.isfinite(peak):
                mean = math.nan if self.forecast_mean is None else float(self.forecast_mean[now - 1])
                known = mean if math.isfinite(mean) else None
                forecast = ForecastView(peak, self.horizon_s, float(now - 1), known)
        return DeploymentView("sim", "twin", self.spec, pods, float(now), forecast)

    def _sample(
        self, state: str, latency: LatencyWindow, batching: BatchingSettings, queue: int
    ) -> RuntimeLoad:
        """A runtime sample of a pod in ``state`` (no validation: a million samples per simulated week)."""
        return RuntimeLoad.model_construct(
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
            queue_depth=queue,
            queue_limit=1024,
            workers=self.model.workers,
            latency=latency,
            batching=batching,
            loading=False,
            draining=False,
            batch_stats=[],
        )

    def _pod(self, pod: SimPod, rates: dict[str, LoadRates]) -> PodView:
        serving = pod.state == SERVING
        state = pod.state if pod.state in _MODEL_STATE else COLD
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
            rates=rates[state],
            busy=busy,
        )
