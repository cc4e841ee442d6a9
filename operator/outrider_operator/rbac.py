"""The Kubernetes permissions the operator needs, next to the code that uses them.

`make manifests` renders these rules into the Helm chart and the raw install manifests, so
the chart's RBAC is exactly what the operator asks for (and the e2e tests run the operator
with a token of the chart's ServiceAccount to prove it is enough).
"""

from __future__ import annotations

from typing import Any

from outrider_operator.api import labels

__all__ = ["ALL_RULES", "CLUSTER_RULES", "NAMESPACED_RULES"]

_WRITE = ["get", "list", "watch", "create", "patch", "delete"]

NAMESPACED_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [labels.API_GROUP],
        "resources": [labels.PLURAL],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": [labels.API_GROUP], "resources": [f"{labels.PLURAL}/status"], "verbs": ["get", "patch"]},
    # children carry ownerReferences with blockOwnerDeletion: clusters enforcing owner-reference
    # permissions (OwnerReferencesPermissionEnforcement) require update on the owner's finalizers
    {"apiGroups": [labels.API_GROUP], "resources": [f"{labels.PLURAL}/finalizers"], "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": _WRITE},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": _WRITE},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _WRITE},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]
"""Rules on objects in the namespaces the operator watches: a Role in each watched namespace when
``operator.watchNamespaces`` is set, else a ClusterRole (every namespace)."""

CLUSTER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
]
"""Rules on cluster-scoped objects, always a ClusterRole (read only: nodes for the GPU summary,
namespaces and CRDs for kopf's discovery and namespace watch)."""

ALL_RULES: list[dict[str, Any]] = NAMESPACED_RULES + CLUSTER_RULES
"""Every rule the operator needs when it watches all namespaces."""
