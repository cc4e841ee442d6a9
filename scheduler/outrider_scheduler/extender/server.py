"""The extender's HTTP service (aiohttp): ``/scheduler/filter``, ``/scheduler/prioritize``,
``/metrics``, ``/healthz`` (readiness) and ``/livez`` (liveness).

Bad input (malformed JSON, missing fields, unknown nodes) is answered with HTTP 400 and a JSON
``Error`` naming the problem; unexpected faults with HTTP 500 and a one-line ``Error``, never a
stack trace. Each call runs within the configured time budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .cache import ClusterCache
from .config import ExtenderConfig
from .engine import Engine
from .errors import BadRequestError, UnknownNodesError
from .gctuning import freeze_loop
from .metrics import ExtenderMetrics
from .nodes import NodeState
from .protocol import MAX_PRIORITY, ExtenderArgs, ExtenderFilterResult
from .requirements import PodRequirements
from .strategies import ForecastHeadroom, StatusHeadroomSource

__all__ = ["APP_KEY", "ExtenderService", "create_app"]

log = logging.getLogger(__name__)

_MAX_BODY = 128 * 1024 * 1024
_SCORES = [str(i) for i in range(MAX_PRIORITY + 1)]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(), status=status, content_type="application/json"
    )


class ExtenderService:
    """Request handling, independent of how the cache is fed."""

    def __init__(
        self, config: ExtenderConfig, cache: ClusterCache, metrics: ExtenderMetrics | None = None
    ) -> None:
        self.config = config
        self.cache = cache
        self.metrics = metrics or ExtenderMetrics()
        self.metrics.track_cache_size(lambda: len(cache))
        strategies = config.build_strategies()
        for strategy, _ in strategies:
            if isinstance(strategy, ForecastHeadroom):
                # The planner's plan: the InferenceDeployments' status, from this service's watch cache.
                strategy.source = StatusHeadroomSource(cache.deployment, strategy.source, cache.reservations)
        self.engine = Engine(strategies, budget_s=config.budget_ms / 1000.0, metrics=self.metrics)
        self.ready: Callable[[], bool] = lambda: True

    def _resolve(self, args: ExtenderArgs) -> list[NodeState]:
        if args.node_names is not None:
            nodes, unknown = self.cache.lookup(args.node_names)
            if unknown:
                raise UnknownNodesError(unknown)
            return nodes
        return [self.cache.transient_node(obj) for obj in args.nodes or []]

    async def filter(self, request: web.Request) -> web.Response:
        """POST /scheduler/filter."""
        return await self._timed("filter", request, self._filter)

    async def prioritize(self, request: web.Request) -> web.Response:
        """POST /scheduler/prioritize."""
        return await self._timed("prioritize", request, self._prioritize)

    async def _timed(
        self, verb: str, request: web.Request, handler: Callable[[bytes], Awaitable[web.Response]]
    ) -> web.Response:
        start = time.perf_counter()
        outcome = "ok"
        try:
            body = await request.read()
            response = await handler(body)
        except BadRequestError as exc:
            outcome = "bad_request"
            log.info("%s: bad request: %s", verb, exc)
            response = _json(self._error_body(verb, str(exc)), status=400)
        except Exception as exc:
            outcome = "error"
            log.exception("%s: internal error", verb)
            response = _json(self._error_body(verb, f"internal error: {type(exc).__name__}"), status=500)
        elapsed = time.perf_counter() - start
        # Standard Server-Timing header: the time spent inside the extender, for clients and benchmarks.
        response.headers["Server-Timing"] = f"extender;dur={elapsed * 1000:.3f}"
        self.metrics.requests.labels(verb, outcome).inc()
        self.metrics.latency.labels(verb).observe(elapsed)
        return response

    @staticmethod
    def _error_body(verb: str, message: str) -> dict[str, Any]:
        if verb == "filter":
            return ExtenderFilterResult(error=message).to_wire()
        return {"Error": message}

    async def _filter(self, body: bytes) -> web.Response:
        args = ExtenderArgs.from_json(body)
        pod = PodRequirements.from_pod(args.pod)
        nodes = self._resolve(args)
        outcome = self.engine.filter(pod, nodes)
        if outcome.timed_out:
            self.metrics.budget_exhausted.labels("filter").inc()
            log.warning(
                "filter %s: budget exhausted after %d of %d nodes", pod.key, outcome.evaluated, len(nodes)
            )
        result = ExtenderFilterResult(
            failed_nodes=outcome.failed, failed_and_unresolvable_nodes=outcome.unresolvable
        )
        if args.node_names is not None:
            result.node_names = [n.name for n in outcome.passed]
        else:
            keep = {n.name for n in outcome.passed}
            result.nodes = [o for o in args.nodes or [] if o.get("metadata", {}).get("name") in keep]
        if not outcome.passed:
            log.info("filter %s: no node fits (%s)", pod.key, dict(outcome.reasons))
        return _json(result.to_wire())

    async def _prioritize(self, body: bytes) -> web.Response:
        args = ExtenderArgs.from_json(body)
        pod = PodRequirements.from_pod(args.pod)
        nodes = self._resolve(args)
        outcome = self.engine.prioritize(pod, nodes, self.cache if args.node_names is not None else None)
        if outcome.timed_out:
            self.metrics.budget_exhausted.labels("prioritize").inc()
            log.warning(
                "prioritize %s: budget exhausted after %d of %d nodes", pod.key, outcome.evaluated, len(nodes)
            )
        text = ",".join([n.host_json + _SCORES[v] + "}" for n, v in zip(nodes, outcome.values, strict=True)])
        return web.Response(body=f"[{text}]".encode(), content_type="application/json")

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        """GET /metrics in the Prometheus text format."""
        return web.Response(
            body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def livez(self, request: web.Request) -> web.Response:
        """GET /livez: 200 whenever the event loop runs (the liveness probe; a hung loop fails it)."""
        return _json({"status": "alive"})

    async def healthz(self, request: web.Request) -> web.Response:
        """GET /healthz: 200 once the cache has synced, 503 before."""
        if self.ready():
            return _json({"status": "ok", "nodes": len(self.cache)})
        return _json({"status": "syncing", "nodes": len(self.cache)}, status=503)


APP_KEY = web.AppKey("outrider_extender", ExtenderService)
"""Where the service object is stored on the aiohttp application."""


def create_metrics_app(service: ExtenderService) -> web.Application:
    """The metrics listener's application: ``/metrics`` and ``/healthz`` only (no scheduler API)."""
    app = web.Application(client_max_size=1024)
    app.router.add_get("/metrics", service.metrics_endpoint)
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/livez", service.livez)
    return app


def create_app(service: ExtenderService) -> web.Application:
    """Build the aiohttp application serving ``service``."""
    app = web.Application(client_max_size=_MAX_BODY)
    app[APP_KEY] = service
    app.router.add_post("/scheduler/filter", service.filter)
    app.router.add_post("/scheduler/prioritize", service.prioritize)
    app.router.add_get("/metrics", service.metrics_endpoint)
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/livez", service.livez)

    async def gc_task(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(freeze_loop(service.ready, lambda: service.cache.generation))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(gc_task)
    return app
