"""Compute the InferenceDeployment status from what was observed of its children.

All conditions are recomputed on every pass; a condition keeps its ``lastTransitionTime``
while its status is unchanged. Ready describes the current generation only: it is True when
the active pool's Deployment has observed its latest template and every desired replica is
updated and ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from outrider_operator.api import labels
from outrider_operator.api.spec import InferenceDeploymentSpec
from outrider_operator.api.status import (
    Condition,
    ConditionType,
    InferenceDeploymentStatus,
    PoolsStatus,
    PoolStatus,
)
from outrider_operator.reconcile.semantics import SpecProblem
from outrider_operator.reconcile.troubles import Trouble

__all__ = ["ObservedPool", "compute_status", "invalid_spec_status", "observe_deployment", "set_condition"]

REASON_INVALID_SPEC = "InvalidSpec"
REASON_APPLY_FAILED = "ApplyFailed"
"""The apiserver refused a rendered child (e.g. a name that is not a valid Service name)."""
_CONDITION_ORDER = {t.value: i for i, t in enumerate(ConditionType)}


@dataclass(frozen=True)
class ObservedPool:
    """What a pool's Deployment reports."""

    exists: bool
    desired: int = 0
    total: int = 0
    """All pods of the Deployment, old template included (``status.replicas``)."""
    ready: int = 0
    updated: int = 0
    available: int = 0
    generation: int = 0
    observed_generation: int = 0

    @property
    def rolled_out(self) -> bool:
        """True when the Deployment has seen its spec, runs only the new template, and is available.

        Ready pods of the old template do not count: mid-rollout ``ready >= desired`` can hold while
        old pods still serve, so the old pods must be gone (``total == updated``) as well.
        """
        return (
            self.exists
            and self.observed_generation >= self.generation
            and self.updated == self.desired
            and self.total == self.updated
            and self.ready >= self.desired
            and self.available >= self.desired
        )


def observe_deployment(obj: dict[str, Any] | None) -> ObservedPool:
    """Summarise a Deployment object (or None when it does not exist)."""
    if obj is None:
        return ObservedPool(exists=False)
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    return ObservedPool(
        exists=True,
        desired=int(spec.get("replicas", 0) or 0),
        total=int(st.get("replicas", 0) or 0),
        ready=int(st.get("readyReplicas", 0) or 0),
        updated=int(st.get("updatedReplicas", 0) or 0),
        available=int(st.get("availableReplicas", 0) or 0),
        generation=int(meta.get("generation", 0) or 0),
        observed_generation=int(st.get("observedGeneration", 0) or 0),
    )


