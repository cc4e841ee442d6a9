"""``outrider extender ...``: run the kube-scheduler extender service.

``outrider extender serve`` watches the cluster (kubeconfig, or in-cluster credentials) and
serves the extender protocol; ``--static-cluster FILE`` serves a fixed set of nodes and pods
from a JSON file instead (``{"nodes": [...], "pods": [...]}``), for demos and benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from outrider_cli.bootstrap import add_logging_arguments, kube_client_or_report, setup_logging

__all__ = ["register", "serve"]

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``extender`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="extender_command", metavar="ACTION", required=True)
    sp = sub.add_parser("serve", help="Serve filter/prioritize for kube-scheduler.")
    sp.add_argument("--config", type=Path, help="YAML config (see docs/scheduler-extender.md).")
    sp.add_argument("--host", help="Listen address (overrides the config; default 127.0.0.1).")
    sp.add_argument("--port", type=int, help="Listen port (overrides the config; default 8765).")
    sp.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="Serve /metrics and /healthz on this port too (0: only on --port). With the scheduler API on "
        "127.0.0.1 (a sidecar of kube-scheduler), this is what Prometheus and the kubelet's probe reach.",
    )
    sp.add_argument("--metrics-host", default="0.0.0.0", help="Address of the metrics listener.")
    sp.add_argument("--budget-ms", type=float, help="Per-request time budget in ms (overrides the config).")
    sp.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig to watch the cluster with (default: $KUBECONFIG, else in-cluster).",
    )
    sp.add_argument("--static-cluster", type=Path, help="JSON file with nodes and pods; no cluster access.")
    add_logging_arguments(sp)
    sp.set_defaults(func=serve)


def _load_static(cache: Any, path: Path) -> None:
    data = json.loads(path.read_text())
    for node in data.get("nodes", []):
        cache.upsert_node(node)
    for pod in data.get("pods", []):
        cache.upsert_pod(pod)


def serve(args: argparse.Namespace) -> int:
    """Run the extender until interrupted; returns the exit code."""
    from dataclasses import replace

    from .cache import CacheWatcher, ClusterCache
    from .config import ExtenderConfig
    from .errors import ExtenderError
    from .server import ExtenderService

    setup_logging(args.log_format, args.log_level)
    try:
        config = ExtenderConfig.from_file(args.config) if args.config else ExtenderConfig()
        overrides: dict[str, Any] = {}
        if args.host:
            overrides["host"] = args.host
        if args.port is not None:
            overrides["port"] = args.port
        if args.budget_ms is not None:
            overrides["budget_ms"] = args.budget_ms
        config = replace(config, **overrides)
    except ExtenderError as exc:
        print(f"outrider extender: {exc}", file=sys.stderr)
        return 2
    cache = ClusterCache()
    service = ExtenderService(config, cache)
    watcher: CacheWatcher | None = None
    if args.static_cluster:
        try:
            _load_static(cache, args.static_cluster)
        except (OSError, ValueError, ExtenderError) as exc:
            print(f"outrider extender: cannot load {args.static_cluster}: {exc}", file=sys.stderr)
            return 2
        log.info("serving a static cluster of %d nodes from %s", len(cache), args.static_cluster)
    else:
        api_client = kube_client_or_report(args.kubeconfig, "outrider extender")
        if api_client is None:
            return 2
        watcher = CacheWatcher(cache, api_client, watch_deployments=config.watch_deployments)
        watcher.start()
        active = watcher
        service.ready = lambda: active.wait_synced(0)
    log.info("extender listening on http://%s:%d/scheduler", config.host, config.port)
    try:
        asyncio.run(_run(service, config.host, config.port, args.metrics_host, args.metrics_port))
    finally:
        if watcher is not None:
            watcher.stop()
    return 0


async def _run(service: Any, host: str, port: int, metrics_host: str, metrics_port: int) -> None:
    """Serve the scheduler API (and the metrics listener, if asked) until SIGTERM or SIGINT."""
    from aiohttp import web

    from .server import create_app, create_metrics_app

    sites = [(create_app(service), host, port)]
    if metrics_port:
        sites.append((create_metrics_app(service), metrics_host, metrics_port))
    runners = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for app, address, listen in sites:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, address, listen).start()
        if metrics_port:
            log.info("extender metrics and health on http://%s:%d/metrics", metrics_host, metrics_port)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
