"""Desired child objects of an InferenceDeployment, as plain Kubernetes manifests.

Children: a ConfigMap with the runtime config, one Deployment per pool (active, warm, cold),
a Service and a PodDisruptionBudget. Every child carries an owner reference (deletion cascades)
and Outrider's labels.

Pools and roles: a pod's pool (the Deployment it belongs to, ``outrider.dev/pool``) never
changes; its role (``outrider.dev/role``: serving or standby) can. Pods start with their pool's
role (active pods serving, warm and cold pods standby). The Service selects the *role*, so the
planner promotes a loaded warm pod by switching its runtime to serving
and relabelling it, without creating a pod. Every pool's readiness probe asks the runtime whether
the model is in the state it was last asked for (``/v2/health/settled``): a warm pod is Ready once
loaded, an active one once serving, and a pod being moved is not Ready until it arrives. The
PodDisruptionBudget covers the active pool (``maxUnavailable`` counts against one Deployment's
scale; over pods of several Deployments it would never allow a disruption).
The functions are pure: the same inputs always give the same objects, which is what makes
server-side apply of them idempotent.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from outrider_operator.api import labels
from outrider_operator.api.placement import render_shard_plan, shard_plan_for
from outrider_operator.api.spec import DEFAULT_IMAGE, Engine, InferenceDeploymentSpec
from outrider_operator.reconcile.quantities import parse_quantity_mib
from outrider_operator.reconcile.runtimeconfig import (
    GRPC_PORT,
    HTTP_PORT,
    PVC_MOUNT,
    config_key,
    pvc_claim,
    runtime_config_files,
)

__all__ = [
    "POOLS",
    "READINESS_PERIOD_SECONDS",
    "SETTLED_PATH",
    "Owner",
    "PodOptions",
    "child_names",
    "pool_deployment_name",
    "pool_role",
    "pool_selector",
    "render_children",
    "serving_selector",
    "shard_plan_annotation",
]

POOLS = (labels.POOL_ACTIVE, labels.POOL_WARM, labels.POOL_COLD)
"""The pools, in the order they are rendered."""

CONFIG_MOUNT = "/etc/outrider"
MODEL_CACHE_MOUNT = "/var/cache/outrider"
"""Writable model cache of serving pods (an emptyDir; the image sets the same path)."""
SETTLED_PATH = "/v2/health/settled"
"""Readiness probe path of outrider-engine pods: 200 when the model is in the state last asked for."""
READINESS_PERIOD_SECONDS = 1
"""Readiness probe period: a promoted or newly loaded pod is routed within about a second."""
PRESTOP_SLEEP_SECONDS = 5
"""A terminating pod keeps serving this long before SIGTERM (kubelet ``preStop`` sleep action), the
time for its endpoint to leave every kube-proxy; part of terminationGracePeriodSeconds (30)."""


@dataclass(frozen=True)
class Owner:
    """The identity of the InferenceDeployment that owns the children."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        """Owner reference with controller=true, so garbage collection cascades."""
        return {
            "apiVersion": f"{labels.API_GROUP}/{labels.API_VERSION}",
            "kind": labels.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def pool_deployment_name(name: str, pool: str) -> str:
    """Name of the Deployment of ``pool``: the active pool takes the InferenceDeployment's name."""
    return name if pool == labels.POOL_ACTIVE else f"{name}-{pool}"


def child_names(name: str) -> dict[str, list[str]]:
    """Names of every child, by kind."""
    return {
        "ConfigMap": [f"{name}-runtime"],
        "Deployment": [pool_deployment_name(name, p) for p in POOLS],
        "Service": [name],
        "PodDisruptionBudget": [name],
    }


def _labels(owner: Owner, component: str) -> dict[str, str]:
    return {
        labels.LABEL_MANAGED_BY: labels.MANAGED_BY,
        labels.LABEL_DEPLOYMENT: owner.name,
        labels.LABEL_COMPONENT: component,
        "app.kubernetes.io/part-of": "outrider",
    }


