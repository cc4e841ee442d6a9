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

from dataclasses import dataclass
from typing import Any

from outrider_operator.api import labels
from outrider_operator.api.placement import render_shard_plan, shard_plan_for
from outrider_operator.api.spec import DEFAULT_IMAGE, InferenceDeploymentSpec
from outrider_operator.reconcile.pod_template import (
    READINESS_PERIOD_SECONDS,
    SETTLED_PATH,
    cache_volume,
    config_files,
    container,
    gpu_preferences,
    pod_annotations,
)
from outrider_operator.reconcile.runtimeconfig import (
    GRPC_PORT,
    HTTP_PORT,
    PVC_MOUNT,
    pvc_claim,
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


@dataclass(frozen=True)
class PodOptions:
    """How this operator renders serving pods, beyond the spec (the operator's own flags)."""

    node_model_cache: str | None = None
    """A host folder the serving pods share as their model cache (see :func:`cache_volume`);
    None gives each pod its own emptyDir."""
    scheduler_name: str = labels.SCHEDULER_NAME
    """The kube-scheduler profile serving pods name (the chart's scheduler with the extender)."""
    runtime_image: str = DEFAULT_IMAGE
    """The serving image of deployments whose spec names none."""

    def image(self, spec: InferenceDeploymentSpec) -> str:
        """The image serving pods of ``spec`` run."""
        return spec.runtime.image or self.runtime_image


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
        "containers": [container(spec, pool, options.image(spec))],
        "volumes": [
            {"name": "runtime-config", "configMap": {"name": f"{owner.name}-runtime"}},
            cache_volume(options.node_model_cache),
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
    affinity = gpu_preferences(spec)
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
                "metadata": {"labels": pod_labels, "annotations": pod_annotations(spec, config_hash)},
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
    files, config_hash = config_files(spec.model_dump_json())
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
