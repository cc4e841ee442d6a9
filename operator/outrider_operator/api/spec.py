"""The InferenceDeployment spec (``outrider.dev/v1alpha1``): what a user asks for.

The operator never writes the spec. Decisions (replica counts, resolved precision, forecasts)
go to status. Each cross-field rule exists twice on purpose: as CEL in the CRD, so the
apiserver rejects bad objects at ``kubectl apply``, and as a pydantic validator, so the
operator and the tests give the same answer without an apiserver.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from outrider_operator.api.base import ApiModel, cel

__all__ = [
    "AlertThresholds",
    "BatchingSpec",
    "DevicePreference",
    "DynamicBatching",
    "Engine",
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

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CPU_QUANTITY = r"^([0-9]{1,4}(\.[0-9]{1,3})?|[0-9]{1,7}m)$"
"""Cores (at most 9999, three decimals) or millicores: bounded, so the apiserver never rounds it."""
MEMORY_QUANTITY = r"^([0-9]{1,15}|[0-9]{1,5}(\.[0-9]{1,3})?(k|M|G|T|Ki|Mi|Gi|Ti))$"
"""Bytes, or at most 99999 of a decimal or binary unit up to T/Ti: bounded, never rounded."""
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
"""A Kubernetes label value (at most 63 characters, set by ``max_length``)."""
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
"""A label key or taint key: an optional DNS-subdomain prefix and a name of at most 63 characters."""
IMAGE_REF = r"^[^\s]+$"
"""A container image reference: no whitespace (the kubelet refuses such an image only at pull)."""
DECIMAL_0_1 = r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$"
MODEL_URI = r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?|s3://[^/\s]+(/\S*)?|hf://[^/\s]+/[^/\s]+(@\S+)?|/\S*|builtin:[a-z0-9.-]+)$"

DEFAULT_IMAGE = "ghcr.io/outrider-dev/outrider-runtime:0.1.0"
"""Image used for serving pods when ``spec.runtime.image`` is not set: the Dockerfile's ``runtime``
target (the model server without the control-plane packages)."""


class ModelFormat(StrEnum):
    """Serialisation format of the model's weights."""

    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TENSORRT_PLAN = "tensorrt_plan"


class Engine(StrEnum):
    """Which model server runs in the serving pods."""

    OUTRIDER = "outrider"
    TRITON = "triton"


class Layer(StrEnum):
    """Layer families a shard group can hold."""

    EMBEDDINGS = "embeddings"
    ATTENTION = "attention"
    FFN = "ffn"
    HEAD = "head"
    ALL = "all"


class DevicePreference(StrEnum):
    """What a shard group's layers are bound by, so placement picks a fitting device."""

    MEMORY_BANDWIDTH = "memoryBandwidth"
    COMPUTE = "compute"


class PrecisionPolicy(StrEnum):
    """Numeric precision of execution; ``adaptive`` chooses per request."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    ADAPTIVE = "adaptive"


class DynamicBatching(StrEnum):
    """Whether requests are combined into batches by the runtime."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"


class ScalingMode(StrEnum):
    """Who acts on scaling decisions.

    ``predictive``: the planner scales ahead of forecast load. ``reactive``: the replica count
    comes from ``/scale`` (HPA, KEDA, ``kubectl scale``). ``advisory``: decisions are computed
    and published in status and metrics but never acted on.
    """

    PREDICTIVE = "predictive"
    REACTIVE = "reactive"
    ADVISORY = "advisory"


class MonitoredMetric(StrEnum):
    """Metrics the serving pods export for this deployment."""

    LATENCY_P99 = "latency_p99"
    THROUGHPUT = "throughput"
    GPU_UTILIZATION = "gpu_utilization"
    QUEUE_DEPTH = "queue_depth"
    BATCH_SIZE = "batch_size"


class SecretReference(ApiModel):
    """A reference to a Secret in the InferenceDeployment's namespace."""

    name: str = Field(pattern=DNS_LABEL, max_length=253, description="Name of the Secret.")


class ModelSpec(ApiModel):
    """Which model to serve and where its weights are."""

    name: str = Field(
        pattern=DNS_LABEL,
        max_length=63,
        description="Model name as served over the V2 protocol (a DNS label, e.g. minilm).",
    )
    uri: str = Field(
        pattern=MODEL_URI,
        max_length=1024,
        description=(
            "Where the weights are: pvc://CLAIM/path (the claim is mounted read-only in serving pods), "
            "an absolute path inside the image, or builtin:NAME for a model shipped with the runtime. "
            "s3://bucket/key and hf://org/repo[@revision] pass the schema but are reported as "
            "InvalidSpec until the fetch initContainer exists."
        ),
    )
    format: ModelFormat = Field(default=ModelFormat.ONNX, description="Format of the model files.")
    storage_secret_ref: SecretReference | None = Field(
        default=None, description="Secret with credentials for s3:// or hf:// (reserved; not used yet)."
    )


