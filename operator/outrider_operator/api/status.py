"""The InferenceDeployment status: what the operator and the planner observed and decided.

Status is small and slow-moving: per-pool counts, the current batch size and GPUs, a summary of
the latest forecast and the last scaling action. Series live in Prometheus.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from outrider_operator.api.base import ApiModel

__all__ = [
    "Condition",
    "ConditionType",
    "ForecastSummary",
    "InferenceDeploymentStatus",
    "PoolStatus",
    "PoolsStatus",
    "ScalingAction",
    "ScalingSource",
]


class ConditionType(StrEnum):
    """Condition types an InferenceDeployment reports."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    FORECASTING = "Forecasting"


class ScalingSource(StrEnum):
    """What caused a scaling action."""

    PREDICTIVE = "predictive"
    REACTIVE = "reactive"
    MANUAL = "manual"
    FALLBACK = "fallback"


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
    """Summary of the latest load forecast for this deployment."""

    horizon_seconds: int = Field(ge=0, description="Forecast horizon.")
    p50_rps: str = Field(description="Median forecast mean request rate (requests/s, decimal string).")
    p90_rps: str = Field(description="90th percentile forecast mean request rate (decimal string).")
    p90_peak_rps: str = Field(description="90th percentile of the peak rate in the horizon (decimal string).")
    recommended_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the planner recommends."
    )
    generated_at: datetime = Field(description="When the forecast was made.")


class ScalingAction(ApiModel):
    """The last scaling action and how long it took."""

    time: datetime = Field(description="When the action was decided.")
    source: ScalingSource = Field(description="predictive, reactive, manual or fallback.")
    from_replicas: int = Field(ge=0, description="Active replicas before.")
    to_replicas: int = Field(ge=0, description="Active replicas after.")
    reason: str = Field(default="", max_length=1024, description="Why.")
    decision_seconds: str | None = Field(default=None, description="Time to decide (decimal seconds).")
    ready_seconds: str | None = Field(
        default=None, description="Time until the new capacity served (seconds)."
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
    batch_size: int | None = Field(default=None, ge=0, description="Batch size the runtime currently uses.")
    gpus_attached: int = Field(default=0, ge=0, description="GPUs requested by all pods of this deployment.")
    precision: str | None = Field(default=None, description="Precision policy in effect.")
    forecast: ForecastSummary | None = Field(default=None, description="Latest forecast summary.")
    last_scaling_action: ScalingAction | None = Field(default=None, description="Last scaling action.")
