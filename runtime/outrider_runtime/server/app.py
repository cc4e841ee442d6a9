"""aiohttp application speaking KServe V2 / Triton HTTP, plus Outrider's admin endpoints.

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

The admin bodies and answers are the typed contract of :mod:`outrider_operator.api.runtime`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from outrider_operator.api.runtime import BatchingUpdate, StateChange
from outrider_runtime.config import DynamicMode, ModelState, RuntimeConfig
from outrider_runtime.errors import (
    BadRequestError,
    InferenceError,
    ModelNotFoundError,
    NotServingError,
    OverloadedError,
    RuntimeError_,
    StateError,
)
from outrider_runtime.metrics import GpuTelemetry, RuntimeMetrics
from outrider_runtime.models import LoadOverride, ModelHandle
from outrider_runtime.server.admin import batching_settings, parse_body, runtime_load, unsettled_reasons
from outrider_runtime.server.codec import HEADER, decode_request, encode_response
from outrider_runtime.server.limits import DECODE_WORKERS, OFFLOAD_BYTES, InputLimits, cut_utf8

__all__ = ["SERVER_KEY", "RuntimeServer", "build_app"]

log = logging.getLogger(__name__)

SERVER_NAME = "outrider"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data", "model_repository", "model_configuration", "statistics", "outrider_admin"]

SERVER_KEY: web.AppKey[RuntimeServer] = web.AppKey("outrider_server")
"""Where the app keeps its :class:`RuntimeServer`."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return web.json_response({"error": message}, status=status, headers=headers)


