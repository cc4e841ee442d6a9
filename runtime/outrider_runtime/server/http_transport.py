"""The HTTP transport: KServe V2 / Triton HTTP plus Outrider's admin endpoints, over a :class:`ModelService`.

Routes (``{m}`` = model name; every ``/v2/models/{m}/...`` route also exists under
``/v2/models/{m}/versions/{v}/...``):

=========================================  =====================================================
``GET  /v2/health/live``                   200 while the process runs
``GET  /v2/health/ready``                  200 only when every model is ``serving`` and not draining
``GET  /v2/health/settled``                200 when every model is in the state last asked for,
                                           nothing loads and the server is not draining (the
                                           Kubernetes readiness probe of every pool's pods)
``GET  /v2``                               server metadata and extensions
``GET  /v2/models/{m}``                    model metadata (inputs, outputs)
``GET  /v2/models/{m}/ready``              200 when the model is ``serving``
``GET  /v2/models/{m}/config``             Triton-style model config (JSON)
``POST /v2/models/{m}/infer``              inference: JSON or binary tensor data
``GET  /v2/models/[{m}/]stats``            Triton inference statistics
``POST /v2/repository/index``              repository index (empty body accepted)
``POST /v2/repository/models/{m}/load``    load; ``parameters.config`` overrides (Triton JSON)
``POST /v2/repository/models/{m}/unload``  unload (back to cold)
``GET  /v2/admin/load[?model=m]``          live load for the planner (``RuntimeLoad``, camelCase)
``POST /v2/admin/state``                   ``StateChange``: ``{"state": "cold|warm|serving"}``
``POST /v2/admin/batching``                ``BatchingUpdate``: ``{"maxBatchSize": 32, ...}`` live,
                                           no reload; answers ``BatchingSettings``
``GET  /metrics``                          Prometheus
=========================================  =====================================================

The admin bodies and answers are the typed contract of :mod:`outrider_operator.api.runtime`; the
handlers only parse and answer, everything else is the service's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from outrider_operator.api.runtime import BatchingUpdate, StateChange
from outrider_runtime.errors import (
    BadRequestError,
    InferenceError,
    NotServingError,
    OutriderRuntimeError,
    OverloadedError,
    StateError,
)
from outrider_runtime.server.admin import parse_body
from outrider_runtime.server.codec import HEADER, decode_request, encode_response
from outrider_runtime.server.limits import InputLimits
from outrider_runtime.server.service import EXTENSIONS, SERVER_NAME, SERVER_VERSION, ModelService

__all__ = ["SERVICE_KEY", "HttpTransport", "build_app"]

log = logging.getLogger(__name__)

SERVICE_KEY: web.AppKey[ModelService] = web.AppKey("outrider_service")
"""Where the app keeps its :class:`ModelService`."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return web.json_response({"error": message}, status=status, headers=headers)


