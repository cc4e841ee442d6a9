"""The InferenceDeployment spec (``outrider.dev/v1alpha1``): what a user asks for.

The operator never writes the spec. Decisions (replica counts, resolved precision, forecasts)
go to status. Each cross-field rule exists twice on purpose: as CEL in the CRD, so the
apiserver rejects bad objects at ``kubectl apply``, and as a pydantic validator, so the
operator and the tests give the same answer without an apiserver.

The parts live in modules of their own and are re-exported here, so importers keep using
``outrider_operator.api.spec``: :mod:`~outrider_operator.api.serving` (model, engine, resources),
:mod:`~outrider_operator.api.scaling` (replicas, standby, scaling),
:mod:`~outrider_operator.api.execution` (sharding, precision, batching),
:mod:`~outrider_operator.api.monitoring` (metrics, alerts), :mod:`~outrider_operator.api.scheduling`
(node selector, tolerations) and :mod:`~outrider_operator.api.patterns` (string patterns).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from outrider_operator.api.base import ApiModel, cel
from outrider_operator.api.execution import (
    BatchingSpec,
    DevicePreference,
    DynamicBatching,
    Layer,
    PrecisionPolicy,
    PrecisionSpec,
    ShardGroup,
    ShardingSpec,
)
from outrider_operator.api.monitoring import AlertThresholds, MonitoredMetric, MonitoringSpec
from outrider_operator.api.scaling import ForecastSizing, ReplicasSpec, ScalingMode, ScalingSpec, StandbySpec
from outrider_operator.api.scheduling import PlacementSpec, Toleration, TolerationEffect, TolerationOperator
from outrider_operator.api.serving import (
    DEFAULT_IMAGE,
    Engine,
    ModelFormat,
    ModelSpec,
    ResourceSpec,
    RuntimeSpec,
    SecretReference,
)

__all__ = [
    "DEFAULT_IMAGE",
    "AlertThresholds",
    "BatchingSpec",
    "DevicePreference",
    "DynamicBatching",
    "Engine",
    "ForecastSizing",
    "InferenceDeploymentSpec",
    "Layer",
    "ModelFormat",
    "ModelSpec",
    "MonitoredMetric",
    "MonitoringSpec",
    "PlacementSpec",
    "PrecisionPolicy",
    "PrecisionSpec",
    "ReplicasSpec",
    "ResourceSpec",
    "RuntimeSpec",
    "ScalingMode",
    "ScalingSpec",
    "SecretReference",
    "ShardGroup",
    "ShardingSpec",
    "StandbySpec",
    "Toleration",
    "TolerationEffect",
    "TolerationOperator",
]


class InferenceDeploymentSpec(ApiModel):
    """Desired state of an InferenceDeployment."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            (
                "self.replicas.min > 0 || self.standby.cold + self.standby.warm > 0",
                "replicas.min 0 needs a warm or cold standby pool to scale up from",
                ".replicas.min",
            ),
            (
                "self.runtime.gpusPerReplica == 0 || size(self.sharding.groups) == 0 || "
                "self.sharding.groups.map(g, g.gpus).sum() <= self.runtime.gpusPerReplica",
                "the shard groups need more GPUs than runtime.gpusPerReplica",
                ".sharding.groups",
            ),
            (
                "self.scaling.mode != 'reactive' || has(self.replicas.target)",
                "reactive mode needs replicas.target: the /scale subresource (kubectl scale, HPA, KEDA) "
                "reads it and cannot answer without it",
                ".replicas",
            ),
            (
                "self.runtime.engine != 'outrider' || self.model.format == 'onnx'",
                "the outrider engine serves ONNX models: use model.format onnx or runtime.engine triton",
                ".model.format",
            ),
        )
    }

    model: ModelSpec = Field(description="The model to serve.")
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="Serving engine and resources.")
    replicas: ReplicasSpec = Field(default_factory=ReplicasSpec, description="Active replica bounds.")
    standby: StandbySpec = Field(default_factory=StandbySpec, description="Warm and cold standby pools.")
    sharding: ShardingSpec = Field(default_factory=ShardingSpec, description="Model partitioning.")
    precision: PrecisionSpec = Field(default_factory=PrecisionSpec, description="Execution precision.")
    batching: BatchingSpec = Field(default_factory=BatchingSpec, description="Dynamic batching.")
    scaling: ScalingSpec = Field(default_factory=ScalingSpec, description="Scaling behaviour.")
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec, description="Metrics and alerts.")
    placement: PlacementSpec = Field(default_factory=PlacementSpec, description="Scheduling overrides.")

    @model_validator(mode="after")
    def _cross_field(self) -> InferenceDeploymentSpec:
        if self.replicas.min == 0 and self.standby.cold + self.standby.warm == 0:
            raise ValueError("replicas.min 0 needs a warm or cold standby pool to scale up from")
        if (
            str(self.runtime.engine) == Engine.OUTRIDER.value
            and str(self.model.format) != ModelFormat.ONNX.value
        ):
            raise ValueError(
                "the outrider engine serves ONNX models: use model.format onnx or runtime.engine triton"
            )
        if str(self.scaling.mode) == ScalingMode.REACTIVE.value and self.replicas.target is None:
            raise ValueError(
                "reactive mode needs replicas.target: the /scale subresource (kubectl scale, HPA, KEDA) "
                "reads it and cannot answer without it"
            )
        gpus = self.sharding.total_gpus()
        if (
            self.runtime.gpus_per_replica > 0
            and self.sharding.groups
            and gpus > self.runtime.gpus_per_replica
        ):
            raise ValueError(
                f"the shard groups need {gpus} GPUs but runtime.gpusPerReplica is "
                f"{self.runtime.gpus_per_replica}"
            )
        return self
