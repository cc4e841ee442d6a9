"""The operator process: ``outrider-operator`` (or ``python -m outrider_operator.main``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import kopf
from prometheus_client import start_http_server

from outrider_operator.config import OperatorConfig
from outrider_operator.errors import KubeConfigError
from outrider_operator.handlers import register_handlers
from outrider_operator.kube.cache import ObjectCache
from outrider_operator.kube.events import EventRecorder
from outrider_operator.kube.rest import KubeRest, load_api_client
from outrider_operator.metrics import OperatorMetrics
from outrider_operator.reconcile.children import PodOptions
from outrider_operator.reconciler import Reconciler

__all__ = ["build_operator", "in_cluster_server", "parse_args", "run"]

_PROFILE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def parse_args(argv: Sequence[str] | None = None) -> OperatorConfig:
    """Parse command-line flags into an :class:`OperatorConfig` (environment variables as defaults)."""
    defaults = OperatorConfig()
    parser = argparse.ArgumentParser(prog="outrider-operator", description="Reconcile InferenceDeployments.")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[ns for ns in os.environ.get("OUTRIDER_NAMESPACES", "").split(",") if ns],
        help="namespace to watch (repeatable; default: all namespaces)",
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig file")
    parser.add_argument(
        "--resync-seconds", type=float, default=defaults.resync_seconds, help="drift-repair period"
    )
    parser.add_argument("--metrics-port", type=int, default=defaults.metrics_port, help="0 disables /metrics")
    parser.add_argument("--health-port", type=int, default=defaults.health_port, help="0 disables /healthz")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("OUTRIDER_LOG_FORMAT", defaults.log_format),
        help="log format",
    )
    parser.add_argument(
        "--node-model-cache",
        default=os.environ.get("OUTRIDER_NODE_MODEL_CACHE") or None,
        help="host folder serving pods share as their model cache (hostPath; default: per-pod emptyDir)",
    )
    parser.add_argument(
        "--scheduler-name",
        default=os.environ.get("OUTRIDER_SCHEDULER_NAME") or defaults.scheduler_name,
        help="kube-scheduler profile serving pods name (the chart's scheduler.name; default: outrider)",
    )
    parser.add_argument(
        "--runtime-image",
        default=os.environ.get("OUTRIDER_RUNTIME_IMAGE") or defaults.runtime_image,
        help=f"image of serving pods whose spec sets no runtime.image (default {defaults.runtime_image})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    if not _PROFILE_NAME.fullmatch(args.scheduler_name):
        parser.error(
            "--scheduler-name must be a lowercase DNS subdomain (a-z, 0-9, '-', '.'), "
            f"got {args.scheduler_name!r}"
        )
    if args.node_model_cache is not None and not args.node_model_cache.startswith("/"):
        parser.error(f"--node-model-cache must be an absolute host path, got {args.node_model_cache!r}")
    if args.resync_seconds <= 0:
        parser.error("--resync-seconds must be > 0")
    return OperatorConfig(
        namespaces=tuple(args.namespace),
        kubeconfig=args.kubeconfig,
        resync_seconds=args.resync_seconds,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        log_format=args.log_format,
        verbose=args.verbose,
        node_model_cache=args.node_model_cache,
        scheduler_name=args.scheduler_name,
        runtime_image=args.runtime_image,
    )


def in_cluster_server(environ: Mapping[str, str]) -> str | None:
    """The apiserver address the kubelet gives every pod (as client-go's in-cluster config uses).

    kopf's own service-account login names ``https://kubernetes.default.svc``, which needs cluster
    DNS; the ``KUBERNETES_SERVICE_HOST``/``_PORT`` variables do not, so the operator, like the
    other components (the kubernetes client), reaches the apiserver wherever DNS is missing or down.
    None when the variables are not set (kopf's default then).
    """
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def build_operator(config: OperatorConfig, metrics: OperatorMetrics | None = None) -> kopf.OperatorRegistry:
    """Build the kopf registry with every handler wired to a fresh :class:`Reconciler`."""
    rest = KubeRest(load_api_client(config.kubeconfig))
    options = PodOptions(
        node_model_cache=config.node_model_cache,
        scheduler_name=config.scheduler_name,
        runtime_image=config.runtime_image,
    )
    reconciler = Reconciler(
        rest, metrics=metrics, events=EventRecorder(rest), pod_options=options, cache=ObjectCache()
    )
    registry = kopf.OperatorRegistry()
    register_handlers(registry, reconciler, config)

    @kopf.on.login(registry=registry, id="login")
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """Kubeconfig when one is given (or $KUBECONFIG), else the pod's service account."""
        if config.kubeconfig or os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        info = kopf.login_with_service_account(**kwargs)
        server = in_cluster_server(os.environ)
        return dataclasses.replace(info, server=server) if info is not None and server else info

    @kopf.on.startup(registry=registry, id="settings")
    def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.outrider.dev")
        # Only watch-event handlers are registered, so kopf stores no progress or diff base on
        # objects; the storages are pinned to our prefix (the diff base to the spec alone) in case
        # a change handler is ever added
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="kopf.outrider.dev", key="last-handled-configuration", ignored_fields=["metadata"]
        )
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60

    return registry


def run(argv: Sequence[str] | None = None) -> int:
    """Run the operator until interrupted; returns the exit code."""
    config = parse_args(sys.argv[1:] if argv is None else argv)
    if config.kubeconfig:
        os.environ["KUBECONFIG"] = config.kubeconfig
    kopf.configure(
        verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
    )
    metrics = OperatorMetrics.create()
    if config.metrics_port:
        start_http_server(config.metrics_port, registry=metrics.registry)
    try:
        registry = build_operator(config, metrics)
    except KubeConfigError as exc:
        print(f"outrider-operator: {exc}", file=sys.stderr)
        return 2
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run())