class ResourceSpec(ApiModel):
    """CPU and memory for each serving container, as Kubernetes quantities."""

    cpu: str = Field(
        default="1",
        pattern=CPU_QUANTITY,
        max_length=16,
        description="CPU request and limit per replica: cores (at most 9999, e.g. 2 or 0.5) or millicores.",
    )
    memory: str = Field(
        default="2Gi",
        pattern=MEMORY_QUANTITY,
        max_length=16,
        description="Memory request and limit per replica: bytes, or at most 99999 k/M/G/T or Ki/Mi/Gi/Ti.",
    )


class RuntimeSpec(ApiModel):
    """The serving engine and what each replica needs."""

    engine: Engine = Field(default=Engine.OUTRIDER, description="Model server: outrider (ours) or triton.")
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=IMAGE_REF,
        description=(
            "Container image of the model server. Unset: the operator's runtime image (its release's, "
            "or its --runtime-image), so an operator upgrade moves the deployments that do not pin one; "
            "status.image shows the image in use."
        ),
    )
    resources: ResourceSpec = Field(default_factory=ResourceSpec, description="CPU and memory per replica.")
    gpus_per_replica: int = Field(
        default=1, ge=0, le=16, description="nvidia.com/gpu requested by each replica (0 = CPU only)."
    )
    min_gpu_memory: str | None = Field(
        default=None,
        pattern=MEMORY_QUANTITY,
        max_length=16,
        description="Minimum free memory on each GPU, e.g. 16Gi (optional).",
    )
    gpu_products: list[Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE)]] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Preferred GPU products in order, e.g. [H100, A100]: preferred node affinity on the node "
            "agent's outrider.dev/gpu-product label (earlier entries weigh more; other nodes stay eligible)."
        ),
    )
    gpu_architectures: list[Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE)]] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Preferred GPU architectures in order, e.g. [hopper, ampere]: preferred node affinity on the "
            "outrider.dev/gpu-architecture label."
        ),
    )
    max_workers: int = Field(default=4, ge=1, le=64, description="Request worker threads per replica.")


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