def _meta(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": _labels(owner, component),
        "ownerReferences": [owner.reference()],
    }


def pool_selector(owner_name: str, pool: str) -> dict[str, str]:
    """Label selector of one pool's pods (immutable in the Deployment, so only stable values)."""
    return {labels.LABEL_DEPLOYMENT: owner_name, labels.LABEL_POOL: pool}


def serving_selector(owner_name: str) -> dict[str, str]:
    """Label selector of the pods that serve traffic, whatever their pool (Service, PDB)."""
    return {labels.LABEL_DEPLOYMENT: owner_name, labels.LABEL_ROLE: labels.ROLE_SERVING}


def pool_role(pool: str) -> str:
    """The role a pool's pods start with: active pods serve, standby pools wait."""
    return labels.ROLE_SERVING if pool == labels.POOL_ACTIVE else labels.ROLE_STANDBY


def shard_plan_annotation(spec: InferenceDeploymentSpec) -> str:
    """JSON shard plan for the scheduler extender (one group holding everything when unsharded)."""
    return render_shard_plan(shard_plan_for(spec))


def _config_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return digest[:16]


@functools.lru_cache(maxsize=2048)
def _config_files(spec_json: str) -> tuple[dict[str, str], str]:
    """The runtime config files of a spec and their hash, memoised by the spec's JSON: writing YAML
    is most of a pass's CPU, and passes over unchanged specs are the common case. Callers copy."""
    files = runtime_config_files(InferenceDeploymentSpec.model_validate_json(spec_json))
    return files, _config_hash(files)


def _container(spec: InferenceDeploymentSpec, pool: str, image: str) -> dict[str, Any]:
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


def _pod_annotations(spec: InferenceDeploymentSpec, config_hash: str) -> dict[str, str]:
    annotations = {
        labels.ANNOTATION_SHARD_PLAN: shard_plan_annotation(spec),
        labels.ANNOTATION_PRECISION: str(spec.precision.policy),
        "outrider.dev/config-hash": config_hash,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HTTP_PORT),
        "prometheus.io/path": "/metrics",
    }
    if spec.runtime.min_gpu_memory:
        annotations[labels.ANNOTATION_MIN_GPU_MEMORY] = str(parse_quantity_mib(spec.runtime.min_gpu_memory))
    return annotations


def _gpu_preferences(spec: InferenceDeploymentSpec) -> list[dict[str, Any]]:
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


@dataclass(frozen=True)
class PodOptions:
    """How this operator renders serving pods, beyond the spec (the operator's own flags)."""

    node_model_cache: str | None = None
    """A host folder the serving pods share as their model cache (see :func:`_cache_volume`);
    None gives each pod its own emptyDir."""
    scheduler_name: str = labels.SCHEDULER_NAME
    """The kube-scheduler profile serving pods name (the chart's scheduler with the extender)."""
    runtime_image: str = DEFAULT_IMAGE
    """The serving image of deployments whose spec names none."""

    def image(self, spec: InferenceDeploymentSpec) -> str:
        """The image serving pods of ``spec`` run."""
        return spec.runtime.image or self.runtime_image


def _cache_volume(node_model_cache: str | None) -> dict[str, Any]:
    """The pods' model cache: an emptyDir, or the node's shared cache folder as a hostPath.

    With a host folder, models built there survive the pod and the node agent (which scans the same
    folder's ``models/`` sub-folder) reports them, so the extender's cache locality sees real node
    caches. The folder must be writable by uid 10001; the runtime falls back to a private folder
    (and says so) when it is not. Pod Security "baseline" and "restricted" forbid hostPath volumes.
    """
    if node_model_cache is None:
        return {"name": "model-cache", "emptyDir": {}}
    return {"name": "model-cache", "hostPath": {"path": node_model_cache, "type": "DirectoryOrCreate"}}