class HttpTransport:
    """The aiohttp handlers over one :class:`ModelService`."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def live(self, request: web.Request) -> web.Response:
        """Liveness."""
        return web.json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        """Readiness for Kubernetes: 200 only if all models serve and the server is not draining."""
        ok, body = self.service.ready_report()
        return web.json_response(body, status=200 if ok else 503)

    async def settled(self, request: web.Request) -> web.Response:
        """200 when every model is in its requested state (the readiness probe of every pool's pods)."""
        ok, body = self.service.settled_report()
        return web.json_response(body, status=200 if ok else 503)

    async def server_metadata(self, request: web.Request) -> web.Response:
        """Server metadata."""
        return web.json_response({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})

    async def model_metadata(self, request: web.Request) -> web.Response:
        """Model metadata (V2)."""
        s = self.service
        return web.json_response(s.metadata_dict(s.model(request.match_info["model"])))

    async def model_ready(self, request: web.Request) -> web.Response:
        """Model readiness: 200 when serving."""
        m = self.service.model(request.match_info["model"])
        ok = self.service.model_ready(m)
        return web.json_response(
            {"name": m.name, "ready": ok, "state": m.state.value}, status=200 if ok else 400
        )

    async def model_config(self, request: web.Request) -> web.Response:
        """Triton-style model config of what is loaded."""
        s = self.service
        return web.json_response(s.config_dict(s.model(request.match_info["model"])))

    async def stats(self, request: web.Request) -> web.Response:
        """Inference statistics (Triton statistics extension)."""
        name = request.match_info.get("model")
        s = self.service
        models = [s.model(name)] if name else list(s.models.values())
        return web.json_response({"model_stats": [m.stats.as_triton(m.name) for m in models]})

    async def repository_index(self, request: web.Request) -> web.Response:
        """Repository index; tritonclient posts an empty body."""
        body = await self._json_body(request)
        return web.json_response(self.service.index_list(bool(body.get("ready", False))))

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        """The request's JSON object body ({} when empty); anything else is a 400 naming the problem."""
        try:
            raw = await request.read()
        except RequestPayloadError as exc:  # e.g. Content-Encoding: gzip on a body that is not gzip
            raise BadRequestError(f"body could not be read: {exc}") from exc
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequestError(f"body is not valid JSON: {exc}") from exc
        except RecursionError:
            raise BadRequestError("body is not valid JSON: it nests too deeply") from None
        if not isinstance(body, dict):
            raise BadRequestError(f"body must be a JSON object, not {type(body).__name__}")
        return body

    async def load(self, request: web.Request) -> web.Response:
        """Repository load, with an optional Triton config override in ``parameters.config``."""
        m = self.service.model(request.match_info["model"])
        body = await self._json_body(request)
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequestError(f"'parameters' must be a JSON object, not {type(params).__name__}")
        await self.service.load_model(m, params.get("config"))
        return web.json_response({})

    async def unload(self, request: web.Request) -> web.Response:
        """Repository unload: back to cold."""
        await self.service.model(request.match_info["model"]).unload()
        return web.json_response({})

    async def admin_load(self, request: web.Request) -> web.Response:
        """Live load of one model (``RuntimeLoad``) for the planner."""
        return web.json_response(self.service.load_report(request.query.get("model")).to_wire())

    async def admin_state(self, request: web.Request) -> web.Response:
        """Move a model between cold, warm and serving (body: ``StateChange``)."""
        change = parse_body(StateChange, await self._json_body(request), request.path)
        m = await self.service.change_state(change)
        return web.json_response({"model": m.name, "state": m.state.value})

    async def admin_batching(self, request: web.Request) -> web.Response:
        """Resize dynamic batching live (body: ``BatchingUpdate``; answer: ``BatchingSettings``)."""
        update = parse_body(BatchingUpdate, await self._json_body(request), request.path)
        return web.json_response(self.service.resize(update).to_wire())

    async def metrics_handler(self, request: web.Request) -> web.Response:
        """Prometheus exposition."""
        return web.Response(
            body=self.service.metrics_exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def infer(self, request: web.Request) -> web.Response:
        """V2 inference with JSON or binary tensors."""
        m = self.service.model(request.match_info["model"])
        limit = self.service.config.server.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            m.metrics.failures.labels(m.name, "400").inc()
            raise BadRequestError(
                f"request body of {request.content_length} bytes exceeds the limit of "
                f"{limit} bytes (server.maxRequestBytes)"
            )
        body = await request.read()
        hl = request.headers.get(HEADER)
        try:
            header_length = int(hl) if hl is not None else None
        except ValueError as exc:
            raise BadRequestError(f"{HEADER} must be an integer, got {hl!r}") from exc
        parsed: dict[str, Any] = {}

        binary: set[str] = set()

        def decode(limits: InputLimits) -> dict[str, np.ndarray]:
            header, tensors = decode_request(body, header_length, limits.check)
            parsed.update(header)
            # requested outputs are checked before any compute is spent on the request
            requested = header.get("outputs")
            params = header.get("parameters") or {}
            if requested:
                for o in requested:
                    if not isinstance(o, dict) or o.get("name") != "embeddings":
                        name = o.get("name") if isinstance(o, dict) else o
                        raise BadRequestError(f"unknown output {name!r}; model has 'embeddings'")
                    if (o.get("parameters") or {}).get("binary_data", False):
                        binary.add("embeddings")
            elif isinstance(params, dict) and params.get("binary_data_output", False):
                binary.add("embeddings")
            return tensors

        out, precision = await self.service.run_inference(m, decode, len(body))
        header_out = {"model_name": m.name, "model_version": "1", "parameters": {"precision": precision}}
        if "id" in parsed:
            header_out["id"] = parsed["id"]
        payload, hlen = encode_response(header_out, {"embeddings": ("FP32", out)}, binary)
        headers = {HEADER: str(hlen)} if hlen is not None else {}
        ctype = "application/octet-stream" if hlen is not None else "application/json"
        return web.Response(body=payload, headers=headers, content_type=ctype)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (OverloadedError, NotServingError) as exc:
        return _error(exc.status, exc.message, exc.retry_after_s)
    except InferenceError as exc:
        return _error(exc.status, exc.message)
    except StateError as exc:
        return _error(400, str(exc))
    except web.HTTPRequestEntityTooLarge as exc:
        return _error(400, f"request body exceeds the size limit: {exc.text}")
    except RequestPayloadError as exc:  # a body aiohttp could not read (a bad Content-Encoding)
        return _error(400, f"body could not be read: {exc}")
    except web.HTTPException:
        raise
    except OutriderRuntimeError as exc:
        return _error(500, str(exc))
    except Exception as exc:  # keep serving; the client learns what went wrong
        log.exception("unhandled error on %s", request.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")


def build_app(service: ModelService) -> web.Application:
    """Build the aiohttp application over ``service``."""
    app = web.Application(middlewares=[_errors], client_max_size=service.config.server.max_request_bytes + 1)
    s = HttpTransport(service)
    r = app.router
    r.add_get("/v2/health/live", s.live)
    r.add_get("/v2/health/ready", s.ready)
    r.add_get("/v2/health/settled", s.settled)
    r.add_get("/v2", s.server_metadata)
    r.add_get("/v2/models/stats", s.stats)
    for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        r.add_get(base, s.model_metadata)
        r.add_get(base + "/ready", s.model_ready)
        r.add_get(base + "/config", s.model_config)
        r.add_get(base + "/stats", s.stats)
        r.add_post(base + "/infer", s.infer)
    r.add_post("/v2/repository/index", s.repository_index)
    r.add_post("/v2/repository/models/{model}/load", s.load)
    r.add_post("/v2/repository/models/{model}/unload", s.unload)
    r.add_get("/v2/admin/load", s.admin_load)
    r.add_post("/v2/admin/state", s.admin_state)
    r.add_post("/v2/admin/batching", s.admin_batching)
    r.add_get("/metrics", s.metrics_handler)
    app[SERVICE_KEY] = service
    return app