class ShardGroup(ApiModel):
    """A group of layers executed together on one device."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            (
                "!self.layers.exists(l, l == 'all') || size(self.layers) == 1",
                "'all' must be the only layer of its shard group",
                ".layers",
            ),
            ("self.layers.all(l, self.layers.exists_one(m, m == l))", "layers must not repeat", ".layers"),
        )
    }

    name: str = Field(pattern=DNS_LABEL, max_length=63, description="Shard group name, unique in the list.")
    layers: list[Layer] = Field(min_length=1, max_length=5, description="Layer families this group holds.")
    device_preference: DevicePreference = Field(
        default=DevicePreference.COMPUTE,
        description="memoryBandwidth (e.g. attention) or compute (e.g. FFN).",
    )
    max_batch_size: int = Field(default=32, ge=1, le=4096, description="Largest micro-batch this shard runs.")
    gpus: int = Field(default=1, ge=1, le=8, description="GPUs this shard group occupies in each replica.")

    @model_validator(mode="after")
    def _layers_valid(self) -> ShardGroup:
        if Layer.ALL.value in map(str, self.layers) and len(self.layers) != 1:
            raise ValueError("'all' must be the only layer of its shard group")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError("layers must not repeat")
        return self


class ShardingSpec(ApiModel):
    """How one replica's model is partitioned across devices, in pipeline order."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            (
                "self.groups.all(g, g.layers.all(l, "
                "self.groups.filter(h, h.layers.exists(m, m == l)).size() == 1))",
                "each layer family may appear in only one shard group",
                ".groups",
            ),
            (
                "!self.groups.exists(g, g.layers.exists(l, l == 'all')) || size(self.groups) == 1",
                "a shard group holding 'all' layers must be the only group",
                ".groups",
            ),
        )
    }

    groups: list[ShardGroup] = Field(
        default_factory=list,
        max_length=8,
        description="Ordered shard groups; empty means one group holding the whole model.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _layers_disjoint(self) -> ShardingSpec:
        names: set[str] = set()
        holder: dict[str, str] = {}
        for group in self.groups:
            if group.name in names:
                raise ValueError(f"shard group name {group.name!r} is used twice")
            names.add(group.name)
            for layer in map(str, group.layers):
                if layer in holder:
                    raise ValueError(
                        f"layer {layer!r} is in shard groups {holder[layer]!r} and {group.name!r}; "
                        "each layer family may appear in only one group"
                    )
                holder[layer] = group.name
        if Layer.ALL.value in holder and len(self.groups) > 1:
            raise ValueError("a shard group holding 'all' layers must be the only group")
        return self

    def total_gpus(self) -> int:
        """GPUs one replica needs for all its shard groups."""
        return sum(g.gpus for g in self.groups)


class PrecisionSpec(ApiModel):
    """Numeric precision of execution."""

    policy: PrecisionPolicy = Field(
        default=PrecisionPolicy.FP32, description="fp32, fp16, bf16, int8 or adaptive."
    )
    accuracy_floor: str = Field(
        default="0.99",
        pattern=DECIMAL_0_1,
        max_length=6,
        description=(
            "For adaptive: the lowest acceptable agreement with fp32 (mean cosine similarity of outputs "
            "on the calibration set), a decimal string between 0 and 1."
        ),
    )


class BatchingSpec(ApiModel):
    """Dynamic batching in the runtime (resizable live by the planner)."""

    dynamic: DynamicBatching = Field(default=DynamicBatching.ENABLED, description="Enabled or Disabled.")
    max_batch_size: int = Field(default=16, ge=1, le=4096, description="Largest batch the runtime forms.")
    min_batch_delay_ms: int = Field(
        default=10, ge=0, le=10000, description="How long the first request of a batch may wait for others."
    )
    lookahead_window: int = Field(
        default=3, ge=0, le=64, description="Queued batches the batcher looks ahead to size the next batch."
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


class AlertThresholds(ApiModel):
    """The deployment's own alert thresholds.

    The operator exports them as ``outrider_operator_alert_*`` gauges per deployment and the shipped
    alert rules compare each deployment's latency, error ratio and GPU utilisation against its own.
    """

    latency_p99_ms: int = Field(
        default=200, ge=1, le=600000, description="Alert when p99 latency exceeds this."
    )
    error_rate_percent: int = Field(
        default=5, ge=0, le=100, description="Alert when the failed request share exceeds this percentage."
    )
    gpu_utilization_percent: int = Field(
        default=95, ge=0, le=100, description="Alert when GPU utilisation stays above this percentage."
    )


class MonitoringSpec(ApiModel):
    """What the serving pods export and when to alert."""

    metrics: list[MonitoredMetric] = Field(
        default_factory=lambda: [
            MonitoredMetric.LATENCY_P99,
            MonitoredMetric.THROUGHPUT,
            MonitoredMetric.GPU_UTILIZATION,
        ],
        max_length=5,
        description="Metrics to export.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    alerts: AlertThresholds = Field(default_factory=AlertThresholds, description="Alert thresholds.")


class TolerationOperator(StrEnum):
    """How a toleration matches a taint's value."""

    EXISTS = "Exists"
    EQUAL = "Equal"


class TolerationEffect(StrEnum):
    """The taint effect a toleration matches (empty: every effect)."""

    ALL = ""
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """A core/v1 Toleration, with the checks the apiserver applies to a pod's."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            (
                "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "a toleration with operator Exists must not have a value",
                ".value",
            ),
            (
                "(has(self.key) && self.key != '') || self.operator == 'Exists'",
                "a toleration without a key must use operator Exists",
                ".operator",
            ),
            (
                "!has(self.tolerationSeconds) || self.effect == 'NoExecute'",
                "tolerationSeconds applies only to effect NoExecute",
                ".tolerationSeconds",
            ),
        )
    }

    key: str = Field(
        default="",
        max_length=317,
        pattern=r"^$|" + QUALIFIED_NAME,
        description="Taint key to match (empty with operator Exists: every taint).",
    )
    operator: TolerationOperator = Field(default=TolerationOperator.EQUAL, description="Exists or Equal.")
    value: str = Field(
        default="", max_length=63, pattern=LABEL_VALUE, description="Taint value (Equal only)."
    )
    effect: TolerationEffect = Field(
        default=TolerationEffect.ALL, description="NoSchedule, PreferNoSchedule, NoExecute, or empty for all."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        le=31_536_000,
        description="With NoExecute: how long the pod stays bound after the taint appears (at most a year).",
    )

    def to_pod(self) -> dict[str, Any]:
        """The toleration as a pod spec holds it (empty strings left out, as the apiserver stores it)."""
        return {k: v for k, v in self.to_wire().items() if v != ""}

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == TolerationOperator.EXISTS.value and self.value:
            raise ValueError("a toleration with operator Exists must not have a value")
        if not self.key and self.operator != TolerationOperator.EXISTS.value:
            raise ValueError("a toleration without a key must use operator Exists")
        if self.toleration_seconds is not None and self.effect != TolerationEffect.NO_EXECUTE.value:
            raise ValueError("tolerationSeconds applies only to effect NoExecute")
        return self


class PlacementSpec(ApiModel):
    """Scheduling overrides for the serving pods."""

    node_selector: dict[
        Annotated[str, Field(max_length=317, pattern=QUALIFIED_NAME)],
        Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)],
    ] = Field(
        default_factory=dict,
        max_length=64,
        description="Node labels pods must match (at most 64; label keys and values).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Pod tolerations (core/v1 Toleration objects).",
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN, description="Pod priority class."
    )


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
