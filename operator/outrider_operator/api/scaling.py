"""How many replicas serve and who decides: active replica bounds, standby pools and scaling behaviour."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from outrider_operator.api.base import ApiModel, cel

__all__ = [
    "ForecastSizing",
    "ReplicasSpec",
    "ScalingMode",
    "ScalingSpec",
    "StandbySpec",
]


class ScalingMode(StrEnum):
    """Who acts on scaling decisions.

    ``predictive``: the planner scales ahead of forecast load. ``reactive``: the replica count
    comes from ``/scale`` (HPA, KEDA, ``kubectl scale``). ``advisory``: decisions are computed
    and published in status and metrics but never acted on.
    """

    PREDICTIVE = "predictive"
    REACTIVE = "reactive"
    ADVISORY = "advisory"


class ForecastSizing(StrEnum):
    """Which forecast the planner sizes serving pods ahead for.

    ``peak``: the p90 of the highest rate within the horizon, so that spikes shorter than the
    horizon (timers, bursts) find their pods already serving. ``mean``: the p90 of the horizon's
    mean rate; fewer GPUs on smooth traffic, while spikes are met by observed load, the batch raise
    and the standby pools as they come.
    """

    PEAK = "peak"
    MEAN = "mean"


class ReplicasSpec(ApiModel):
    """Bounds on the number of serving (active) replicas."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(("self.min <= self.max", "replicas.min must be <= replicas.max"))
    }

    min: int = Field(default=1, ge=0, le=1000, description="Fewest active replicas.")
    max: int = Field(default=4, ge=1, le=1000, description="Most active replicas.")
    target: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description=(
            "Desired active replicas, written through the /scale subresource (kubectl scale, HPA, KEDA). "
            "Required in reactive mode, where it is honoured clamped to [min, max]; in predictive and "
            "advisory modes the planner decides and this value is ignored."
        ),
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> ReplicasSpec:
        if self.min > self.max:
            raise ValueError("replicas.min must be <= replicas.max")
        return self


class StandbySpec(ApiModel):
    """Standby pools kept beside the active replicas to absorb surges."""

    warm: int = Field(default=0, ge=0, le=64, description="Pods with the model loaded, not serving.")
    cold: int = Field(
        default=0, ge=0, le=64, description="Pods scheduled with weights cached but nothing loaded."
    )


class ScalingSpec(ApiModel):
    """How replica counts are decided."""

    mode: ScalingMode = Field(default=ScalingMode.PREDICTIVE, description="predictive, reactive or advisory.")
    forecast_horizon_seconds: int = Field(
        default=300, ge=30, le=3600, description="How far ahead the load forecast looks."
    )
    reaction_deadline_seconds: int = Field(
        default=10, ge=1, le=600, description="Deadline from a surge decision to extra capacity serving."
    )
    target_latency_p99_ms: int = Field(
        default=200, ge=1, le=600000, description="p99 latency the planner sizes capacity for."
    )
    target_utilization_percent: int = Field(
        default=80,
        ge=10,
        le=100,
        description=(
            "How busy the planner lets a serving replica be, as a percentage of the throughput its "
            "capacity model predicts: observed load is divided by this share of a replica's capacity at "
            "the surge batch size, the forecast peak by this share at the spec's batch size, and a p99 "
            "miss below it lowers the model's capacity. Higher holds fewer GPUs and less headroom for "
            "load the forecast misses (compare HPA's averageUtilization, Knative's target utilisation)."
        ),
    )
    forecast_sizing: ForecastSizing = Field(
        default=ForecastSizing.PEAK,
        description=(
            "Which forecast serving pods are sized ahead for: peak (the p90 of the horizon's highest "
            "rate: room for spikes shorter than the horizon all the time) or mean (the p90 of the "
            "horizon's mean rate: fewer GPUs on smooth traffic; spikes are met as they come, by "
            "observed load, the batch raise and the standby pools). Either is divided by "
            "targetUtilizationPercent of a replica's capacity at the spec's batch size. Where the "
            "forecast has no mean, the peak is used."
        ),
    )
    scale_down_stabilization_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description=(
            "Active replicas are removed only after the recommendation has stayed lower for this long. "
            "It covers every downward step of the active pool (N to N-1 and to min); standby pools are "
            "kept at their spec sizes at all times."
        ),
    )
