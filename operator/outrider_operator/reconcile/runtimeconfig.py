"""Render the runtime's own config file (``runtime.outrider.dev/v1alpha1`` RuntimeConfig).

The runtime imports only the API package (``outrider_operator.api``, pydantic models), never this
module or any other part of the operator; the shape rendered here matches
``outrider_runtime.config``, and a test checks that the runtime accepts what we render.
"""

from __future__ import annotations

from typing import Any

import yaml

from outrider_operator.api import labels
from outrider_operator.api.spec import InferenceDeploymentSpec

__all__ = [
    "GRPC_PORT",
    "HTTP_PORT",
    "START_STATES",
    "config_key",
    "render_runtime_config",
    "runtime_config_files",
]

HTTP_PORT = 8000
"""Port of the V2 HTTP endpoint (and /metrics) in serving pods."""
GRPC_PORT = 8001
"""Port of the V2 gRPC endpoint in serving pods."""
START_STATES: dict[str, str] = {
    labels.POOL_ACTIVE: "serving",
    labels.POOL_WARM: "warm",
    labels.POOL_COLD: "cold",
}
"""Model state each pool's pods start in."""


def config_key(pool: str) -> str:
    """File name, inside the runtime ConfigMap, of the config for ``pool``."""
    return "runtime.yaml" if pool == labels.POOL_ACTIVE else f"runtime-{pool}.yaml"


PVC_MOUNT = "/models/pvc"
"""Where a ``pvc://CLAIM/path`` model's claim is mounted (read-only) in serving pods."""


def pvc_claim(uri: str) -> str | None:
    """The claim name of a ``pvc://CLAIM/path`` URI, else None."""
    if not uri.startswith("pvc://"):
        return None
    return uri.removeprefix("pvc://").split("/", 1)[0]


def local_model_uri(uri: str) -> str:
    """The URI the runtime reads: ``pvc://CLAIM/path`` becomes the mounted path, others pass as is."""
    claim = pvc_claim(uri)
    if claim is None:
        return uri
    rest = uri.removeprefix(f"pvc://{claim}").strip("/")
    return f"{PVC_MOUNT}/{claim}" + (f"/{rest}" if rest else "")


def render_runtime_config(spec: InferenceDeploymentSpec, pool: str) -> dict[str, Any]:
    """Return the runtime config mapping for pods of ``pool``."""
    shards = [
        {
            "name": g.name,
            "layers": [str(x) for x in g.layers],
            "devicePreference": str(g.device_preference),
            "maxBatchSize": g.max_batch_size,
        }
        for g in spec.sharding.groups
    ]
    return {
        "apiVersion": "runtime.outrider.dev/v1alpha1",
        "kind": "RuntimeConfig",
        "model": {
            "name": spec.model.name,
            "uri": local_model_uri(spec.model.uri),
            "format": str(spec.model.format),
        },
        "precision": {"policy": str(spec.precision.policy), "accuracyFloor": spec.precision.accuracy_floor},
        "batching": {
            "maxBatchSize": spec.batching.max_batch_size,
            "minBatchDelayMs": spec.batching.min_batch_delay_ms,
            "lookaheadWindow": spec.batching.lookahead_window,
            "dynamic": str(spec.batching.dynamic),
        },
        "shards": shards,
        "server": {"httpPort": HTTP_PORT, "grpcPort": GRPC_PORT, "startState": START_STATES[pool]},
    }


def runtime_config_files(spec: InferenceDeploymentSpec) -> dict[str, str]:
    """Return the ConfigMap data: one YAML file per pool."""
    return {
        config_key(pool): yaml.safe_dump(render_runtime_config(spec, pool), sort_keys=False)
        for pool in (labels.POOL_ACTIVE, labels.POOL_WARM, labels.POOL_COLD)
    }
