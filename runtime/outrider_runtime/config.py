"""The runtime's own typed config file (``RuntimeConfig``), rendered by the operator into a ConfigMap.

Keys are camelCase; the file is YAML or JSON. This module imports neither kopf nor the kubernetes
client so that a runtime image needs none of the control-plane dependencies. The enumerations the
operator renders into this file (layers, precision policies, dynamic batching) and the model states
the planner asks for are the API's own (:mod:`outrider_operator.api.spec` and
:mod:`outrider_operator.api.runtime`, pydantic only), so the two can never disagree on a value.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from outrider_operator.api.execution import MAX_BATCH_DELAY_MS, MAX_BATCH_SIZE, MAX_LOOKAHEAD_WINDOW
from outrider_operator.api.runtime import ModelState
from outrider_operator.api.spec import DynamicBatching as DynamicMode
from outrider_operator.api.spec import Layer, PrecisionPolicy
from outrider_runtime.errors import ConfigError

__all__ = [
    "API_VERSION",
    "KIND",
    "BatchingConfig",
    "DynamicMode",
    "Layer",
    "ModelConfig",
    "ModelState",
    "PrecisionConfig",
    "PrecisionPolicy",
    "RuntimeConfig",
    "ServerConfig",
    "ShardConfig",
    "describe_validation_error",
    "load_config",
    "parse_config",
]

API_VERSION = "runtime.outrider.dev/v1alpha1"
KIND = "RuntimeConfig"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ModelConfig(_Model):
    """Which model to serve and where its files are."""

    name: str = Field(
        "minilm", min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.-]+$", description="Model name."
    )
    uri: str = Field(
        "builtin:all-minilm-l6-v2",
        min_length=1,
        description="Local directory holding model.onnx (and tokenizer.json), or builtin:<name>.",
    )
    format: Literal["onnx"] = Field("onnx", description="Model format; only ONNX is executed natively.")


class PrecisionConfig(_Model):
    """Precision policy and the accuracy floor that adaptive precision must keep."""

    policy: PrecisionPolicy = Field(PrecisionPolicy.FP32, description="fp32|fp16|bf16|int8|adaptive.")
    accuracy_floor: str = Field(
        "0.99", description="Minimum cosine agreement with fp32 on the calibration set, decimal string."
    )

    @field_validator("accuracy_floor")
    @classmethod
    def _floor_is_decimal(cls, value: str) -> str:
        try:
            dec = Decimal(value)
        except InvalidOperation as exc:
            raise ValueError(f"accuracyFloor must be a decimal string like '0.99', got {value!r}") from exc
        if not Decimal(0) <= dec <= Decimal(1):
            raise ValueError(f"accuracyFloor must be within [0, 1], got {value!r}")
        return value

    @property
    def floor(self) -> float:
        """The accuracy floor as a float."""
        return float(Decimal(self.accuracy_floor))


class BatchingConfig(_Model):
    """Dynamic batching knobs; all of them can be changed live through the admin API."""

    max_batch_size: int = Field(16, ge=1, le=MAX_BATCH_SIZE, description="Largest batch the batcher forms.")
    min_batch_delay_ms: float = Field(
        10.0, ge=0, le=MAX_BATCH_DELAY_MS, description="How long the batcher waits for a batch to fill, ms."
    )
    lookahead_window: int = Field(
        3,
        ge=0,
        le=MAX_LOOKAHEAD_WINDOW,
        description="Extra batches' worth of queued requests scanned to group by length.",
    )
    dynamic: DynamicMode = Field(DynamicMode.ENABLED, description="Enabled|Disabled (Disabled = batch 1).")


class ShardConfig(_Model):
    """One shard: a set of layer groups executed in its own session on one device."""

    name: str = Field(..., min_length=1, max_length=63, description="Shard name.")
    layers: list[Layer] = Field(..., min_length=1, description="Layer groups held by this shard.")
    device_preference: str = Field("any", description="Scheduling hint (memoryBandwidth, compute, any).")
    max_batch_size: int = Field(32, ge=1, le=MAX_BATCH_SIZE, description="Micro-batch size this shard runs.")
    device: str | None = Field(None, pattern=r"^(cpu|cuda:\d+)$", description="cpu or cuda:N; default cpu.")
    precision: PrecisionPolicy | None = Field(
        None, description="Per-shard precision (fp32|fp16|bf16|int8); default: the model's policy."
    )

    @field_validator("precision")
    @classmethod
    def _not_adaptive(cls, value: PrecisionPolicy | None) -> PrecisionPolicy | None:
        if value is PrecisionPolicy.ADAPTIVE:
            raise ValueError("a shard's precision cannot be adaptive; set adaptive on precision.policy")
        return value


class ServerConfig(_Model):
    """Ports, bounds and the state a model starts in."""

    http_port: int = Field(8000, ge=0, le=65535, description="HTTP port (0 = pick a free one).")
    grpc_port: int = Field(8001, ge=0, le=65535, description="V2 gRPC port (0 = pick a free one).")
    host: str = Field("0.0.0.0", description="Address to bind.")
    max_queue_size: int = Field(1024, ge=1, le=1_000_000, description="Queued requests before 429.")
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest request body, bytes.")
    start_state: ModelState = Field(ModelState.SERVING, description="cold|warm|serving at start.")
    intra_op_threads: int = Field(0, ge=0, le=256, description="ONNX Runtime threads per session (0=auto).")
    drain_timeout_s: float = Field(30.0, ge=0, description="How long SIGTERM waits for in-flight work.")
    batch_concurrency: int = Field(
        1, ge=1, le=16, description="Batches of one model variant executing at once (unsharded models)."
    )
    latency_window_s: float = Field(
        2.0, ge=0.1, le=300, description="Seconds of recent requests whose latency /v2/admin/load reports."
    )


class RuntimeConfig(_Model):
    """The whole runtime config file."""

    api_version: Literal["runtime.outrider.dev/v1alpha1"] = Field(
        "runtime.outrider.dev/v1alpha1", description="Schema version."
    )
    kind: Literal["RuntimeConfig"] = Field("RuntimeConfig", description="Always RuntimeConfig.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The model served.")
    precision: PrecisionConfig = Field(default_factory=PrecisionConfig, description="Precision.")
    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="Batching.")
    shards: list[ShardConfig] = Field(default_factory=list, description="Ordered shards; empty = one.")
    server: ServerConfig = Field(default_factory=ServerConfig, description="Server settings.")

    @field_validator("shards")
    @classmethod
    def _unique_names(cls, shards: list[ShardConfig]) -> list[ShardConfig]:
        names = [s.name for s in shards]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"shard names must be unique, repeated: {dup}")
        seen: dict[Layer, str] = {}
        for shard in shards:
            for layer in shard.layers:
                if layer in seen or (Layer.ALL in seen and layer is not Layer.ALL):
                    raise ValueError(f"layer group {layer.value!r} is assigned to more than one shard")
                seen[layer] = shard.name
        return shards


_NO_INPUT = ("missing", "extra_forbidden", "value_error", "assertion_error")
"""Error types whose message needs no ``got <value>`` (there is none, or the message has it)."""


def describe_validation_error(exc: ValidationError, subject: str) -> str:
    """``invalid <subject>: <field.path>: <problem>; ...``, naming each bad field as it was sent."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        part = f"{loc or '<root>'}: {err['msg']}"
        value = err.get("input")
        if err["type"] not in _NO_INPUT and isinstance(value, str | int | float):
            shown = json.dumps(value)
            part += f", got {shown if len(shown) <= 80 else shown[:77] + '...'}"
        parts.append(part)
    return f"invalid {subject}: " + "; ".join(parts)


def parse_config(data: dict[str, Any]) -> RuntimeConfig:
    """Validate a parsed config mapping; raise :class:`ConfigError` naming each bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid runtime config: expected a mapping, got {type(data).__name__}")
    try:
        return RuntimeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "runtime config")) from exc


def load_config(path: str | Path) -> RuntimeConfig:
    """Read a YAML or JSON runtime config file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read runtime config {p}: {exc}") from exc
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"runtime config {p} is not valid YAML/JSON: {exc}") from exc
    return parse_config(data if data is not None else {})
