"""``outrider agent run`` (or ``python -m outrider_scheduler.agent``): the node agent DaemonSet process."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from outrider_cli.bootstrap import (
    add_logging_arguments,
    kube_client_or_report,
    setup_logging,
    stop_event,
)

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the agent options to ``parser``."""
    parser.add_argument(
        "--node-name", default=os.environ.get("NODE_NAME"), help="This Node's name ($NODE_NAME)."
    )
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG, else in-cluster credentials)."
    )
    parser.add_argument("--interval", type=float, default=10.0, help="Seconds between discoveries.")
    parser.add_argument(
        "--min-publish-interval", type=float, default=30.0, help="Seconds between Node patches."
    )
    parser.add_argument(
        "--max-publish-interval", type=float, default=300.0, help="Heartbeat re-publish period."
    )
    parser.add_argument("--metrics-port", type=int, default=9402, help="Prometheus port (0 disables).")
    parser.add_argument("--metrics-host", default="0.0.0.0", help="Prometheus listen address.")
    parser.add_argument(
        "--cache-dir", type=Path, help="Model cache folder (default /var/cache/outrider/models)."
    )
    parser.add_argument("--recorded", help="Replay a recorded inventory instead of NVML (testing).")
    parser.add_argument("--once", action="store_true", help="Discover and publish once, then exit.")
    add_logging_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the agent loop until SIGTERM/SIGINT."""
    from prometheus_client import start_http_server

    from .discovery import DEFAULT_MODEL_CACHE
    from .errors import AgentError
    from .metrics import AgentMetrics
    from .nvml import GpuBackend, PynvmlBackend, RecordedBackend
    from .publishing import KubernetesNodePatcher, NodePublisher
    from .runner import AgentLoop

    setup_logging(args.log_format, args.log_level)
    if not args.node_name:
        print("outrider agent: --node-name (or $NODE_NAME) is required", file=sys.stderr)
        return 2
    api_client = kube_client_or_report(args.kubeconfig, "outrider agent")
    if api_client is None:
        return 2
    try:
        backend: GpuBackend = RecordedBackend(args.recorded) if args.recorded else PynvmlBackend()
    except AgentError as exc:
        print(f"outrider agent: {exc}", file=sys.stderr)
        return 2
    metrics = AgentMetrics()
    publisher = NodePublisher(
        args.node_name,
        KubernetesNodePatcher(api_client),
        min_interval_s=args.min_publish_interval,
        max_interval_s=args.max_publish_interval,
    )
    loop = AgentLoop(
        backend, publisher, metrics, interval_s=args.interval, cache_dir=args.cache_dir or DEFAULT_MODEL_CACHE
    )
    if args.once:
        return 0 if loop.step() == "patched" else 1
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
    loop.stop_event = stop_event()
    loop.run()
    return 0