def set_condition(
    conditions: list[Condition],
    ctype: ConditionType,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Return ``conditions`` with ``ctype`` set, keeping lastTransitionTime when status is unchanged.

    The list comes back in ConditionType order, so every writer of it produces the same order.
    """
    text = "True" if status else "False"
    previous = next((c for c in conditions if c.type == ctype.value), None)
    transition = previous.last_transition_time if previous is not None and previous.status == text else now
    new = Condition(
        type=ctype.value,
        status=text,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    merged = [c for c in conditions if c.type != ctype.value] + [new]
    return sorted(merged, key=lambda c: _CONDITION_ORDER.get(c.type, len(_CONDITION_ORDER)))


def _selector(name: str) -> str:
    return f"{labels.LABEL_DEPLOYMENT}={name},{labels.LABEL_POOL}={labels.POOL_ACTIVE}"


def compute_status(
    name: str,
    spec: InferenceDeploymentSpec,
    generation: int,
    previous: InferenceDeploymentStatus,
    pools: dict[str, ObservedPool],
    now: datetime,
    desired: dict[str, int] | None = None,
    image: str | None = None,
    trouble: Trouble | None = None,
) -> InferenceDeploymentStatus:
    """Return the new status for a successfully applied spec.

    ``desired`` holds the pool sizes the operator decided (what it applied); pool sizes read
    back from the Deployments are used only when it is not given. ``image``: what the pods run.
    ``trouble``: why pods do not become ready, when their objects say (see :mod:`.troubles`);
    it becomes the reason of ``Ready`` (active pool) or ``Progressing`` (any pool).
    """
    decided = {pool: obs.desired for pool, obs in pools.items()}
    decided.update(desired or {})
    active = pools[labels.POOL_ACTIVE]
    warm = pools[labels.POOL_WARM]
    cold = pools[labels.POOL_COLD]
    conditions = list(previous.conditions)
    missing = [pool for pool, obs in pools.items() if not obs.exists]
    if missing:
        ready, ready_reason = False, "ChildrenMissing"
        ready_msg = f"Deployments for pools {', '.join(missing)} do not exist yet"
    elif not active.rolled_out:
        ready, ready_reason = False, "PodsNotReady"
        ready_msg = f"{active.ready}/{active.desired} active pods ready, {active.updated} updated"
        if trouble is not None:
            ready_reason, ready_msg = trouble.reason, f"{ready_msg}: {trouble.message}"
    else:
        ready, ready_reason = True, "Available"
        ready_msg = f"{active.ready} active pods serving"
    conditions = set_condition(
        conditions, ConditionType.READY, ready, ready_reason, ready_msg, generation, now
    )
    progressing = not all(p.rolled_out for p in pools.values())
    p_reason = "RollingOut" if progressing else "Complete"
    p_msg = "pools are being created, updated or scaled" if progressing else "all pools match the spec"
    if progressing and trouble is not None:
        p_reason, p_msg = trouble.reason, f"{p_msg}, stuck: {trouble.message}"
    conditions = set_condition(
        conditions, ConditionType.PROGRESSING, progressing, p_reason, p_msg, generation, now
    )
    short = [p for p, obs in pools.items() if obs.exists and obs.ready < obs.desired]
    if active.exists and active.ready < spec.replicas.min and active.observed_generation >= active.generation:
        degraded, d_reason = True, "BelowMinimum"
        d_msg = f"{active.ready} active pods ready, fewer than replicas.min={spec.replicas.min}"
    elif short and not progressing:
        degraded, d_reason, d_msg = True, "PoolsShort", f"pools below their size: {', '.join(short)}"
    else:
        degraded, d_reason, d_msg = False, "AsExpected", "all pools are at their size"
    conditions = set_condition(conditions, ConditionType.DEGRADED, degraded, d_reason, d_msg, generation, now)
    gpus = spec.runtime.gpus_per_replica * sum(decided.values())
    return previous.model_copy(
        update={
            "observed_generation": generation,
            "conditions": conditions,
            "replicas": decided[labels.POOL_ACTIVE],
            "ready_replicas": active.ready,
            "selector": _selector(name),
            "pools": PoolsStatus(
                active=PoolStatus(
                    desired=decided[labels.POOL_ACTIVE], ready=active.ready, updated=active.updated
                ),
                warm=PoolStatus(desired=decided[labels.POOL_WARM], ready=warm.ready, updated=warm.updated),
                cold=PoolStatus(desired=decided[labels.POOL_COLD], ready=cold.ready, updated=cold.updated),
            ),
            "gpus_attached": gpus,
            "precision": str(spec.precision.policy),
            "image": image or spec.runtime.image,
        }
    )


def invalid_spec_status(
    previous: InferenceDeploymentStatus,
    problems: list[SpecProblem],
    generation: int,
    now: datetime,
    reason: str = REASON_INVALID_SPEC,
) -> InferenceDeploymentStatus:
    """Status for a spec that cannot be served: Ready=False/``reason`` naming the fields; counts kept."""
    message = "; ".join(str(p) for p in problems)[:1024]
    conditions = set_condition(
        list(previous.conditions), ConditionType.READY, False, reason, message, generation, now
    )
    conditions = set_condition(
        conditions,
        ConditionType.PROGRESSING,
        False,
        reason,
        "waiting for a valid spec",
        generation,
        now,
    )
    conditions = set_condition(conditions, ConditionType.DEGRADED, True, reason, message, generation, now)
    return previous.model_copy(update={"observed_generation": generation, "conditions": conditions})
