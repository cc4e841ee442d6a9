"""Settings of the operator process: one dataclass, a docstring and a default on every field."""

from __future__ import annotations

from dataclasses import dataclass, field

from outrider_operator.api.spec import DEFAULT_IMAGE

__all__ = ["OperatorConfig"]


@dataclass(frozen=True)
class OperatorConfig:
    """How the operator runs."""

    namespaces: tuple[str, ...] = field(default=())
    """Namespaces to watch; empty means all namespaces (cluster-wide)."""
    kubeconfig: str | None = None
    """Kubeconfig file; None means $KUBECONFIG or the in-cluster service account."""
    resync_seconds: float = 30.0
    """Period of the drift-repair pass for every InferenceDeployment."""
    metrics_port: int = 8080
    """Port of the Prometheus /metrics endpoint (0 disables it)."""
    health_port: int = 8081
    """Port of the liveness endpoint /healthz (0 disables it)."""
    log_format: str = "text"
    """Log format: text or json."""
    verbose: bool = False
    """Log at DEBUG level."""
    retry_delay_seconds: float = 5.0
    """Delay before retrying a failed reconciliation."""
    reconcile_workers: int = 8
    """Threads working the queue of passes that events and the resync timer ask for (a pass waits
    on the apiserver most of its time: with 4, creating 1,000 objects left the operator at a third
    of a core and Ready a minute behind)."""
    node_model_cache: str | None = None
    """Host folder that serving pods share as their model cache (a hostPath, so the node agent can
    report cached models for cache-aware placement); None: a per-pod emptyDir."""
    scheduler_name: str = "outrider"
    """The kube-scheduler profile serving pods name: the chart's scheduler, which calls the extender."""
    runtime_image: str = DEFAULT_IMAGE
    """Serving image of deployments whose spec.runtime.image is unset."""
