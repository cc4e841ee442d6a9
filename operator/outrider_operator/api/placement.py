"""The shard-plan contract between the operator and the scheduler extender.

The operator writes each serving pod's shard plan into its ``outrider.dev/shard-plan`` annotation
(:func:`render_shard_plan` of :func:`shard_plan_for`); the extender reads it back with
:func:`parse_shard_plan` to place attention shards on memory-bandwidth-rich GPUs and keep a
replica's shards on linked devices. One model, :class:`ShardPlanEntry`, at both ends.

The extender also sees pods the operator did not render (any pod asking for ``nvidia.com/gpu``
may carry the annotation), so parsing is lenient where that is harmless (missing fields take
their defaults, unknown fields are ignored for forward compatibility) and strict where a wrong
value would misplace a pod; every refusal names the entry and the field.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ConfigDict, Field, StrictInt, ValidationError

from .base import ApiModel
from .labels import ANNOTATION_SHARD_PLAN
from .spec import DevicePreference, InferenceDeploymentSpec, Layer

__all__ = ["ShardPlanEntry", "ShardPlanError", "parse_shard_plan", "render_shard_plan", "shard_plan_for"]


class ShardPlanError(ValueError):
    """The annotation is not a valid shard plan (the message names the entry and the field)."""


class ShardPlanEntry(ApiModel):
    """One shard group of a replica, as placement needs it."""

    model_config = ApiModel.model_config | ConfigDict(extra="ignore", frozen=True)

    name: str = Field(description="Shard group name.")
    layers: tuple[Layer, ...] = Field(default=(Layer.ALL,), description="Layer families the group holds.")
    device_preference: DevicePreference = Field(
        default=DevicePreference.MEMORY_BANDWIDTH, description="What the group's layers are bound by."
    )
    max_batch_size: StrictInt = Field(default=1, ge=0, description="Largest micro-batch the group runs.")
    gpus: StrictInt = Field(default=1, ge=0, description="GPUs the group occupies in each replica.")


def shard_plan_for(spec: InferenceDeploymentSpec) -> list[ShardPlanEntry]:
    """The shard plan of ``spec``'s replicas (one group holding everything when unsharded)."""
    if not spec.sharding.groups:
        return [
            ShardPlanEntry(
                name="all",
                layers=(Layer.ALL,),
                device_preference=DevicePreference.COMPUTE,
                max_batch_size=spec.batching.max_batch_size,
                gpus=max(spec.runtime.gpus_per_replica, 0),
            )
        ]
    return [
        ShardPlanEntry(
            name=g.name,
            layers=tuple(Layer(str(x)) for x in g.layers),
            device_preference=DevicePreference(str(g.device_preference)),
            max_batch_size=g.max_batch_size,
            gpus=g.gpus,
        )
        for g in spec.sharding.groups
    ]


def render_shard_plan(entries: list[ShardPlanEntry]) -> str:
    """The annotation's value: compact JSON with sorted keys (stable, so pod templates do not churn)."""
    return json.dumps([e.to_wire() for e in entries], separators=(",", ":"), sort_keys=True)


_EXPECTED = {
    "layers": "must be a list of " + ", ".join(sorted(layer.value for layer in Layer)),
    "devicePreference": "must be " + " or ".join(repr(p.value) for p in DevicePreference),
    "maxBatchSize": "must be a non-negative integer",
    "gpus": "must be a non-negative integer",
    "name": "must be a string",
}


def parse_shard_plan(raw: str | None) -> list[ShardPlanEntry]:
    """Read an annotation value (empty or missing: no plan); raises :class:`ShardPlanError`."""
    if raw is None or not raw.strip():
        return []
    where = f"annotation {ANNOTATION_SHARD_PLAN}"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ShardPlanError(f"{where} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, list):
        raise ShardPlanError(f"{where} must be a JSON list of shard groups")
    out: list[ShardPlanEntry] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ShardPlanError(f"{where}[{i}] must be an object")
        fields: dict[str, Any] = {"name": f"shard-{i}", **item}
        try:
            out.append(ShardPlanEntry.model_validate(fields))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else "?"
            expected = _EXPECTED.get(key, err["msg"])
            raise ShardPlanError(f"{where}[{i}].{key}={fields.get(key)!r} {expected}") from None
    return out
