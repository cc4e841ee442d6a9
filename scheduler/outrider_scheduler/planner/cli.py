"""``outrider planner serve``: the planner process (watch, poll pods, decide, act, publish).

Exit codes: 0 on SIGTERM/SIGINT, 2 for bad arguments or an unusable kubeconfig, 3 when this
replica lost the planner Lease (it stops acting at once; the kubelet restarts it as a follower).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time

from outrider_cli.bootstrap import add_logging_arguments, kube_client_or_report, setup_logging

from .profile_cli import add_profile_parser

__all__ = ["register"]

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> object:
    from .decisions import CoreSettings
    from .service import PlannerSettings

    return PlannerSettings(
        poll_interval_s=args.poll_interval,
        namespaces=tuple(args.namespace or ()),
        core=CoreSettings(),
    )


async def _health(host: str, port: int, service: object, cache: object, stale_s: float) -> object:
    from aiohttp import web

    from .cluster import PlannerCache
    from .service import PlannerService

    assert isinstance(service, PlannerService) and isinstance(cache, PlannerCache)

    async def healthz(_: web.Request) -> web.Response:
        age = time.monotonic() - service.last_cycle_at
        ok = service.last_cycle_at == 0.0 or age < stale_s
        return web.json_response({"ok": ok, "lastCycleAgeSeconds": round(age, 3)}, status=200 if ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        ok = cache.synced()
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def actions(_: web.Request) -> web.Response:
        return web.json_response({"actions": [a.to_json() for a in service.recent]})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/debug/actions", actions)
    runner = web.AppRunner(app, access_log=None)  # probes every few seconds: no log line each
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def _serve(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from outrider_operator.kube.rest import KubeRest

    from .actuator import Actuator
    from .cluster import PlannerCache
    from .leader import LeaderElector
    from .metrics import PlannerMetrics
    from .profile import ProfileBook
    from .publishing import StatusWriter
    from .runtime_client import RuntimeClient
    from .service import PlannerService, PlannerSettings

    setup_logging(args.log_format, args.log_level)
    for library in ("urllib3", "kubernetes", "asyncio"):  # --log-level debug is about the planner's own
        logging.getLogger(library).setLevel(max(logging.INFO, logging.getLogger().level))
    # the lease library logs every renewal (every 2 s) at INFO; the planner logs taking and losing it
    logging.getLogger("leaderelection").setLevel(max(logging.WARNING, logging.getLogger().level))
    if not 0.05 <= args.poll_interval <= 10:
        print("outrider planner serve: --poll-interval must be within [0.05, 10] seconds", file=sys.stderr)
        return 2
    api_client = kube_client_or_report(args.kubeconfig, "outrider planner serve")
    if api_client is None:
        return 2
    settings = _settings(args)
    assert isinstance(settings, PlannerSettings)
    metrics = PlannerMetrics()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind_address, registry=metrics.registry)
    rest = KubeRest(api_client)
    profiles = ProfileBook.load(args.profile or [])
    cache = PlannerCache()
    cache.start(api_client)
    identity = args.identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    lost = {"flag": False}

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def on_lost() -> None:
            lost["flag"] = True
            loop.call_soon_threadsafe(stop.set)

        elector = None
        if args.leader_election:
            elector = LeaderElector(
                api_client, args.lease_namespace, args.lease_name, identity, on_lost=on_lost
            )
            elector.start()
        runtime = RuntimeClient()
        actuator = Actuator(rest, runtime)
        service = PlannerService(cache, StatusWriter(rest), actuator, runtime, profiles, metrics, settings)
        health = (
            await _health(args.bind_address, args.health_port, service, cache, 30.0)
            if args.health_port
            else None
        )
        if not await asyncio.to_thread(cache.wait_synced, 60.0):
            log.warning(
                "the watch caches did not list within 60 s; going on (readiness stays false until they do)"
            )
        log.info(
            "planner %s polling every %.2fs (%s)",
            identity,
            settings.poll_interval_s,
            "leader election on" if elector else "leader election off",
        )
        try:
            await service.run(stop, elector.leading if elector else (lambda: True))
            if elector is not None and not lost["flag"]:
                await asyncio.to_thread(elector.release)
        finally:
            await actuator.close()
            await runtime.close()
            cache.stop()
            if health is not None:
                from aiohttp import web

                assert isinstance(health, web.AppRunner)
                await health.cleanup()
        return 3 if lost["flag"] else 0

    return asyncio.run(main())


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``planner`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="planner_command", metavar="SUBCOMMAND")
    sv = sub.add_parser(
        "serve", help="Watch, poll the serving pods, scale ahead of the forecast and answer surges."
    )
    sv.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig (default in-cluster)."
    )
    sv.add_argument(
        "--namespace", action="append", help="Plan only this namespace (repeatable; default all)."
    )
    sv.add_argument(
        "--poll-interval", type=float, default=0.5, help="Seconds between pod polls (default 0.5)."
    )
    sv.add_argument(
        "--profile",
        action="append",
        help="Capacity profile file or folder (repeatable); the builtin MiniLM CPU profile is always known.",
    )
    sv.add_argument("--metrics-port", type=int, default=0, help="Serve /metrics on this port (0: off).")
    sv.add_argument(
        "--health-port", type=int, default=0, help="Serve /healthz and /readyz on this port (0: off)."
    )
    sv.add_argument("--bind-address", default="0.0.0.0", help="Address of the metrics and health servers.")
    sv.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Act only while holding the planner Lease (default on).",
    )
    sv.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "outrider-system"))
    sv.add_argument(
        "--lease-name", default="outrider-planner", help="Name of the Lease (default outrider-planner)."
    )
    sv.add_argument("--identity", default=None, help="Holder identity (default $POD_NAME, else host-pid).")
    add_logging_arguments(sv)
    sv.set_defaults(func=_serve)
    add_profile_parser(sub)

    def _usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_usage)
