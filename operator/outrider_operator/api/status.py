"""The InferenceDeployment status: what the operator and the planner observed and decided.

Status is small and slow-moving: per-pool counts, the current batch size and GPUs, a summary of
the latest forecast and the last scaling action. Series live in Prometheus.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError

from outrider_operator.api.base import ApiModel

__all__ = [
    "ActionKind",
    "ActionTrigger",
    "Condition",
    "ConditionType",
    "ForecastSummary",
    "InferenceDeploymentStatus",
    "PlanStatus",
    "PoolStatus",
    "PoolsStatus",
    "Reservation",
    "ScalingAction",
    "ScalingSource",
    "parse_status",
]


class ConditionType(StrEnum):
    """Condition types an InferenceDeployment reports."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    FORECASTING = "Forecasting"
    PLANNING = "Planning"


class ScalingSource(StrEnum):
    """What caused a scaling action."""

    PREDICTIVE = "predictive"
    REACTIVE = "reactive"
    MANUAL = "manual"
    FALLBACK = "fallback"


class ActionKind(StrEnum):
    """What a scaling action did (or, in advisory mode, would have done)."""

    PROMOTE_WARM = "PromoteWarm"
    LOAD_COLD = "LoadCold"
    ADD_REPLICAS = "AddReplicas"
    RESIZE_BATCH = "ResizeBatch"
    REFILL_STANDBY = "RefillStandby"
    DEMOTE = "Demote"
    UNLOAD = "Unload"
    REMOVE_REPLICAS = "RemoveReplicas"


class ActionTrigger(StrEnum):
    """What made the planner act."""

    SURGE = "Surge"
    LATENCY = "Latency"
    FORECAST = "Forecast"
    LOAD_DROP = "LoadDrop"
    RECOVERY = "Recovery"


class Condition(ApiModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: str = Field(pattern=r"^(True|False|Unknown)$", description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(default=None, ge=0, description="Generation this was set for.")


class PoolStatus(ApiModel):
    """Counts for one pool of pods."""

    desired: int = Field(default=0, ge=0, description="Pods the operator wants in this pool.")
    ready: int = Field(default=0, ge=0, description="Pods of this pool that are ready.")
    updated: int = Field(default=0, ge=0, description="Pods running the current template.")


class PoolsStatus(ApiModel):
    """Counts per pool."""

    active: PoolStatus = Field(default_factory=PoolStatus, description="Serving pods.")
    warm: PoolStatus = Field(default_factory=PoolStatus, description="Warm standby pods (model loaded).")
    cold: PoolStatus = Field(default_factory=PoolStatus, description="Cold standby pods (weights cached).")


class ForecastSummary(ApiModel):
    """Summary of the latest load forecast for this deployment.

    Two writers share it, each owning its own fields through server-side apply: the forecaster
    writes the forecast numbers and ``generatedAt``, the planner writes ``recommendedReplicas``.
    Every field is optional so that either can write before the other has.
    """

    horizon_seconds: int | None = Field(default=None, ge=0, description="Forecast horizon (forecaster).")
    p50_rps: str | None = Field(
        default=None, description="Median forecast mean request rate (requests/s, decimal string)."
    )
    p90_rps: str | None = Field(
        default=None, description="90th percentile forecast mean request rate (decimal string)."
    )
    p90_peak_rps: str | None = Field(
        default=None, description="90th percentile of the peak rate in the horizon (decimal string)."
    )
    recommended_replicas: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Size of the active pool the planner wants (planner); the operator applies it in predictive mode."
        ),
    )
    generated_at: datetime | None = Field(
        default=None, description="When the forecast was made (forecaster)."
    )


class Reservation(ApiModel):
    """GPUs the planner holds back on one node for this deployment's next replicas."""

    node: str = Field(max_length=253, description="Node name.")
    gpus: int = Field(ge=0, description="GPUs to keep free there.")


