"""The serving pod template's parts: the runtime container, its annotations, GPU preferences, the
model-cache volume and the runtime config files (memoised), for :mod:`.children` to assemble."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from outrider_operator.api import labels
from outrider_operator.api.placement import render_shard_plan, shard_plan_for
from outrider_operator.api.spec import Engine, InferenceDeploymentSpec
from outrider_operator.reconcile.quantities import parse_quantity_mib
from outrider_operator.reconcile.runtimeconfig import (
    GRPC_PORT,
    HTTP_PORT,
    config_key,
    runtime_config_files,
)

__all__ = [
    "CONFIG_MOUNT",
    "MODEL_CACHE_MOUNT",
    "PRESTOP_SLEEP_SECONDS",
    "READINESS_PERIOD_SECONDS",
    "SETTLED_PATH",
    "cache_volume",
    "config_files",
    "container",
    "gpu_preferences",
    "pod_annotations",
]

CONFIG_MOUNT = "/etc/outrider"
"""Where the runtime config ConfigMap is mounted."""
MODEL_CACHE_MOUNT = "/var/cache/outrider"
"""Writable model cache of serving pods (an emptyDir; the image sets the same path)."""
SETTLED_PATH = "/v2/health/settled"
"""Readiness probe path of outrider-engine pods: 200 when the model is in the state last asked for."""
READINESS_PERIOD_SECONDS = 1
"""Readiness probe period: a promoted or newly loaded pod is routed within about a second."""
PRESTOP_SLEEP_SECONDS = 5
"""A terminating pod keeps serving this long before SIGTERM (kubelet ``preStop`` sleep action), the
time for its endpoint to leave every kube-proxy; part of terminationGracePeriodSeconds (30)."""


def _config_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return digest[:16]


@functools.lru_cache(maxsize=2048)
def config_files(spec_json: str) -> tuple[dict[str, str], str]:
    """The runtime config files of a spec and their hash, memoised by the spec's JSON: writing YAML
    is most of a pass's CPU, and passes over unchanged specs are the common case. Callers copy."""
    files = runtime_config_files(InferenceDeploymentSpec.model_validate_json(spec_json))
    return files, _config_hash(files)


def container(spec: InferenceDeploymentSpec, pool: str, image: str) -> dict[str, Any]:
    """The serving container of ``pool``'s pods: resources, probes, security context, mounts."""
    resources: dict[str, Any] = {
        "requests": {"cpu": spec.runtime.resources.cpu, "memory": spec.runtime.resources.memory},
        "limits": {"cpu": spec.runtime.resources.cpu, "memory": spec.runtime.resources.memory},
    }
    if spec.runtime.gpus_per_replica > 0:
        gpus = str(spec.runtime.gpus_per_replica)
        resources["requests"][labels.GPU_RESOURCE] = gpus
        resources["limits"][labels.GPU_RESOURCE] = gpus
    if spec.runtime.engine == Engine.TRITON.value:
        args = ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit"]
        ready_path = "/v2/health/ready" if pool == labels.POOL_ACTIVE else "/v2/health/live"
    else:
        args = ["outrider", "runtime", "serve", "--config", f"{CONFIG_MOUNT}/{config_key(pool)}"]
        ready_path = SETTLED_PATH
    return {
        "name": "server",
        "image": image,
        "args": args,
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "env": [
            {"name": "OUTRIDER_POOL", "value": pool},
            {"name": "OUTRIDER_MAX_WORKERS", "value": str(spec.runtime.max_workers)},
            {"name": "OUTRIDER_CACHE_DIR", "value": f"{MODEL_CACHE_MOUNT}/models"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "resources": resources,
        "readinessProbe": {
            "httpGet": {"path": ready_path, "port": "http"},
            "periodSeconds": READINESS_PERIOD_SECONDS,
        },
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10},
        "startupProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 120,
        },
        # the kubelet waits this long before SIGTERM: the endpoint is withdrawn (and kube-proxy
        # updated) while the pod still serves, so a rollout or scale-down drops no request
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        "volumeMounts": [
            {"name": "runtime-config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            # the root filesystem is read-only: built models and ONNX conversions need these
            {"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def pod_annotations(spec: InferenceDeploymentSpec, config_hash: str) -> dict[str, str]:
    """The serving pods' annotations: shard plan, precision, config hash, scrape hints."""
    annotations = {
        labels.ANNOTATION_SHARD_PLAN: render_shard_plan(shard_plan_for(spec)),
        labels.ANNOTATION_PRECISION: str(spec.precision.policy),
        "outrider.dev/config-hash": config_hash,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HTTP_PORT),
        "prometheus.io/path": "/metrics",
    }
    if spec.runtime.min_gpu_memory:
        annotations[labels.ANNOTATION_MIN_GPU_MEMORY] = str(parse_quantity_mib(spec.runtime.min_gpu_memory))
    return annotations


def gpu_preferences(spec: InferenceDeploymentSpec) -> list[dict[str, Any]]:
    """``gpuProducts`` / ``gpuArchitectures`` as preferred node affinity on the agent's node labels.

    Earlier entries weigh more (100, 90, ... down to 10): kube-scheduler's NodeAffinity score then
    ranks nodes in the user's order, and nodes with none of them stay eligible (a preference).
    """
    if spec.runtime.gpus_per_replica == 0:
        return []
    terms: list[dict[str, Any]] = []
    for key, values in (
        (labels.LABEL_GPU_PRODUCT, spec.runtime.gpu_products),
        (labels.LABEL_GPU_ARCHITECTURE, spec.runtime.gpu_architectures),
    ):
        for rank, value in enumerate(values):
            terms.append(
                {
                    "weight": max(10, 100 - 10 * rank),
                    "preference": {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]},
                }
            )
    return terms


def cache_volume(node_model_cache: str | None) -> dict[str, Any]:
    """The pods' model cache: an emptyDir, or the node's shared cache folder as a hostPath.

    With a host folder, models built there survive the pod and the node agent (which scans the same
    folder's ``models/`` sub-folder) reports them, so the extender's cache locality sees real node
    caches. The folder must be writable by uid 10001; the runtime falls back to a private folder
    (and says so) when it is not. Pod Security "baseline" and "restricted" forbid hostPath volumes.
    """
    if node_model_cache is None:
        return {"name": "model-cache", "emptyDir": {}}
    return {"name": "model-cache", "hostPath": {"path": node_model_cache, "type": "DirectoryOrCreate"}}
