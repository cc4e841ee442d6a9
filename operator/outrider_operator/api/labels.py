"""Well-known label, annotation and finalizer names shared by every Outrider component.

The operator writes these on the objects it owns; the scheduler extender, the planner and the
node agent read them. Changing a value here is an API change.
"""

from __future__ import annotations

__all__ = [
    "ANNOTATION_DEMOTED_AT",
    "ANNOTATION_GPU_INVENTORY",
    "ANNOTATION_MIN_GPU_MEMORY",
    "ANNOTATION_POD_DELETION_COST",
    "ANNOTATION_PRECISION",
    "ANNOTATION_SHARD_PLAN",
    "API_GROUP",
    "API_VERSION",
    "GPU_RESOURCE",
    "KIND",
    "LABEL_COMPONENT",
    "LABEL_DEPLOYMENT",
    "LABEL_GPU_ARCHITECTURE",
    "LABEL_GPU_PRODUCT",
    "LABEL_MANAGED_BY",
    "LABEL_MODEL",
    "LABEL_POOL",
    "LABEL_ROLE",
    "MANAGED_BY",
    "PLURAL",
    "POOL_ACTIVE",
    "POOL_COLD",
    "POOL_WARM",
    "ROLE_SERVING",
    "ROLE_STANDBY",
    "SCHEDULER_NAME",
]

API_GROUP = "outrider.dev"
"""The API group of every Outrider custom resource."""
API_VERSION = "v1alpha1"
"""The served and stored version of the InferenceDeployment API."""
KIND = "InferenceDeployment"
"""Kind of the main custom resource."""
PLURAL = "inferencedeployments"
"""Plural resource name of InferenceDeployment."""

GPU_RESOURCE = "nvidia.com/gpu"
"""Extended resource name that serving pods request for GPUs."""
SCHEDULER_NAME = "outrider"
"""The kube-scheduler profile (schedulerName) that routes pods through the Outrider extender."""

MANAGED_BY = "outrider-operator"
"""Value of app.kubernetes.io/managed-by on every object the operator owns."""
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
"""Standard label naming the controller that owns an object."""
LABEL_DEPLOYMENT = "outrider.dev/deployment"
"""Label on pods and children: the owning InferenceDeployment's name."""
LABEL_POOL = "outrider.dev/pool"
"""Label on pods: which pool a pod belongs to (active, warm or cold)."""
LABEL_MODEL = "outrider.dev/model"
"""Label on pods: the model name (used by cache-aware placement)."""
LABEL_COMPONENT = "app.kubernetes.io/component"
"""Standard label naming the component (serving, standby, config, ...)."""
POOL_ACTIVE = "active"
"""Pool of pods that serve traffic."""
POOL_WARM = "warm"
"""Pool of pods with the model loaded but not serving."""
POOL_COLD = "cold"
"""Pool of pods that are scheduled with weights cached but nothing loaded."""
LABEL_ROLE = "outrider.dev/role"
"""Label on pods: serving (the Service routes to it) or standby. Pods start with their pool's role
(active: serving, warm and cold: standby); the planner moves it when it promotes or demotes a pod.
It is not part of any Deployment selector, so changing it never moves a pod between pools."""
ROLE_SERVING = "serving"
"""Role of pods the Service routes to."""
ROLE_STANDBY = "standby"
"""Role of pods kept in reserve."""

ANNOTATION_SHARD_PLAN = "outrider.dev/shard-plan"
"""Pod annotation: JSON list of shard groups ({name, layers, devicePreference, maxBatchSize, gpus})."""
ANNOTATION_MIN_GPU_MEMORY = "outrider.dev/min-gpu-memory-mib"
"""Pod annotation: minimum free memory per GPU, in MiB, as a decimal integer string."""
ANNOTATION_PRECISION = "outrider.dev/precision"
"""Pod annotation: the precision policy (fp32, fp16, bf16, int8 or adaptive)."""
ANNOTATION_GPU_INVENTORY = "outrider.dev/gpu-inventory"
"""Node annotation written by the node agent: a JSON GpuInventory (see outrider_operator.api.inventory)."""
ANNOTATION_DEMOTED_AT = "outrider.dev/demoted-at"
"""Pod annotation written by the planner: when (RFC 3339) the pod left serving on a scale-down; a
restarted planner reads it to continue the pod's way down (serving, warm, cold, deleted)."""
ANNOTATION_POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
"""Kubernetes' pod annotation: the ReplicaSet deletes pods with a lower cost first on scale-down."""
LABEL_GPU_PRODUCT = "outrider.dev/gpu-product"
"""Node label: short GPU product name (H100, A100, L4, ...), or 'none' on CPU-only nodes."""
LABEL_GPU_ARCHITECTURE = "outrider.dev/gpu-architecture"
"""Node label: GPU architecture (hopper, ampere, ada, ...), or 'none' on CPU-only nodes."""
