"""The runtime's model service: its models, their states and the inference path, with no transport.

:mod:`.http_transport` (KServe V2 / Triton HTTP plus the admin API) and :mod:`.grpc_transport`
(``GRPCInferenceService``) are two thin transports over one :class:`ModelService`, so states,
batching, statistics, limits and errors are the same whichever protocol a client speaks. The
admin bodies and answers are the typed contract of :mod:`outrider_operator.api.runtime`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from prometheus_client import generate_latest
from pydantic import ValidationError

from outrider_operator.api.runtime import BatchingSettings, BatchingUpdate, RuntimeLoad, StateChange
from outrider_runtime.batching import BatchSettings
from outrider_runtime.config import (
    BatchingConfig,
    ModelState,
    RuntimeConfig,
    describe_validation_error,
)
from outrider_runtime.errors import (
    BadRequestError,
    InferenceError,
    ModelNotFoundError,
    NotServingError,
    OverloadedError,
)
from outrider_runtime.load_override import LoadOverride
from outrider_runtime.metrics import GpuTelemetry, RuntimeMetrics
from outrider_runtime.model_handle import ModelHandle
from outrider_runtime.server.admin import batching_settings, runtime_load, unsettled_reasons
from outrider_runtime.server.limits import DECODE_WORKERS, OFFLOAD_BYTES, InputLimits, cut_utf8

__all__ = ["EXTENSIONS", "SERVER_NAME", "SERVER_VERSION", "ModelService"]

log = logging.getLogger(__name__)

SERVER_NAME = "outrider"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data", "model_repository", "model_configuration", "statistics", "outrider_admin"]
"""The V2 protocol extensions both transports announce."""


class ModelService:
    """The runtime's models and what can be done with them, whichever transport asks."""

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

    # ------------------------------------------------------------------ health
    def ready_report(self) -> tuple[bool, dict[str, Any]]:
        """Readiness for Kubernetes: ready only if every model serves and the server is not draining."""
        states = {n: m.state.value for n, m in self.models.items()}
        ok = all(self.model_ready(m) for m in self.models.values())
        return ok, {"ready": ok, "models": states, "draining": self.draining}

    def settled_report(self) -> tuple[bool, dict[str, Any]]:
        """Whether every model is in its requested state, none is loading and the server is not draining.

        The readiness probe of every pool's pods: an active pod is Ready once serving, a warm one
        once loaded, a cold one at once, and a pod the planner is moving is not Ready mid-move.
        """
        reasons = unsettled_reasons(self.models.values(), self.draining)
        models = {
            n: {"state": m.state.value, "requestedState": m.requested_state.value, "loading": m.loading}
            for n, m in self.models.items()
        }
        body = {"settled": not reasons, "reasons": reasons, "models": models, "draining": self.draining}
        return not reasons, body

    def model_ready(self, m: ModelHandle) -> bool:
        """Whether ``m`` takes inference requests now."""
        return m.state is ModelState.SERVING and not self.draining

    # ------------------------------------------------------------------ metadata
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

    def index_list(self, ready_only: bool = False) -> list[dict[str, str]]:
        """Repository index entries (Triton states: READY, WARM, UNAVAILABLE)."""
        out = []
        for m in self.models.values():
            if ready_only and m.state is not ModelState.SERVING:
                continue
            state = {"serving": "READY", "warm": "WARM", "cold": "UNAVAILABLE"}[m.state.value]
            out.append({"name": m.name, "version": "1", "state": state, "reason": m.state.value})
        return out

    # ------------------------------------------------------------------ repository and admin
    async def load_model(self, m: ModelHandle, config: object = None) -> None:
        """Repository load to serving, with an optional Triton model config (JSON string) override."""
        if config is not None and not isinstance(config, str):
            raise BadRequestError(
                f"'parameters.config' must be a string holding the Triton model config JSON, "
                f"not {type(config).__name__}"
            )
        override = LoadOverride.from_triton_config(config) if config is not None else None
        await m.load(ModelState.SERVING, override)

    def load_report(self, name: str | None) -> RuntimeLoad:
        """Live load of one model (``RuntimeLoad``) for the planner; cheap enough to poll at 2 Hz."""
        m = self.model(name or self.config.model.name)
        uptime = time.monotonic() - self._started
        return runtime_load(m, boot_id=self.boot_id, uptime_s=uptime, draining=self.draining)

    async def change_state(self, change: StateChange) -> ModelHandle:
        """Move a model between cold, warm and serving."""
        m = self.model(change.model or self.config.model.name)
        await m.set_state(ModelState(change.state))
        return m

    def resize(self, update: BatchingUpdate) -> BatchingSettings:
        """Resize dynamic batching live, without a reload; answers the settings now in effect."""
        m = self.model(update.model or self.config.model.name)
        current = batching_settings(m).model_dump(exclude={"model"})
        asked = update.model_dump(exclude={"model"}, exclude_none=True)
        try:  # the result must also be a valid batching section of the runtime's own config file
            merged = BatchingConfig.model_validate({**current, **asked})
        except ValidationError as exc:
            raise BadRequestError(describe_validation_error(exc, "batching")) from None
        m.resize(**dataclasses.asdict(BatchSettings.from_config(merged)))
        return batching_settings(m)

    def metrics_exposition(self) -> bytes:
        """Prometheus exposition of the runtime's registry (queue depths refreshed first)."""
        for m in self.models.values():
            for p, b in m.batchers.items():
                self.metrics.queue_depth.labels(m.name, p.value).set(b.depth)
        return generate_latest(self.metrics.registry)

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
