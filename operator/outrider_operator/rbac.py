"""The Kubernetes permissions the operator needs, next to the code that uses them.

`make manifests` renders these rules into the Helm chart and the raw install manifests, so
the chart's RBAC is exactly what the operator asks for (and the e2e tests run the operator
with a token of the chart's ServiceAccount to prove it is enough).
"""

from __future__ import annotations

from typing import Any

from outrider_operator.api import labels

__all__ = ["CLUSTER_RULES"]

CLUSTER_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [labels.API_GROUP],
        "resources": [labels.PLURAL],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": [labels.API_GROUP], "resources": [f"{labels.PLURAL}/status"], "verbs": ["get", "patch"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps", "services"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["policy"],
        "resources": ["poddisruptionbudgets"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
]
"""ClusterRole rules of the operator (namespaces and CRDs: kopf's discovery and namespace watch)."""