class RuntimeServer:
    """The runtime's models plus the HTTP handlers over them."""

    def __init__(
        self, config: RuntimeConfig, metrics: RuntimeMetrics | None = None, gpu: GpuTelemetry | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics or RuntimeMetrics()
        self.gpu = gpu if gpu is not None else GpuTelemetry()
        if self.gpu.available:
            self.metrics.registry.register(self.gpu)
        self.models: dict[str, ModelHandle] = {config.model.name: ModelHandle(config, self.metrics)}
        self.draining = False
        self.inflight = 0
        self._idle = asyncio.Event()
        self.boot_id = str(uuid.uuid4())
        """Identifies this server instance; a restarted process has a new one."""
        self._started = time.monotonic()
        self._decoders = ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="outrider-decode")
        """Where bodies over ``OFFLOAD_BYTES`` are decoded and tokenized, off the event loop."""

    def close(self) -> None:
        """Release the decode threads (after :meth:`drain`)."""
        self._decoders.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ lifecycle
    async def start_models(self) -> None:
        """Bring every model to the configured ``startState``."""
        target = self.config.server.start_state
        if target is not ModelState.COLD:
            for m in self.models.values():
                await m.load(target)

    async def drain(self, timeout_s: float | None = None) -> None:
        """SIGTERM path: stop taking requests, finish queued and in-flight ones, within the timeout."""
        self.draining = True
        timeout = self.config.server.drain_timeout_s if timeout_s is None else timeout_s

        async def _all() -> None:
            await asyncio.gather(*(m.drain() for m in self.models.values()))
            while self.inflight:
                self._idle.clear()
                await self._idle.wait()

        try:
            await asyncio.wait_for(_all(), timeout)
        except TimeoutError:
            log.warning("drain timed out after %.1fs with %d requests in flight", timeout, self.inflight)
            # what is still queued gets a 503 now instead of hanging until the connection drops
            for m in self.models.values():
                await m.abort_queued("the server is shutting down (drain timeout)")

    def model(self, name: str) -> ModelHandle:
        """Look a model up by name (404 if unknown)."""
        m = self.models.get(name)
        if m is None:
            raise ModelNotFoundError(f"unknown model {name!r}; this server has {sorted(self.models)}")
        return m

    # ------------------------------------------------------------------ handlers
    async def live(self, request: web.Request) -> web.Response:
        """Liveness."""
        return web.json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        """Readiness for Kubernetes: 200 only if all models serve and the server is not draining."""
        states = {n: m.state.value for n, m in self.models.items()}
        ok = not self.draining and all(m.state is ModelState.SERVING for m in self.models.values())
        return web.json_response(
            {"ready": ok, "models": states, "draining": self.draining}, status=200 if ok else 503
        )

    async def settled(self, request: web.Request) -> web.Response:
        """200 when every model is in its requested state, none is loading and the server is not draining.

        The readiness probe of every pool's pods: an active pod is Ready once serving, a warm one
        once loaded, a cold one at once, and a pod the planner is moving is not Ready mid-move.
        """
        reasons = unsettled_reasons(self.models.values(), self.draining)
        models = {
            n: {"state": m.state.value, "requestedState": m.requested_state.value, "loading": m.loading}
            for n, m in self.models.items()
        }
        body = {"settled": not reasons, "reasons": reasons, "models": models, "draining": self.draining}
        return web.json_response(body, status=503 if reasons else 200)

    async def server_metadata(self, request: web.Request) -> web.Response:
        """Server metadata."""
        return web.json_response({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})

    def _io(self, m: ModelHandle) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        inputs: list[dict[str, Any]] = [
            {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1], "optional": True},
        ]
        if m.accepts_text or m.state is ModelState.COLD:
            inputs.insert(0, {"name": "text", "datatype": "BYTES", "shape": [-1]})
        outputs: list[dict[str, Any]] = [
            {"name": "embeddings", "datatype": "FP32", "shape": [-1, m.hidden or -1]}
        ]
        return inputs, outputs

    async def model_metadata(self, request: web.Request) -> web.Response:
        """Model metadata (V2)."""
        return web.json_response(self.metadata_dict(self.model(request.match_info["model"])))

    def metadata_dict(self, m: ModelHandle) -> dict[str, Any]:
        """V2 model metadata of ``m``."""
        inputs, outputs = self._io(m)
        return {
            "name": m.name,
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {"state": m.state.value, "precision": m.precision.value},
        }

    async def model_ready(self, request: web.Request) -> web.Response:
        """Model readiness: 200 when serving."""
        m = self.model(request.match_info["model"])
        ok = m.state is ModelState.SERVING and not self.draining
        return web.json_response(
            {"name": m.name, "ready": ok, "state": m.state.value}, status=200 if ok else 400
        )

    async def model_config(self, request: web.Request) -> web.Response:
        """Triton-style model config of what is loaded."""
        return web.json_response(self.config_dict(self.model(request.match_info["model"])))

    def config_dict(self, m: ModelHandle) -> dict[str, Any]:
        """Triton-style model config of ``m`` (the JSON form of Triton's ModelConfig)."""
        s = m.settings
        inputs, outputs = self._io(m)
        tmap = {"INT64": "TYPE_INT64", "BYTES": "TYPE_STRING", "FP32": "TYPE_FP32"}
        return {
            "name": m.name,
            "platform": "onnxruntime_onnx",
            "backend": "onnxruntime",
            "max_batch_size": s.max_batch_size if s.dynamic else 0,
            "input": [
                {
                    "name": i["name"],
                    "data_type": tmap[i["datatype"]],
                    "dims": [-1],
                    "optional": bool(i.get("optional", False)),
                }
                for i in inputs
            ],
            "output": [
                {"name": o["name"], "data_type": tmap[o["datatype"]], "dims": [m.hidden or -1]}
                for o in outputs
            ],
            "dynamic_batching": {
                "max_queue_delay_microseconds": int(s.min_batch_delay_ms * 1000),
                "default_queue_policy": {"max_queue_size": self.config.server.max_queue_size},
            }
            if s.dynamic
            else None,
            "instance_group": [
                {
                    "name": sh.name,
                    "kind": "KIND_GPU" if sh.device.startswith("cuda") else "KIND_CPU",
                    "count": 1,
                    "gpus": [int(sh.device.split(":")[1])] if sh.device.startswith("cuda") else [],
                }
                for sh in (next(iter(m.pipelines.values())).shards if m.pipelines else [])
            ],
            "parameters": {
                "precision": {"string_value": m.precision.value},
                "lookahead_window": {"string_value": str(s.lookahead_window)},
                "state": {"string_value": m.state.value},
                "agreement": {"string_value": json.dumps(m.agreement)},
                "adaptive_routing": {"string_value": m.policy.describe() if m.policy else ""},
            },
        }

    async def stats(self, request: web.Request) -> web.Response:
        """Inference statistics (Triton statistics extension)."""
        name = request.match_info.get("model")
        models = [self.model(name)] if name else list(self.models.values())
        return web.json_response({"model_stats": [m.stats.as_triton(m.name) for m in models]})

    async def repository_index(self, request: web.Request) -> web.Response:
        """Repository index; tritonclient posts an empty body."""
        body = await self._json_body(request)
        return web.json_response(self.index_list(bool(body.get("ready", False))))

    def index_list(self, ready_only: bool = False) -> list[dict[str, str]]:
        """Repository index entries (Triton states: READY, WARM, UNAVAILABLE)."""
        out = []
        for m in self.models.values():
            if ready_only and m.state is not ModelState.SERVING:
                continue
            state = {"serving": "READY", "warm": "WARM", "cold": "UNAVAILABLE"}[m.state.value]
            out.append({"name": m.name, "version": "1", "state": state, "reason": m.state.value})
        return out

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
        m = self.model(request.match_info["model"])
        body = await self._json_body(request)
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequestError(f"'parameters' must be a JSON object, not {type(params).__name__}")
        config = params.get("config")
        if config is not None and not isinstance(config, str):
            raise BadRequestError(
                f"'parameters.config' must be a string holding the Triton model config JSON, "
                f"not {type(config).__name__}"
            )
        override = LoadOverride.from_triton_config(config) if config is not None else None
        await m.load(ModelState.SERVING, override)
        return web.json_response({})

    async def unload(self, request: web.Request) -> web.Response:
        """Repository unload: back to cold."""
        m = self.model(request.match_info["model"])
        await m.unload()
        return web.json_response({})

    async def admin_load(self, request: web.Request) -> web.Response:
        """Live load of one model (``RuntimeLoad``) for the planner; cheap enough to poll at 2 Hz."""
        m = self.model(request.query.get("model", self.config.model.name))
        uptime = time.monotonic() - self._started
        load = runtime_load(m, boot_id=self.boot_id, uptime_s=uptime, draining=self.draining)
        return web.json_response(load.to_wire())

    async def admin_state(self, request: web.Request) -> web.Response:
        """Move a model between cold, warm and serving (body: ``StateChange``)."""
        change = parse_body(StateChange, await self._json_body(request), request.path)
        m = self.model(change.model or self.config.model.name)
        await m.set_state(ModelState(change.state))
        return web.json_response({"model": m.name, "state": m.state.value})

    async def admin_batching(self, request: web.Request) -> web.Response:
        """Resize dynamic batching live (body: ``BatchingUpdate``; answer: ``BatchingSettings``)."""
        update = parse_body(BatchingUpdate, await self._json_body(request), request.path)
        m = self.model(update.model or self.config.model.name)
        changes = update.model_dump(exclude={"model", "dynamic"}, exclude_none=True)
        if update.dynamic is not None:
            changes["dynamic"] = update.dynamic == DynamicMode.ENABLED
        m.resize(**changes)
        return web.json_response(batching_settings(m).to_wire())

    async def metrics_handler(self, request: web.Request) -> web.Response:
        """Prometheus exposition."""
        for m in self.models.values():
            for p, b in m.batchers.items():
                self.metrics.queue_depth.labels(m.name, p.value).set(b.depth)
        return web.Response(
            body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # ------------------------------------------------------------------ inference
    @staticmethod
    def limits(m: ModelHandle) -> InputLimits:
        """The bounds one request to ``m`` is checked against before it is decoded."""
        return InputLimits(max_rows=m.settings.max_batch_size, max_len=m.max_len)

    def _rows(
        self, m: ModelHandle, tensors: dict[str, np.ndarray], limits: InputLimits
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        if "text" in tensors:
            if len(tensors) > 1:
                raise BadRequestError("send either 'text' or 'input_ids', not both")
            t = tensors["text"]
            if t.dtype != np.object_:
                raise BadRequestError("input 'text' must have datatype BYTES")
            if t.ndim not in (1, 2) or (t.ndim == 2 and t.shape[1] != 1):
                raise BadRequestError(f"input 'text' must have shape [N] or [N, 1], got {list(t.shape)}")
            cut = limits.max_text_chars  # the tokenizer keeps max_len tokens; never read megabytes
            texts = [cut_utf8(x, cut) if isinstance(x, bytes) else str(x)[:cut] for x in t.reshape(-1)]
            if not texts:
                raise BadRequestError("input 'text' is empty")
            return m.tokenize(texts), None
        if "input_ids" not in tensors:
            raise BadRequestError("missing input 'input_ids' (or 'text')")
        ids = tensors["input_ids"]
        if ids.dtype not in (np.int64, np.int32):
            raise BadRequestError(f"input 'input_ids' must be INT64 (or INT32), got {ids.dtype}")
        if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
            raise BadRequestError(
                f"input 'input_ids' must have shape [batch, seq] with both > 0, got {list(ids.shape)}"
            )
        ids = ids.astype(np.int64)
        vocab = m.vocab_size
        if ids.min() < 0 or (vocab is not None and ids.max() >= vocab):
            raise BadRequestError(f"input 'input_ids' has token ids outside [0, {vocab or 'vocab'})")
        if "attention_mask" in tensors:
            mask = tensors["attention_mask"]
            if mask.dtype not in (np.int64, np.int32):
                raise BadRequestError(f"input 'attention_mask' must be INT64 (or INT32), got {mask.dtype}")
            if mask.shape != ids.shape:
                raise BadRequestError(
                    f"input 'attention_mask' shape {list(mask.shape)} != input_ids shape {list(ids.shape)}"
                )
            mask = mask.astype(np.int64)
            if ((mask != 0) & (mask != 1)).any():
                raise BadRequestError("input 'attention_mask' may hold only 0 and 1")
            lengths = mask.sum(axis=1)
            if (lengths == 0).any():
                raise BadRequestError("a row of 'attention_mask' is all zeros")
            # right padding only: each row is 1s then 0s (rows are cut to their mask's length)
            if (np.diff(mask, axis=1) > 0).any():
                raise BadRequestError(
                    "input 'attention_mask' must be right-padded: each row 1s followed by 0s "
                    "(left padding or gaps are not supported)"
                )
            return [ids[i, : lengths[i]] for i in range(ids.shape[0])], [
                mask[i, : lengths[i]] for i in range(ids.shape[0])
            ]
        return [ids[i] for i in range(ids.shape[0])], None

    async def _prepare(
        self, m: ModelHandle, decode: Callable[[InputLimits], dict[str, np.ndarray]], size: int
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Decode and tokenize a request; one over ``OFFLOAD_BYTES`` on a decode thread."""
        limits = self.limits(m)

        def prepare() -> tuple[list[np.ndarray], list[np.ndarray] | None]:
            return self._rows(m, decode(limits), limits)

        if size <= OFFLOAD_BYTES:
            return prepare()
        return await asyncio.get_running_loop().run_in_executor(self._decoders, prepare)

    async def run_inference(
        self, m: ModelHandle, decode: Callable[[InputLimits], dict[str, np.ndarray]], size: int = 0
    ) -> tuple[np.ndarray, str]:
        """Decode, validate, batch and run one request (shared by HTTP and gRPC); keeps the books.

        ``decode`` gets the model's :class:`InputLimits` and must check each input's declared shape
        against them before decoding its data; ``size`` is the request's size in bytes.
        """
        t0 = time.perf_counter()
        counters = m.counters
        counters.received += 1
        counters.inflight += 1
        self.inflight += 1
        succeeded = False
        try:
            try:
                if self.draining:
                    raise NotServingError("server is shutting down", retry_after_s=1.0)
                rows, masks = await self._prepare(m, decode, size)
                out, precision = await m.infer(rows, masks)
            except Exception as exc:
                code = exc.status if isinstance(exc, InferenceError) else 500
                if isinstance(exc, OverloadedError):
                    counters.rejected += 1
                m.metrics.failures.labels(m.name, str(code)).inc()
                m.metrics.requests.labels(m.name, "failure").inc()
                m.stats.fail.add(time.perf_counter() - t0)
                raise
            elapsed = time.perf_counter() - t0
            m.metrics.latency.labels(m.name, "total").observe(elapsed)
            m.metrics.requests.labels(m.name, "success").inc()
            m.stats.success.add(elapsed)
            m.stats.inference_count += len(rows)
            m.stats.last_inference_ms = int(time.time() * 1000)
            counters.completed += 1
            counters.rows_completed += len(rows)
            m.latencies.add(elapsed)
            succeeded = True
            return out.astype(np.float32, copy=False), precision
        finally:
            if not succeeded:  # any failure, a cancelled request included
                counters.failed += 1
            counters.inflight -= 1
            self.inflight -= 1
            if not self.inflight:
                self._idle.set()

    async def infer(self, request: web.Request) -> web.Response:
        """V2 inference with JSON or binary tensors."""
        m = self.model(request.match_info["model"])
        limit = self.config.server.max_request_bytes
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

        out, precision = await self.run_inference(m, decode, len(body))
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
    except RuntimeError_ as exc:
        return _error(500, str(exc))
    except Exception as exc:  # keep serving; the client learns what went wrong
        log.exception("unhandled error on %s", request.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")


def build_app(server: RuntimeServer) -> web.Application:
    """Build the aiohttp application for ``server``."""
    app = web.Application(middlewares=[_errors], client_max_size=server.config.server.max_request_bytes + 1)
    s = server
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
    app[SERVER_KEY] = s
    return app
