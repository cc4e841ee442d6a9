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

The loop is here; building each deployment's view is in :mod:`.sampling`, reporting in
:mod:`.reporting`, the settings in :mod:`.settings` and the state kept between cycles in
:mod:`.state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from outrider_operator.api.resource import parse_spec
from outrider_operator.api.spec import Engine, ScalingMode
from outrider_operator.api.status import ActionKind

from .actuator import Actuator
from .capacity import CapacityModel
from .cluster import PlannerCache
from .core import decide
from .metrics import PlannerMetrics
from .profile import ProfileBook
from .publishing import StatusWriter
from .reporting import Reporting
from .runtime_client import RuntimeClient
from .sampling import Sampling
from .settings import PlannerSettings
from .signals import SignalBook
from .state import ActionRecord, DeploymentState

__all__ = ["ActionRecord", "PlannerService", "PlannerSettings"]

log = logging.getLogger(__name__)


class PlannerService(Sampling, Reporting):
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
        self.deployments: dict[tuple[str, str], DeploymentState] = {}
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
            state = self.deployments[(ns, name)] = DeploymentState(
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