def _deployment(
    owner: Owner,
    spec: InferenceDeploymentSpec,
    pool: str,
    replicas: int,
    config_hash: str,
    options: PodOptions,
) -> dict[str, Any]:
    pod_labels = {
        **_labels(owner, "serving" if pool == labels.POOL_ACTIVE else "standby"),
        labels.LABEL_POOL: pool,
        labels.LABEL_ROLE: pool_role(pool),
        labels.LABEL_MODEL: spec.model.name,
    }
    pod_spec: dict[str, Any] = {
        "schedulerName": options.scheduler_name,
        "containers": [_container(spec, pool, options.image(spec))],
        "volumes": [
            {"name": "runtime-config", "configMap": {"name": f"{owner.name}-runtime"}},
            _cache_volume(options.node_model_cache),
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
        ],
        # Pod Security "restricted": non-root, RuntimeDefault seccomp (the container drops ALL
        # capabilities and privilege escalation below)
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        # the runtime never calls the apiserver: no token in the pod for anyone to take
        "automountServiceAccountToken": False,
    }
    claim = pvc_claim(spec.model.uri)
    if claim is not None:
        pod_spec["volumes"].append(
            {"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        pod_spec["containers"][0]["volumeMounts"].append(
            {"name": "model", "mountPath": f"{PVC_MOUNT}/{claim}", "readOnly": True}
        )
    affinity = _gpu_preferences(spec)
    if affinity:
        pod_spec["affinity"] = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": affinity}}
    if spec.placement.node_selector:
        pod_spec["nodeSelector"] = dict(spec.placement.node_selector)
    if spec.placement.tolerations:
        pod_spec["tolerations"] = [t.to_pod() for t in spec.placement.tolerations]
    if spec.placement.priority_class_name:
        pod_spec["priorityClassName"] = spec.placement.priority_class_name
    component = "serving" if pool == labels.POOL_ACTIVE else "standby"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **_meta(owner, pool_deployment_name(owner.name, pool), component),
            "labels": {**_labels(owner, component), labels.LABEL_POOL: pool},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pool_selector(owner.name, pool)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": _pod_annotations(spec, config_hash)},
                "spec": pod_spec,
            },
        },
    }


def render_children(
    owner: Owner,
    spec: InferenceDeploymentSpec,
    active_replicas: int,
    standby: dict[str, int] | None = None,
    options: PodOptions | None = None,
) -> list[dict[str, Any]]:
    """Return every desired child object, in apply order (config, Service and PDB, then workloads).

    ``active_replicas``: size of the active pool's Deployment; ``standby``: sizes of the warm and
    cold pools' Deployments (the spec's by default; see :mod:`.scaling`); ``options``: the
    operator's own rendering choices (model cache folder, scheduler name).
    """
    options = options or PodOptions()
    files, config_hash = _config_files(spec.model_dump_json())
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(owner, f"{owner.name}-runtime", "config"),
            "data": dict(files),
        }
    ]
    sizes = {
        labels.POOL_ACTIVE: active_replicas,
        labels.POOL_WARM: spec.standby.warm,
        labels.POOL_COLD: spec.standby.cold,
        **(standby or {}),
    }
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(owner, owner.name, "serving"),
            "spec": {
                "type": "ClusterIP",
                "selector": serving_selector(owner.name),
                "ports": [
                    {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                    {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
                ],
            },
        }
    )
    objects.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(owner, owner.name, "serving"),
            "spec": {
                "maxUnavailable": 1,
                # the active pool only: maxUnavailable needs one controller's scale to count against
                "selector": {"matchLabels": pool_selector(owner.name, labels.POOL_ACTIVE)},
            },
        }
    )
    # workloads last: a child the apiserver refuses stops the pass before any pod exists, so a
    # rendering that cannot be served never leaves pods running without their Service or PDB
    objects += [_deployment(owner, spec, pool, sizes[pool], config_hash, options) for pool in POOLS]
    return objects
