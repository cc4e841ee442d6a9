"""The planner loop: every ``poll_interval`` poll each deployment's pods, decide, act, report.

One cycle per interval (0.5 s by default), all deployments concurrently. For each
InferenceDeployment: read its pods from the watch cache, poll every reachable pod's
``/v2/admin/load``, fold the samples into rates and the capacity model, build a
:class:`~.observe.DeploymentView`, :func:`~.core.decide`, then

- in ``predictive`` mode execute the plan's pod operations (:mod:`.actuator`) and publish the pool
  targets the operator applies;
- in ``advisory`` and ``reactive`` modes execute nothing and publish the same decisions (Events say
  "Advisory", ``status.lastScalingAction.advisory`` is true, metrics carry ``mode``).

Actions that add capacity are reported when the capacity serves: every pod they brought is
serving and a ready endpoint of the Service. ``readySeconds`` runs from the trigger (the first
overloaded sample, or the forecast decision) to that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from outrider_operator.api import labels
from outrider_operator.api.resource import parse_spec
from outrider_operator.api.spec import Engine, InferenceDeploymentSpec, ScalingMode
from outrider_operator.api.status import ActionKind, ActionTrigger, ScalingAction, ScalingSource, parse_status
from outrider_operator.errors import KubeApiError
from outrider_operator.reconcile.runtimeconfig import HTTP_PORT

from .actuator import Actuator, OpResult
from .capacity import CapacityModel, CapacitySettings
from .cluster import PlannerCache
from .core import Action, CoreSettings, Memory, Plan, decide
from .errors import PodCallError
from .metrics import PlannerMetrics
from .observe import DeploymentView, ForecastView, NodeRoom, PodKind, PodView, classify
from .profile import ProfileBook
from .publishing import StatusWriter
from .runtime_client import RuntimeClient
from .signals import SignalBook

__all__ = ["ActionRecord", "PlannerService", "PlannerSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannerSettings:
    """Settings of the planner service."""

    poll_interval_s: float = 0.5
    """Seconds between cycles (how often every pod is polled)."""
    namespaces: tuple[str, ...] = ()
    """Plan only InferenceDeployments in these namespaces (empty: all)."""
    pod_endpoint_annotation: bool = False
    """Reach pods at their ``outrider.dev/stand-in-endpoint`` annotation (development clusters only)."""
    startup_grace_s: float = 300.0
    """A young pod that is not ready and does not answer yet counts as starting, not unreachable."""
    ready_timeout_s: float = 600.0
    """An action whose capacity is not serving after this long is reported as late and dropped."""
    advisory_repeat_s: float = 60.0
    """An unchanged advisory decision is reported again after this long."""
    core: CoreSettings = field(default_factory=CoreSettings)
    """Decision rules."""
    capacity: CapacitySettings = field(default_factory=CapacitySettings)
    """Capacity model."""


@dataclass(frozen=True)
class ActionRecord:
    """One reported action with exact times (unix seconds), kept for ``GET /debug/actions``."""

    namespace: str
    deployment: str
    action: str
    trigger: str
    advisory: bool
    pods: tuple[str, ...]
    count: int
    trigger_at: float
    decided_at: float
    ready_at: float | None
    message: str

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON, with the two durations the status shows."""
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "action": self.action,
            "trigger": self.trigger,
            "advisory": self.advisory,
            "pods": list(self.pods),
            "count": self.count,
            "triggerAt": self.trigger_at,
            "decidedAt": self.decided_at,
            "readyAt": self.ready_at,
            "decisionSeconds": round(self.decided_at - self.trigger_at, 3),
            "readySeconds": round(self.ready_at - self.trigger_at, 3) if self.ready_at is not None else None,
            "message": self.message,
        }


@dataclass
class _Pending:
    """An action that adds capacity, waiting until that capacity serves."""

    action: Action
    trigger_at: float
    decided_at: float
    pods: set[str]
    baseline: set[str]
    """Active-pool pods that existed when the action was decided (AddReplicas counts new ones)."""


