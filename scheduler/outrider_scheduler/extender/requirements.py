"""What a pod asks of a node: GPU count, memory per GPU, precision, shard plan and model.

Everything is read from the pod alone (resources, labels, annotations written by the operator),
so the extender works for any pod that requests ``nvidia.com/gpu``, Outrider-managed or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from outrider_operator.api.labels import (
    ANNOTATION_MIN_GPU_MEMORY,
    ANNOTATION_PRECISION,
    ANNOTATION_SHARD_PLAN,
    GPU_RESOURCE,
    LABEL_DEPLOYMENT,
    LABEL_MODEL,
    LABEL_POOL,
)
from outrider_operator.api.placement import ShardPlanEntry, ShardPlanError, parse_shard_plan

from .errors import MalformedRequestError

__all__ = ["PodRequirements", "ShardGroup", "gpu_request", "parse_quantity_int"]

_PRECISIONS = {"fp32", "fp16", "bf16", "int8", "fp8"}


@dataclass(frozen=True, slots=True)
class ShardGroup:
    """One entry of the ``outrider.dev/shard-plan`` annotation (read through the API's
    :class:`~outrider_operator.api.placement.ShardPlanEntry`), as a hashable value."""

    name: str
    layers: tuple[str, ...]
    device_preference: str
    """``memoryBandwidth`` or ``compute`` (the API's ``DevicePreference``)."""
    max_batch_size: int
    gpus: int

    @classmethod
    def from_entry(cls, entry: ShardPlanEntry) -> ShardGroup:
        """The extender's view of one validated shard-plan entry."""
        return cls(
            entry.name,
            tuple(str(x) for x in entry.layers),
            str(entry.device_preference),
            entry.max_batch_size,
            entry.gpus,
        )


@dataclass(frozen=True, slots=True)
class PodRequirements:
    """The placement-relevant facts of one pod."""

    namespace: str
    name: str
    gpus: int
    min_memory_mib: int = 0
    precision: str | None = None
    shards: tuple[ShardGroup, ...] = ()
    model: str | None = None
    deployment: str | None = None
    pool: str | None = None

    @property
    def key(self) -> str:
        """``namespace/name`` of the pod, for logs."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_pod(cls, pod: Any) -> PodRequirements:
        """Read the requirements from a v1 Pod given as a JSON dict; raises MalformedRequestError."""
        if not isinstance(pod, Mapping):
            raise MalformedRequestError("field 'Pod' must be a JSON object (a v1 Pod)")
        meta = pod.get("metadata")
        if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
            raise MalformedRequestError("field 'Pod.metadata.name' is missing or not a string")
        spec = pod.get("spec")
        if not isinstance(spec, Mapping):
            raise MalformedRequestError("field 'Pod.spec' is missing or not an object")
        labels = _str_map(meta.get("labels"), "Pod.metadata.labels")
        annotations = _str_map(meta.get("annotations"), "Pod.metadata.annotations")
        precision = annotations.get(ANNOTATION_PRECISION)
        if precision is not None and precision != "adaptive" and precision not in _PRECISIONS:
            raise MalformedRequestError(
                f"annotation {ANNOTATION_PRECISION}={precision!r} is not one of "
                f"{sorted([*_PRECISIONS, 'adaptive'])}"
            )
        return cls(
            namespace=str(meta.get("namespace") or "default"),
            name=meta["name"],
            gpus=gpu_request(spec),
            min_memory_mib=_min_memory(annotations.get(ANNOTATION_MIN_GPU_MEMORY)),
            precision=None if precision in (None, "adaptive") else precision,
            shards=_shard_plan(annotations.get(ANNOTATION_SHARD_PLAN)),
            model=labels.get(LABEL_MODEL),
            deployment=labels.get(LABEL_DEPLOYMENT),
            pool=labels.get(LABEL_POOL),
        )


def parse_quantity_int(value: Any, where: str) -> int:
    """Parse an integer Kubernetes quantity (``"2"``, ``2``, ``"2000m"``); raises MalformedRequestError."""
    if isinstance(value, bool):
        raise MalformedRequestError(f"{where}: expected an integer quantity, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("m"):
                return int(text[:-1]) // 1000
            return int(text)
        except ValueError:
            pass
    raise MalformedRequestError(f"{where}: expected an integer quantity, got {value!r}")


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedRequestError(f"field '{where}' must be an object of strings")
    return {str(k): str(v) for k, v in value.items()}


def _container_gpus(container: Any, where: str) -> int:
    if not isinstance(container, Mapping):
        raise MalformedRequestError(f"{where} must be an object")
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise MalformedRequestError(f"{where}.resources must be an object")
    found = 0
    for part in ("requests", "limits"):
        values = resources.get(part) or {}
        if not isinstance(values, Mapping):
            raise MalformedRequestError(f"{where}.resources.{part} must be an object")
        if GPU_RESOURCE in values:
            found = max(found, parse_quantity_int(values[GPU_RESOURCE], f"{where}.resources.{part}"))
    return found


def gpu_request(spec: Mapping[str, Any]) -> int:
    """GPUs a pod spec requests (containers summed, init containers at their maximum)."""
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    if not isinstance(containers, list) or not isinstance(inits, list):
        raise MalformedRequestError("Pod.spec.containers and Pod.spec.initContainers must be lists")
    total = sum(_container_gpus(c, f"Pod.spec.containers[{i}]") for i, c in enumerate(containers))
    init_max = max(
        (_container_gpus(c, f"Pod.spec.initContainers[{i}]") for i, c in enumerate(inits)), default=0
    )
    return max(total, init_max)


def _min_memory(raw: str | None) -> int:
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise MalformedRequestError(
            f"annotation {ANNOTATION_MIN_GPU_MEMORY}={raw!r} is not a non-negative decimal integer (MiB)"
        )
    return value


def _shard_plan(raw: str | None) -> tuple[ShardGroup, ...]:
    try:
        return tuple(ShardGroup.from_entry(e) for e in parse_shard_plan(raw))
    except ShardPlanError as exc:
        raise MalformedRequestError(str(exc)) from None
