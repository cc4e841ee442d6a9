"""Write the planner's decisions where users see them: status, Events (and metrics, by the service).

The planner owns, through server-side apply under the field manager ``outrider-planner``:
``status.forecast.recommendedReplicas``, ``status.plan``, ``status.batchSize``,
``status.lastScalingAction`` and the ``Planning`` condition. Server-side apply removes fields a
manager stops sending, so every apply carries all of them (the last action included). Status is
written when the plan changes, and at most every ``refresh_seconds`` for the numbers alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from outrider_operator.api import labels
from outrider_operator.api.status import (
    Condition,
    ConditionType,
    ForecastSummary,
    PlanStatus,
    Reservation,
    ScalingAction,
)
from outrider_operator.errors import KubeApiError
from outrider_operator.kube.events import EventRecorder
from outrider_operator.kube.rest import KubeRest
from outrider_operator.reconcile.status import set_condition

from .decisions import Numbers, Plan

__all__ = ["FIELD_MANAGER", "PlanningState", "StatusWriter"]

log = logging.getLogger(__name__)

FIELD_MANAGER = "outrider-planner"
"""Field manager of every status apply the planner makes."""
COMPONENT = "outrider-planner"
"""Component name on the planner's Events."""


def _dec(value: float | None, digits: int = 1) -> str | None:
    if value is None or not math.isfinite(value):
        return None
    return f"{value:.{digits}f}"


@dataclass
class PlanningState:
    """What the planner last published for one deployment."""

    condition: Condition | None = None
    last_action: ScalingAction | None = None
    signature: tuple[Any, ...] = ()
    written_at: float = 0.0
    generation: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StatusWriter:
    """Applies the planner's status fields and posts its Events."""

    def __init__(
        self,
        rest: KubeRest,
        refresh_seconds: float = 10.0,
        clock: Callable[[], float] | None = None,
        mono: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.rest = rest
        self.events = EventRecorder(rest, dedupe_seconds=60.0, component=COMPONENT)
        self.refresh_seconds = refresh_seconds
        self.clock = clock or time.time
        self.mono = mono or time.monotonic
        self.states: dict[tuple[str, str], PlanningState] = {}

    def state(self, namespace: str, name: str, body: dict[str, Any] | None = None) -> PlanningState:
        """The publishing state of one deployment (seeded from its stored status after a restart)."""
        key = (namespace, name)
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = PlanningState()
            raw = ((body or {}).get("status") or {}).get("lastScalingAction")
            if raw:
                try:
                    st.last_action = ScalingAction.model_validate(raw)
                except ValueError:
                    st.last_action = None
        return st

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted deployment's state."""
        self.states.pop((namespace, name), None)

    def event(self, body: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """Post an Event on the InferenceDeployment, best effort."""
        self.events.record_best_effort(body, event_type, reason, message)

    def publish(
        self,
        body: dict[str, Any],
        mode: str,
        plan: Plan | None,
        observed_batch: int | None,
        condition: tuple[bool, str, str],
        force: bool = False,
    ) -> bool:
        """Apply the planner's status fields when they changed (or are due); returns whether it wrote."""
        meta = body["metadata"]
        st = self.state(meta["namespace"], meta["name"], body)
        now = datetime.fromtimestamp(int(self.clock()), UTC)
        generation = int(meta.get("generation", 0))
        status_ok, reason, message = condition
        conditions = set_condition(
            [st.condition] if st.condition else [],
            ConditionType.PLANNING,
            status_ok,
            reason,
            message[:1024],
            generation,
            now,
        )
        planning = conditions[0]
        numbers = plan.numbers if plan else Numbers()
        plan_status = self._plan_status(mode, plan, numbers, now)
        signature = (
            planning.status,
            planning.reason,
            planning.message,
            generation,
            plan_status.model_dump(exclude={"updated_at", "demand_rps", "capacity_rps", "p99_ms"}),
            plan.active_target if plan else None,
            observed_batch,
            st.last_action,
        )
        due = self.mono() - st.written_at >= self.refresh_seconds
        if not force and signature == st.signature and not due:
            return False
        doc_status: dict[str, Any] = {
            "conditions": [planning.to_wire()],
            "plan": plan_status.to_wire(),
        }
        if plan is not None:
            doc_status["forecast"] = ForecastSummary(recommended_replicas=plan.active_target).to_wire()
        if observed_batch is not None:
            doc_status["batchSize"] = observed_batch
        if st.last_action is not None:
            doc_status["lastScalingAction"] = st.last_action.to_wire()
        doc = {
            "apiVersion": f"{labels.API_GROUP}/{labels.API_VERSION}",
            "kind": labels.KIND,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": doc_status,
        }
        try:
            self.rest.apply(doc, subresource="status", field_manager=FIELD_MANAGER)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        st.condition, st.signature, st.written_at = planning, signature, self.mono()
        return True

    @staticmethod
    def _plan_status(mode: str, plan: Plan | None, n: Numbers, now: datetime) -> PlanStatus:
        return PlanStatus(
            mode=mode,
            serving_pods=n.serving,
            warm_pods=n.warm,
            cold_pods=n.cold,
            promoted_pods=n.promoted,
            unreachable_pods=n.unreachable,
            warm_replicas=plan.warm_target if plan else None,
            cold_replicas=plan.cold_target if plan else None,
            batch_size=n.batch_size if plan else None,
            desired_serving=n.desired,
            demand_rps=_dec(n.demand_rps) or "0",
            capacity_rps=_dec(n.capacity_rps),
            p99_ms=_dec(n.p99_ms),
            expected_extra_replicas=plan.expected_extra if plan else 0,
            reservations=[Reservation(node=node, gpus=g) for node, g in (plan.reservations if plan else ())],
            updated_at=now,
        )