@dataclass
class _Deployment:
    """Per-deployment state of the loop."""

    model: CapacityModel
    signals: SignalBook
    memory: Memory = field(default_factory=Memory)
    pending: list[_Pending] = field(default_factory=list)
    advisory_seen: dict[tuple[Any, ...], float] = field(default_factory=dict)


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


class PlannerService:
    """Runs cycles; :meth:`cycle` is one pass over every deployment (tests drive it directly)."""

    def __init__(
        self,
        cache: PlannerCache,
        writer: StatusWriter,
        actuator: Actuator,
        runtime: RuntimeClient,
        profiles: ProfileBook,
        metrics: PlannerMetrics | None = None,
        settings: PlannerSettings | None = None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.writer = writer
        self.actuator = actuator
        self.runtime = runtime
        self.profiles = profiles
        self.metrics = metrics or PlannerMetrics()
        self.settings = settings or PlannerSettings()
        self.wall = wall
        self.mono = mono
        self.deployments: dict[tuple[str, str], _Deployment] = {}
        self.last_cycle_at = 0.0
        self.recent: deque[ActionRecord] = deque(maxlen=512)
        """The latest reported actions (served at /debug/actions)."""
        self.metrics.profile_errors.set(len(profiles.errors))
        for error in profiles.errors:
            log.error("%s", error)

    # ---- the loop --------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, leading: Callable[[], bool] = lambda: True) -> None:
        """Cycle until ``stop`` is set; cycles only act while ``leading()`` is true."""
        interval = self.settings.poll_interval_s
        while not stop.is_set():
            started = self.mono()
            leader = leading()
            self.metrics.leader.set(1 if leader else 0)
            if leader:
                try:
                    await self.cycle()
                except Exception:  # a bug in one cycle must not stop the planner
                    log.exception("planner cycle failed")
                self.metrics.cycle_seconds.observe(self.mono() - started)
            self.last_cycle_at = self.mono()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.01, interval - (self.mono() - started)))

    async def cycle(self) -> None:
        """One pass over every InferenceDeployment in scope."""
        bodies = [b for b in self.cache.deployments() if self._in_scope(b)]
        keys = {
            ((b.get("metadata") or {}).get("namespace", ""), (b.get("metadata") or {}).get("name", ""))
            for b in bodies
        }
        for gone in set(self.deployments) - keys:
            self.deployments.pop(gone, None)
            self.writer.forget(*gone)
            self.metrics.forget(*gone)
        rooms = self._rooms()
        await asyncio.gather(*(self._one(b, rooms) for b in bodies))
        for result in self.actuator.drain_completed():
            self._record_op(result)
        for ns in {k[0] for k in keys}:  # forget operations of pods that are gone, namespace by namespace
            alive = {p["metadata"]["name"] for (n, d) in keys if n == ns for p in self.cache.pods(n, d)}
            self.actuator.forget(ns, alive)

    def _in_scope(self, body: dict[str, Any]) -> bool:
        ns = (body.get("metadata") or {}).get("namespace", "")
        return not self.settings.namespaces or ns in self.settings.namespaces

    def _rooms(self) -> list[tuple[str, int, frozenset[str]]]:
        out = []
        nodes = self.cache.nodes
        for name in nodes.node_names():
            node = nodes.node(name)
            if node is not None and node.shape.free_gpus > 0:
                out.append((name, node.shape.free_gpus, node.cached_models))
        out.sort(key=lambda r: -r[1])
        return out[:256]

    # ---- one deployment --------------------------------------------------------------------------
    async def _one(self, body: dict[str, Any], rooms: list[tuple[str, int, frozenset[str]]]) -> None:
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace")), str(meta.get("name"))
        try:
            spec = parse_spec(body.get("spec") or {})
        except ValidationError:
            return  # the operator reports InvalidSpec; nothing to plan
        if str(spec.runtime.engine) != Engine.OUTRIDER.value:
            self._publish(
                body,
                spec,
                None,
                None,
                (
                    False,
                    "EngineNotSupported",
                    "the triton engine has no Outrider admin API: the planner leaves it alone",
                ),
            )
            return
        state = self.deployments.get((ns, name))
        if state is None:
            profile = self.profiles.find(spec.model.uri, spec.model.name)
            state = self.deployments[(ns, name)] = _Deployment(
                CapacityModel.from_profile(profile, self.settings.capacity),
                SignalBook(window_seconds=max(1.0, 2 * self.settings.poll_interval_s)),
            )
            self._resume(body, state)
        view, addresses = await self._observe(body, spec, state, rooms)
        started = time.perf_counter()
        plan = decide(view, state.model, state.memory, self.settings.core)
        self.metrics.decision_seconds.observe(time.perf_counter() - started)
        if log.isEnabledFor(logging.DEBUG):
            n, m = plan.numbers, state.model
            log.debug(
                "%s/%s: demand %.1f req/s, p99 %s ms, queue %d, %d serving at batch %d (surge batch %d), "
                "capacity %.1f req/s; model latency factor %.2f, correction %.2f, service ms %s",
                ns,
                name,
                n.demand_rps,
                n.p99_ms,
                n.queue_depth,
                n.serving,
                n.batch_size,
                n.surge_batch,
                n.capacity_rps,
                m.latency_factor,
                m.correction,
                {b: round(s * 1000, 1) for b, s in m.points().items()},
            )
        mode = str(spec.scaling.mode)
        acting = mode == ScalingMode.PREDICTIVE.value
        decided_at = self.wall()
        later = self._report(body, spec, state, view, plan, acting)
        if acting and any(a.adds_capacity for a in plan.actions):
            # write-ahead: the action is in status before any pod is touched, so a planner killed
            # mid-action is followed by one that finishes its report instead of losing it
            self._publish(body, spec, plan, view, self._condition(spec, plan))
        if acting and plan.ops:
            for result in await self.actuator.execute(ns, name, list(plan.ops), addresses):
                self._record_op(result)
        trigger_at = plan.trigger_time if plan.trigger_time is not None else view.now
        for action in later:  # done once the operations returned: a resize is in effect now
            applied = self.wall() if action.kind is ActionKind.RESIZE_BATCH else None
            self._record(body, action, mode, trigger_at, decided_at, applied)
        self._check_pending(body, mode, state, view)
        self._gauges(ns, name, plan)
        self._publish(body, spec, plan, view, self._condition(spec, plan))

    async def _observe(
        self,
        body: dict[str, Any],
        spec: InferenceDeploymentSpec,
        state: _Deployment,
        rooms: list[tuple[str, int, frozenset[str]]],
    ) -> tuple[DeploymentView, dict[str, str]]:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        pods = self.cache.pods(ns, name)
        endpoints = self.cache.endpoint_ready(ns, name)
        addresses: dict[str, str] = {}
        for pod in pods:
            address = self._address(pod)
            if address is not None and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                addresses[pod["metadata"]["name"]] = address
        answers = await self.runtime.load_many(addresses)
        sampled = self.mono()
        now = self.wall()
        views = []
        reachable = set()
        for pod in pods:
            pm = pod.get("metadata") or {}
            pname = str(pm.get("name"))
            key = f"{ns}/{pname}"
            answer = answers.get(pname)
            rates = None
            if (
                answer is not None
                and not isinstance(answer, PodCallError)
                and not self.actuator.failed(ns, pname)
            ):
                rates = state.signals.add(key, sampled, answer)
                state.model.observe_batches(key, answer.batch_stats, answer.boot_id)
                reachable.add(key)
            pl = pm.get("labels") or {}
            ann = pm.get("annotations") or {}
            created = _parse_time(pm.get("creationTimestamp")) or 0.0
            ready = _ready(pod)
            role = str(pl.get(labels.LABEL_ROLE, labels.ROLE_STANDBY))
            young = now - created < self.settings.startup_grace_s
            cost = ann.get(labels.ANNOTATION_POD_DELETION_COST)
            views.append(
                PodView(
                    name=pname,
                    pool=str(pl.get(labels.LABEL_POOL, "")),
                    role=role,
                    created=created,
                    node=(pod.get("spec") or {}).get("nodeName"),
                    ready=ready,
                    deleting=bool(pm.get("deletionTimestamp")),
                    released=_negative(cost),
                    demoted_at=_parse_time(ann.get(labels.ANNOTATION_DEMOTED_AT)),
                    endpoint_ready=pname in endpoints,
                    rates=rates,
                    busy=self.actuator.busy(ns, pname, sampled, role),
                    starting=rates is None and young and not ready,
                )
            )
        state.signals.retain(reachable)
        state.model.retain(reachable)
        served = [v.rates for v in views if v.rates is not None and v.rates.rows_per_request is not None]
        rows = sum(r.rows_per_request or 0 for r in served) / len(served) if served else None
        workers = max((v.rates.load.workers for v in views if v.rates), default=state.model.workers)
        state.model.observe_workers(workers, rows)
        status = parse_status(body.get("status"))
        forecast = None
        fc = status.forecast
        if fc is not None and fc.p90_peak_rps is not None and fc.generated_at is not None:
            try:
                forecast = ForecastView(
                    float(fc.p90_peak_rps), fc.horizon_seconds or 0, fc.generated_at.timestamp()
                )
            except ValueError:
                forecast = None
        model_name = spec.model.name
        view = DeploymentView(
            namespace=ns,
            name=name,
            spec=spec,
            pods=tuple(views),
            now=now,
            forecast=forecast,
            recommended_active=fc.recommended_replicas if fc is not None else None,
            disruptions_allowed=self.cache.disruptions_allowed(ns, name),
            rooms=tuple(NodeRoom(n, free, model_name in cached) for n, free, cached in rooms),
        )
        return view, addresses

    def _address(self, pod: dict[str, Any]) -> str | None:
        if self.settings.pod_endpoint_annotation:
            stand_in = ((pod.get("metadata") or {}).get("annotations") or {}).get(
                labels.ANNOTATION_STAND_IN_ENDPOINT
            )
            return str(stand_in) if stand_in else None
        ip = (pod.get("status") or {}).get("podIP")
        return f"{ip}:{HTTP_PORT}" if ip else None

    # ---- reporting -------------------------------------------------------------------------------
    def _report(
        self,
        body: dict[str, Any],
        spec: InferenceDeploymentSpec,
        state: _Deployment,
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
                state.pending.append(_Pending(action, trigger_at, now, set(action.pods), active_now))
                # in status at once (readySeconds empty): a restarted planner finishes the report
                self.writer.state(view.namespace, view.name, body).last_action = self._scaling_action(
                    action, trigger_at, now, None, False, action.message
                )
            else:
                later.append(action)
        return later

    def _check_pending(
        self, body: dict[str, Any], mode: str, state: _Deployment, view: DeploymentView
    ) -> None:
        endpoints = self.cache.endpoint_ready(view.namespace, view.name)
        kinds = {p.name: classify(p) for p in view.pods}
        serving = {n for n, k in kinds.items() if k is PodKind.SERVING and n in endpoints}
        active = {p.name for p in view.pods if p.pool == labels.POOL_ACTIVE}
        keep: list[_Pending] = []
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

    def _resume(self, body: dict[str, Any], state: _Deployment) -> None:
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
            and (_parse_time(p["metadata"].get("creationTimestamp")) or 0.0) < decided
        }
        state.pending.append(_Pending(action, trigger_at, decided, set(last.pods), baseline))
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


def _negative(value: Any) -> bool:
    try:
        return int(str(value)) < 0
    except (TypeError, ValueError):
        return False
