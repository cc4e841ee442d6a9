"""How one replica executes the model: sharding across devices, numeric precision and dynamic batching."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from outrider_operator.api.base import ApiModel, cel
from outrider_operator.api.patterns import DECIMAL_0_1, DNS_LABEL

__all__ = [
    "MAX_BATCH_DELAY_MS",
    "MAX_BATCH_SIZE",
    "MAX_LOOKAHEAD_WINDOW",
    "BatchingSpec",
    "DevicePreference",
    "DynamicBatching",
    "Layer",
    "PrecisionPolicy",
    "PrecisionSpec",
    "ShardGroup",
    "ShardingSpec",
]

MAX_BATCH_SIZE = 4096
"""The largest batch any batching knob may ask for: the spec, the runtime config, the admin API, a
repository load's override and a shard's micro-batch all take their bound from here."""
MAX_BATCH_DELAY_MS = 10_000
"""The longest a batcher may wait for a batch to fill, ms (10 s), wherever it is set."""
MAX_LOOKAHEAD_WINDOW = 64
"""The most queued batches a batcher scans ahead, wherever it is set."""


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
    max_batch_size: int = Field(
        default=32, ge=1, le=MAX_BATCH_SIZE, description="Largest micro-batch this shard runs."
    )
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
    max_batch_size: int = Field(
        default=16, ge=1, le=MAX_BATCH_SIZE, description="Largest batch the runtime forms."
    )
    min_batch_delay_ms: int = Field(
        default=10,
        ge=0,
        le=MAX_BATCH_DELAY_MS,
        description="How long the first request of a batch may wait for others.",
    )
    lookahead_window: int = Field(
        default=3,
        ge=0,
        le=MAX_LOOKAHEAD_WINDOW,
        description="Queued batches the batcher looks ahead to size the next batch.",
    )
