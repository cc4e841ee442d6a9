"""The whole chart in the cluster: every component a pod on the real node, as in a user's cluster.

``helm install`` with the images built from the Dockerfile (already on the real nodes) runs the
operator, the kube-scheduler with the extender beside it, the forecaster, the planner and the agent
as pods on the real node. Nothing of the product runs on this machine then; Prometheus stays a host
process (:mod:`.prometheus`).

The cluster's own second kube-scheduler (a host process, for the tests that run the extender as a
process) serves the profile ``outrider``; an in-cluster release uses its own profile name (the
chart's ``scheduler.name``), which its operator gives the serving pods, so exactly one scheduler
places them.
"""

from __future__ import annotations

from typing import Any

from .nodeconfig import REAL_NODE_PLACEMENT

__all__ = ["COMPONENTS", "IN_CLUSTER_SCHEDULER", "in_cluster_values"]

IN_CLUSTER_SCHEDULER = "outrider-in-cluster"
"""Scheduler profile of an in-cluster release (the host scheduler keeps ``outrider``)."""
COMPONENTS = ("operator", "scheduler", "forecaster", "planner", "agent")
"""The chart's workloads, by their ``app.kubernetes.io/component`` label."""


def _resources(cpu: str, memory: str, limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": limit}}


def in_cluster_values(
    namespaces: list[str], *, prometheus_url: str, scheduler_name: str = IN_CLUSTER_SCHEDULER
) -> dict[str, Any]:
    """Chart values that place every component on the real nodes, watching ``namespaces``.

    CPU requests are small: the real node has this machine's two cores, and serving pods need most
    of them. The forecaster reads ``prometheus_url`` and forecasts every 5 s.
    """
    placement = REAL_NODE_PLACEMENT
    return {
        "operator": {
            "replicas": 1,
            "watchNamespaces": namespaces,
            "resyncSeconds": 10,
            "resources": _resources("25m", "128Mi", "512Mi"),
            **placement,
        },
        "scheduler": {
            "name": scheduler_name,
            "resources": _resources("25m", "64Mi", "512Mi"),
            **placement,
        },
        "extender": {"resources": _resources("25m", "128Mi", "1Gi")},
        "forecaster": {
            "prometheusUrl": prometheus_url,
            "intervalSeconds": 5,
            "resources": _resources("25m", "256Mi", "2Gi"),
            **placement,
        },
        "planner": {"resources": _resources("25m", "128Mi", "1Gi"), **placement},
        "agent": {"resources": _resources("10m", "64Mi", "256Mi"), **placement},
    }
