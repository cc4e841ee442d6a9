"""The gRPC transport: KServe V2 / Triton ``GRPCInferenceService`` over a :class:`ModelService`.

Uses the protobuf stubs that ship with ``tritonclient[grpc]`` and ``grpc.aio``; every RPC delegates
to :class:`~outrider_runtime.server.service.ModelService` (the HTTP transport does the same), so
states, batching, statistics and errors are shared with HTTP. Errors map to gRPC status codes:
400 -> INVALID_ARGUMENT, 404 -> NOT_FOUND, 429 -> RESOURCE_EXHAUSTED, 503 -> UNAVAILABLE.
Shared-memory, tracing, logging and streaming RPCs are not implemented (UNIMPLEMENTED).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf import json_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from outrider_runtime.errors import BadRequestError, InferenceError, OutriderRuntimeError, StateError
from outrider_runtime.server.codec import DTYPES, decode_bytes_tensor
from outrider_runtime.server.limits import InputLimits
from outrider_runtime.server.service import EXTENSIONS, SERVER_NAME, SERVER_VERSION, ModelService

__all__ = ["GrpcService", "start_grpc"]

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_CONTENTS = {
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
    "BOOL": "bool_contents",
}
T = TypeVar("T")


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class GrpcService(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The V2 gRPC service backed by a :class:`ModelService`."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def _guard(self, context: grpc.aio.ServicerContext, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except InferenceError as exc:
            await context.abort(_CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.message)
        except StateError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except OutriderRuntimeError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, str(exc))
        raise AssertionError("unreachable")  # context.abort raises

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        """Liveness."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        """Readiness: every model serving and not draining."""
        ok, _ = self.service.ready_report()
        return pb.ServerReadyResponse(ready=ok)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        """Model readiness."""

        async def run() -> pb.ModelReadyResponse:
            m = self.service.model(request.name)
            return pb.ModelReadyResponse(ready=self.service.model_ready(m))

        return await self._guard(context, run)

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        """Server metadata."""
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        """Model metadata."""

        async def run() -> pb.ModelMetadataResponse:
            meta = self.service.metadata_dict(self.service.model(request.name))
            return pb.ModelMetadataResponse(
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=[
                    pb.ModelMetadataResponse.TensorMetadata(
                        name=i["name"], datatype=i["datatype"], shape=i["shape"]
                    )
                    for i in meta["inputs"]
                ],
                outputs=[
                    pb.ModelMetadataResponse.TensorMetadata(
                        name=o["name"], datatype=o["datatype"], shape=o["shape"]
                    )
                    for o in meta["outputs"]
                ],
            )

        return await self._guard(context, run)

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        """Model config (Triton ModelConfig message)."""

        async def run() -> pb.ModelConfigResponse:
            cfg = _clean(self.service.config_dict(self.service.model(request.name)))
            cfg.pop("backend", None)
            for group in cfg.get("instance_group", []):
                if not group.get("gpus"):
                    group.pop("gpus", None)
            config = json_format.ParseDict(cfg, mc.ModelConfig(), ignore_unknown_fields=True)
            return pb.ModelConfigResponse(config=config)

        return await self._guard(context, run)

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Any
    ) -> pb.ModelStatisticsResponse:
        """Inference statistics."""

        async def run() -> pb.ModelStatisticsResponse:
            models = (
                [self.service.model(request.name)] if request.name else list(self.service.models.values())
            )
            doc = {"model_stats": [m.stats.as_triton(m.name) for m in models]}
            return json_format.ParseDict(doc, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

        return await self._guard(context, run)

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        """Repository index."""
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(**e) for e in self.service.index_list(request.ready)
            ]
        )

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        """Load, with an optional Triton config JSON override in ``parameters['config']``."""

        async def run() -> pb.RepositoryModelLoadResponse:
            m = self.service.model(request.model_name)
            config = request.parameters["config"].string_param if "config" in request.parameters else None
            await self.service.load_model(m, config)
            return pb.RepositoryModelLoadResponse()

        return await self._guard(context, run)

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        """Unload."""

        async def run() -> pb.RepositoryModelUnloadResponse:
            await self.service.model(request.model_name).unload()
            return pb.RepositoryModelUnloadResponse()

        return await self._guard(context, run)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        """Inference: raw_input_contents (tritonclient's default) or typed contents in; the output
        always in ``raw_output_contents``, as Triton answers gRPC (tritonclient.grpc reads only that)."""

        async def run() -> pb.ModelInferResponse:
            m = self.service.model(request.model_name)
            for o in request.outputs:  # refused before any compute
                if o.name != "embeddings":
                    raise BadRequestError(f"unknown output {o.name!r}; model has 'embeddings'")
            out, precision = await self.service.run_inference(
                m, lambda limits: _decode(request, limits), request.ByteSize()
            )
            tensor = pb.ModelInferResponse.InferOutputTensor(
                name="embeddings", datatype="FP32", shape=out.shape
            )
            resp = pb.ModelInferResponse(
                model_name=m.name, model_version="1", id=request.id, outputs=[tensor]
            )
            resp.parameters["precision"].string_param = precision
            resp.raw_output_contents.append(np.ascontiguousarray(out, dtype=np.float32).tobytes())
            return resp

        return await self._guard(context, run)


def _decode(request: pb.ModelInferRequest, limits: InputLimits) -> dict[str, np.ndarray]:
    """The request's input tensors by name; each shape is checked against ``limits`` first."""
    tensors: dict[str, np.ndarray] = {}
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadRequestError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    for idx, t in enumerate(request.inputs):
        if t.datatype not in DTYPES:
            raise BadRequestError(f"input {t.name!r}: unknown datatype {t.datatype!r}")
        if t.name in tensors:
            raise BadRequestError(f"input {t.name!r} appears more than once")
        shape = [int(d) for d in t.shape]
        if any(d < 0 for d in shape):
            raise BadRequestError(f"input {t.name!r}: shape must be non-negative, got {shape}")
        limits.check(t.name, t.datatype, shape)
        count = math.prod(shape)  # Python ints: no wrap-around
        if raw:
            if t.datatype == "BYTES":
                arr = decode_bytes_tensor(raw[idx], count, t.name)
            else:
                dt = np.dtype(DTYPES[t.datatype])
                if len(raw[idx]) != count * dt.itemsize:
                    raise BadRequestError(
                        f"input {t.name!r}: {len(raw[idx])} bytes do not match shape {shape} of {t.datatype}"
                    )
                arr = np.frombuffer(raw[idx], dtype=dt)
        else:
            field = _CONTENTS.get(t.datatype)
            if field is None:
                raise BadRequestError(f"input {t.name!r}: datatype {t.datatype} needs raw_input_contents")
            values = getattr(t.contents, field)
            if len(values) > count:  # before numpy copies them
                raise BadRequestError(
                    f"input {t.name!r}: shape {shape} needs {count} elements, got {len(values)}"
                )
            arr = np.array(list(values), dtype=DTYPES[t.datatype])
            if arr.size != count:
                raise BadRequestError(
                    f"input {t.name!r}: shape {shape} needs {count} elements, got {arr.size}"
                )
        tensors[t.name] = arr.reshape(shape)
    return tensors


async def start_grpc(server: ModelService, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC endpoint; returns the server and the bound port (``port=0`` picks one)."""
    limit = server.config.server.max_request_bytes
    grpc_server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", 64 << 20)]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(GrpcService(server), grpc_server)
    bound = grpc_server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise StateError(f"cannot bind gRPC to {host}:{port}")
    await grpc_server.start()
    return grpc_server, bound
