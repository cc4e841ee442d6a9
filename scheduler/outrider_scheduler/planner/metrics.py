"""Prometheus metrics of the planner (``outrider_planner_*``), on an injectable registry."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["PlannerMetrics"]

_DEPLOYMENT = ["namespace", "deployment"]


class PlannerMetrics:
    """Every planner metric; tests build one per registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.actions = Counter(
            "outrider_planner_actions_total",
            "Scaling actions by deployment, action and trigger (mode=advisory|reactive: published only).",
            [*_DEPLOYMENT, "action", "trigger", "mode"],
            registry=r,
        )
        self.trigger_to_serving = Histogram(
            "outrider_planner_trigger_to_serving_seconds",
            "From the first overloaded sample (or the forecast decision) until the added capacity served: "
            "runtime serving and the pod a ready endpoint of the Service.",
            ["action"],
            buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300),
            registry=r,
        )
        self.decision_seconds = Histogram(
            "outrider_planner_decision_seconds",
            "Time one decision (one deployment, one cycle) took.",
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "outrider_planner_cycle_seconds",
            "Time one whole cycle (poll every pod, decide, act) took.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.capacity = Gauge(
            "outrider_planner_capacity_requests_per_second",
            "Requests/s one replica serves within the p99 target at the batch size in use and the "
            "deployment's scaling.targetUtilizationPercent (capacity model).",
            _DEPLOYMENT,
            registry=r,
        )
        self.demand = Gauge(
            "outrider_planner_demand_requests_per_second",
            "Request rate arriving at the deployment's pods, read from the pods every cycle.",
            _DEPLOYMENT,
            registry=r,
        )
        self.serving_capacity = Gauge(
            "outrider_planner_serving_capacity_requests_per_second",
            "Serving pods times one replica's capacity: what the deployment can take now.",
            _DEPLOYMENT,
            registry=r,
        )
        self.pods = Gauge(
            "outrider_planner_pods",
            "Pods by what they are doing now (serving, warm, cold, incoming, unreachable, unplaced).",
            [*_DEPLOYMENT, "state"],
            registry=r,
        )
        self.desired = Gauge(
            "outrider_planner_desired_serving_pods",
            "Serving pods the planner wants.",
            _DEPLOYMENT,
            registry=r,
        )
        self.batch = Gauge(
            "outrider_planner_batch_size",
            "Batch size the planner set (or would set).",
            _DEPLOYMENT,
            registry=r,
        )
        self.pod_call_failures = Counter(
            "outrider_planner_pod_call_failures_total",
            "Runtime admin calls or pod patches that failed, by operation.",
            [*_DEPLOYMENT, "operation"],
            registry=r,
        )
        self.leader = Gauge(
            "outrider_planner_leader", "1 while this replica holds the planner Lease.", registry=r
        )
        self.profile_errors = Gauge(
            "outrider_planner_profile_errors", "Capacity profile files that could not be used.", registry=r
        )

    def forget(self, namespace: str, deployment: str) -> None:
        """Remove the gauges of a deleted deployment."""
        for gauge in (self.capacity, self.demand, self.serving_capacity, self.desired, self.batch):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, deployment)
        for state in ("serving", "warm", "cold", "incoming", "unreachable", "unplaced"):
            with contextlib.suppress(KeyError):
                self.pods.remove(namespace, deployment, state)