class PlanStatus(ApiModel):
    """What the planner decided and saw (written only by the planner, field manager outrider-planner)."""

    mode: str = Field(description="Scaling mode the plan was made in: predictive, advisory or reactive.")
    serving_pods: int = Field(
        default=0, ge=0, description="Pods serving traffic now (routed by the Service)."
    )
    warm_pods: int = Field(default=0, ge=0, description="Standby pods with the model loaded.")
    cold_pods: int = Field(default=0, ge=0, description="Standby pods with nothing loaded.")
    promoted_pods: int = Field(default=0, ge=0, description="Standby-pool pods promoted to serving.")
    unreachable_pods: int = Field(
        default=0, ge=0, description="Pods whose runtime admin API did not answer (skipped)."
    )
    warm_replicas: int | None = Field(
        default=None, ge=0, description="Size of the warm pool's Deployment the planner wants (refills)."
    )
    cold_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Size of the cold pool's Deployment the planner wants (refills, and pods kept for "
        "load the forecast missed).",
    )
    batch_size: int | None = Field(
        default=None, ge=1, description="Batch size the planner set on serving pods (or would set)."
    )
    desired_serving: int = Field(default=0, ge=0, description="Serving pods the planner wants.")
    demand_rps: str = Field(default="0", description="Request rate arriving at serving pods (decimal).")
    capacity_rps: str | None = Field(
        default=None,
        description=(
            "Requests/s one replica serves within the p99 target at scaling.targetUtilizationPercent "
            "(capacity model)."
        ),
    )
    p99_ms: str | None = Field(default=None, description="Worst serving pod's recent p99 latency, ms.")
    expected_extra_replicas: int = Field(
        default=0,
        ge=0,
        description="Replicas the forecast says will be added soon (the extender keeps room).",
    )
    reservations: list[Reservation] = Field(
        default_factory=list,
        max_length=64,
        description="Nodes where GPUs are held back for those replicas.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["node"]},
    )
    updated_at: datetime = Field(description="When the planner last wrote this.")


class ScalingAction(ApiModel):
    """The last scaling action and how long it took."""

    time: datetime = Field(description="When the action was decided.")
    source: ScalingSource = Field(description="predictive, reactive, manual or fallback.")
    action: ActionKind | None = Field(default=None, description="What was done (PromoteWarm, ...).")
    trigger: ActionTrigger | None = Field(default=None, description="What caused it (Surge, Forecast, ...).")
    advisory: bool = Field(default=False, description="Computed and published only (advisory mode).")
    pods: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Pods the action touched.",
    )
    from_replicas: int = Field(ge=0, description="Serving replicas before.")
    to_replicas: int = Field(ge=0, description="Serving replicas the action aims for.")
    reason: str = Field(default="", max_length=1024, description="Why, with the numbers.")
    decision_seconds: str | None = Field(
        default=None, description="From the trigger (first overloaded sample) to the decision (seconds)."
    )
    ready_seconds: str | None = Field(
        default=None,
        description=(
            "From the trigger until the new capacity served: runtime serving and the pod a ready "
            "endpoint of the Service (seconds)."
        ),
    )


class InferenceDeploymentStatus(ApiModel):
    """Observed state of an InferenceDeployment."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    observed_generation: int | None = Field(default=None, ge=0, description="Last generation reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded and Forecasting.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int = Field(default=0, ge=0, description="Active replicas (the /scale subresource reads this).")
    ready_replicas: int = Field(default=0, ge=0, description="Active replicas that are ready.")
    selector: str = Field(default="", description="Label selector of the active pods, for /scale.")
    pools: PoolsStatus = Field(default_factory=PoolsStatus, description="Counts per pool.")
    batch_size: int | None = Field(
        default=None, ge=0, description="Batch size the serving pods use now (observed by the planner)."
    )
    gpus_attached: int = Field(default=0, ge=0, description="GPUs requested by all pods of this deployment.")
    precision: str | None = Field(default=None, description="Precision policy in effect.")
    image: str | None = Field(
        default=None, description="Container image the serving pods run (spec.runtime.image or the default)."
    )
    forecast: ForecastSummary | None = Field(default=None, description="Latest forecast summary.")
    plan: PlanStatus | None = Field(default=None, description="The planner's current plan and observations.")
    last_scaling_action: ScalingAction | None = Field(default=None, description="Last scaling action.")


def parse_status(raw: dict[str, Any] | None) -> InferenceDeploymentStatus:
    """Parse a stored status leniently: an unreadable one (another version, hand edits) starts fresh.

    Every writer (operator, forecaster, planner) reads the whole status through this, so a field
    one of them cannot parse never stops the others: what validates is kept, the rest dropped.
    """
    if not raw:
        return InferenceDeploymentStatus()
    try:
        return InferenceDeploymentStatus.model_validate(raw)
    except ValidationError:
        pass
    kept: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            InferenceDeploymentStatus.model_validate({key: value})
        except ValidationError:
            continue
        kept[key] = value
    try:
        return InferenceDeploymentStatus.model_validate(kept)
    except ValidationError:
        return InferenceDeploymentStatus()
