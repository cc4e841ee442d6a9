"""Reporting what the planner decided: Events, ``status.lastScalingAction``, metrics and status.plan.

:class:`Reporting` is the part of :class:`~.service.PlannerService` that reports each cycle's
actions: advisory ones at once (and again only after ``advisory_repeat_s``), actions that add
capacity once every pod they brought serves (``readySeconds`` runs from the trigger to that
moment), and the rest once their operations returned. After a restart it resumes the report of
an action the previous planner left unfinished.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from outrider_operator.api import labels
from outrider_operator.api.spec import InferenceDeploymentSpec, ScalingMode
from outrider_operator.api.status import ActionKind, ActionTrigger, ScalingAction, ScalingSource
from outrider_operator.errors import KubeApiError

from .actuator import Actuator, OpResult
from .cluster import PlannerCache
from .decisions import Action, Plan
from .metrics import PlannerMetrics
from .observe import DeploymentView, PodKind, classify
from .profile import ProfileBook
from .publishing import StatusWriter
from .sampling import parse_time
from .settings import PlannerSettings
from .state import ActionRecord, DeploymentState, PendingAction

__all__ = ["Reporting"]

# the loop's logger: its lines keep the name they had when this was part of the service module
log = logging.getLogger("outrider_scheduler.planner.service")


class Reporting:
    """Reports each cycle's actions for :class:`~.service.PlannerService` (a part of it)."""

    cache: PlannerCache
    writer: StatusWriter
    actuator: Actuator
    profiles: ProfileBook
    metrics: PlannerMetrics
    settings: PlannerSettings
    wall: Callable[[], float]
    recent: deque[ActionRecord]

    def _report(
        self,
        body: dict[str, Any],
        spec: InferenceDeploymentSpec,
        state: DeploymentState,
        view: DeploymentView,
        plan: Plan,
        acting: bool,
    ) -> list[Action]:
        """Report advisory actions, queue capacity actions until they serve; return the rest."""
        mode = str(spec.scaling.mode)
        now = view.now
        later: list[Action] = []
        trigger_at = plan.trigger_time if plan.trigger_time is not None else now
        active_now = {p.name for p in view.pods if p.pool == labels.POOL_ACTIVE}
        for action in plan.actions:
            if not acting:
                sig = (action.kind, action.trigger, action.pods, action.count)
                last = state.advisory_seen.get(sig)
                if last is not None and now - last < self.settings.advisory_repeat_s:
                    continue
                state.advisory_seen = {
                    s: t for s, t in state.advisory_seen.items() if now - t < self.settings.advisory_repeat_s
                }
                state.advisory_seen[sig] = now
                self._record(body, action, mode, trigger_at, now, None, advisory=True)
                continue
            if action.adds_capacity:
                state.pending.append(PendingAction(action, trigger_at, now, set(action.pods), active_now))
                # in status at once (readySeconds empty): a restarted planner finishes the report
                self.writer.state(view.namespace, view.name, body).last_action = self._scaling_action(
                    action, trigger_at, now, None, False, action.message
                )
            else:
                later.append(action)
        return later

    def _check_pending(
        self, body: dict[str, Any], mode: str, state: DeploymentState, view: DeploymentView
    ) -> None:
        endpoints = self.cache.endpoint_ready(view.namespace, view.name)
        kinds = {p.name: classify(p) for p in view.pods}
        serving = {n for n, k in kinds.items() if k is PodKind.SERVING and n in endpoints}
        active = {p.name for p in view.pods if p.pool == labels.POOL_ACTIVE}
        keep: list[PendingAction] = []
        for pending in state.pending:
            if pending.action.kind is ActionKind.ADD_REPLICAS:
                new = sorted((endpoints[n], n) for n in serving & active if n not in pending.baseline)
                done = len(new) >= pending.action.count
                ready_at = new[pending.action.count - 1][0] if done else 0.0
            else:
                alive = {p for p in pending.pods if p in kinds and kinds[p] is not PodKind.GONE}
                failed = {p for p in alive if self.actuator.failed(view.namespace, p)}
                pending.pods = alive - failed
                done = bool(pending.pods) and pending.pods <= serving
                ready_at = max((endpoints[p] for p in pending.pods), default=0.0) if done else 0.0
                if not pending.pods:
                    continue  # every pod of it failed or vanished: the core uses others (new actions)
            if done:
                self._record(
                    body,
                    pending.action,
                    mode,
                    pending.trigger_at,
                    pending.decided_at,
                    max(ready_at, pending.decided_at),
                )
            elif view.now - pending.decided_at > self.settings.ready_timeout_s:
                self.writer.event(
                    body,
                    "Warning",
                    "CapacityLate",
                    f"{pending.action.message}: not serving after {self.settings.ready_timeout_s:.0f} s",
                )
            else:
                keep.append(pending)
        state.pending = keep

    def _record(
        self,
        body: dict[str, Any],
        action: Action,
        mode: str,
        trigger_at: float,
        decided_at: float,
        ready_at: float | None,
        advisory: bool = False,
    ) -> None:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        ready_s = max(0.0, ready_at - trigger_at) if ready_at is not None else None
        message = ("Advisory (not acted on): " if advisory else "") + action.message
        if ready_s is not None and action.adds_capacity:
            message += f"; serving in {ready_s:.1f} s"
            self.metrics.trigger_to_serving.labels(action=action.kind.value).observe(ready_s)
        self.metrics.actions.labels(ns, name, action.kind.value, action.trigger.value, mode).inc()
        st = self.writer.state(ns, name, body)
        # a refill follows an action and does not replace it; nor does any action that adds no capacity
        # replace one whose pods are not serving yet: a restarted planner finishes that one's report
        # from status (a batch resize decided in the same cycle as a cold load used to erase it)
        keeps = action.kind is ActionKind.REFILL_STANDBY or (
            not action.adds_capacity and self._in_flight(st.last_action, decided_at)
        )
        if not keeps:
            st.last_action = self._scaling_action(action, trigger_at, decided_at, ready_s, advisory, message)
        self.writer.event(body, "Normal", action.kind.value, message)
        self.recent.append(
            ActionRecord(
                ns,
                name,
                action.kind.value,
                action.trigger.value,
                advisory,
                action.pods,
                action.count,
                trigger_at,
                decided_at,
                ready_at,
                message,
            )
        )
        log.info("%s/%s: %s", ns, name, message)

    @staticmethod
    def _scaling_action(
        action: Action,
        trigger_at: float,
        decided_at: float,
        ready_s: float | None,
        advisory: bool,
        message: str,
    ) -> ScalingAction:
        return ScalingAction(
            time=datetime.fromtimestamp(decided_at, UTC).replace(microsecond=0),
            source=ScalingSource.PREDICTIVE,
            action=action.kind,
            trigger=action.trigger,
            advisory=advisory,
            pods=list(action.pods)[:32],
            from_replicas=action.from_serving,
            to_replicas=action.to_serving,
            reason=message[:1024],
            decision_seconds=f"{max(0.0, decided_at - trigger_at):.3f}",
            ready_seconds=f"{ready_s:.3f}" if ready_s is not None else None,
        )

    def _in_flight(self, last: ScalingAction | None, now: float) -> bool:
        """Whether ``last`` is a capacity action still waiting for its pods to serve."""
        if last is None or last.ready_seconds is not None or last.advisory or last.action is None:
            return False
        if last.action not in (ActionKind.PROMOTE_WARM, ActionKind.LOAD_COLD, ActionKind.ADD_REPLICAS):
            return False
        return now - last.time.timestamp() <= self.settings.ready_timeout_s

    def _resume(self, body: dict[str, Any], state: DeploymentState) -> None:
        """After a restart: wait for the capacity of an action the previous planner left unfinished."""
        meta = body["metadata"]
        last = self.writer.state(meta["namespace"], meta["name"], body).last_action
        if last is None or last.action is None or not self._in_flight(last, self.wall()):
            return
        kind = ActionKind(last.action)
        decided = last.time.timestamp()
        trigger_at = decided - float(last.decision_seconds or 0)
        action = Action(
            kind,
            ActionTrigger(last.trigger or ActionTrigger.SURGE),
            tuple(last.pods),
            last.from_replicas,
            last.to_replicas,
            last.reason,
            adds_capacity=True,
            count=max(1, last.to_replicas - last.from_replicas),
        )
        baseline = {
            p["metadata"]["name"]
            for p in self.cache.pods(meta["namespace"], meta["name"])
            if (p["metadata"].get("labels") or {}).get(labels.LABEL_POOL) == labels.POOL_ACTIVE
            and (parse_time(p["metadata"].get("creationTimestamp")) or 0.0) < decided
        }
        state.pending.append(PendingAction(action, trigger_at, decided, set(last.pods), baseline))
        log.info(
            "%s/%s: resuming the report of %s (decided before a restart)",
            meta["namespace"],
            meta["name"],
            kind.value,
        )

    def _record_op(self, result: OpResult) -> None:
        if not result.ok:
            self.metrics.pod_call_failures.labels(
                result.namespace, result.deployment, result.op.kind.value
            ).inc()

    def _gauges(self, ns: str, name: str, plan: Plan) -> None:
        n = plan.numbers
        m = self.metrics
        m.demand.labels(ns, name).set(n.demand_rps)
        m.capacity.labels(ns, name).set(n.capacity_rps if n.capacity_rps == n.capacity_rps else 0.0)
        serving_cap = n.serving * n.capacity_rps if n.capacity_rps == n.capacity_rps else 0.0
        m.serving_capacity.labels(ns, name).set(serving_cap)
        m.desired.labels(ns, name).set(n.desired)
        m.batch.labels(ns, name).set(n.batch_size)
        for state, value in (
            ("serving", n.serving),
            ("warm", n.warm),
            ("cold", n.cold),
            ("incoming", n.incoming),
            ("unreachable", n.unreachable),
            ("unplaced", n.unplaced),
        ):
            m.pods.labels(ns, name, state).set(value)

    def _condition(self, spec: InferenceDeploymentSpec, plan: Plan) -> tuple[bool, str, str]:
        mode = str(spec.scaling.mode)
        n = plan.numbers
        # no live figures here (demand is in status.plan): a message that changed with every sample
        # would make every poll a status write, and every write a reconcile of the operator
        summary = f"{n.serving} serving, {n.warm} warm, {n.cold} cold; wanted {n.desired} serving"
        notes = "; ".join(plan.notes)
        text = summary + (f"; {notes}" if notes else "")
        if self.profiles.errors and not self.deployments_known(spec):
            return (
                False,
                "ProfileInvalid",
                f"{'; '.join(self.profiles.errors)}; capacity is learned from the pods. {text}",
            )
        if n.unreachable and not (n.serving or n.warm or n.cold or n.incoming):
            return False, "PodsUnreachable", "no pod answered the runtime admin API: " + text
        if mode == ScalingMode.ADVISORY.value:
            return True, "Advisory", "decisions are published, nothing is changed: " + text
        if mode == ScalingMode.REACTIVE.value:
            return (
                True,
                "Publishing",
                "sizes come from /scale (replicas.target); decisions are published: " + text,
            )
        return True, "Acting", text

    def deployments_known(self, spec: InferenceDeploymentSpec) -> bool:
        """Whether a valid profile covers this deployment's model."""
        return self.profiles.find(spec.model.uri, spec.model.name) is not None

    def _publish(
        self,
        body: dict[str, Any],
        spec: InferenceDeploymentSpec,
        plan: Plan | None,
        view: DeploymentView | None,
        condition: tuple[bool, str, str],
    ) -> None:
        observed = None
        if view is not None:
            sizes = sorted(
                p.rates.load.batching.max_batch_size
                for p in view.pods
                if p.rates is not None and classify(p) is PodKind.SERVING
            )
            observed = sizes[len(sizes) // 2] if sizes else None
        try:
            self.writer.publish(body, str(spec.scaling.mode), plan, observed, condition)
        except KubeApiError as exc:
            meta = body.get("metadata") or {}
            log.warning("could not write the plan of %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
