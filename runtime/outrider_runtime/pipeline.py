"""Execution of a (possibly sharded, mixed-precision) model with ONNX Runtime.

A :class:`Pipeline` is one precision variant of a model: the segments from
:mod:`outrider_runtime.sharding`, each converted to its shard's precision and loaded into its own
``InferenceSession`` on the shard's device. Every shard owns a single-thread executor (one device
runs one thing at a time). A batch is split into micro-batches of the smallest shard batch size and
each micro-batch walks the segments in order, so micro-batch *k* runs on shard B while *k+1* runs
on shard A: a pipeline. Device selection is behind :func:`providers_for`, the only place that knows
about CUDA; the CPU path is what the tests exercise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from outrider_runtime.config import Layer, PrecisionPolicy, ShardConfig
from outrider_runtime.errors import ModelBuildError
from outrider_runtime.precision import convert
from outrider_runtime.sharding import DEFAULT_SHARD, Segment, assign_layers, cut_model

__all__ = [
    "PADDING_SLACK",
    "Pipeline",
    "ShardPlan",
    "build_pipeline",
    "describe_providers",
    "length_buckets",
    "pad_rows",
    "providers_for",
    "visible_gpus",
]

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]

PADDING_SLACK = 2.0
"""A length bucket may hold at most this many padded tokens per real token (see :func:`length_buckets`)."""


def providers_for(device: str, precision: PrecisionPolicy = PrecisionPolicy.FP32) -> list[Any]:
    """ONNX Runtime execution providers for ``cpu`` or ``cuda:N``.

    On ``cuda:N`` the TensorRT provider leads when this onnxruntime build has it (FP16 enabled for
    fp16/bf16 shards; int8 shards carry dynamically quantized ops that TensorRT hands to the CUDA
    provider, since TensorRT's own int8 needs a calibration table), then CUDA, then CPU. A GPU
    device without a GPU build of onnxruntime is a configuration error, not a silent CPU fallback.
    """
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda:") and device.split(":", 1)[1].isdigit():
        gpu = int(device.split(":", 1)[1])
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise ModelBuildError(
                f"device {device!r} requested but this onnxruntime build has no CUDAExecutionProvider "
                f"(available: {available}); install onnxruntime-gpu on GPU nodes"
            )
        providers: list[Any] = []
        if "TensorrtExecutionProvider" in available:
            providers.append(
                (
                    "TensorrtExecutionProvider",
                    {
                        "device_id": gpu,
                        "trt_fp16_enable": precision in (PrecisionPolicy.FP16, PrecisionPolicy.BF16),
                        "trt_int8_enable": precision is PrecisionPolicy.INT8,
                    },
                )
            )
        providers.append(("CUDAExecutionProvider", {"device_id": gpu}))
        providers.append("CPUExecutionProvider")
        return providers
    raise ModelBuildError(f"unknown device {device!r}; expected cpu or cuda:N")


def visible_gpus() -> int:
    """GPUs the NVIDIA driver shows this process (0 without a driver, a device or ``pynvml``)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded / ImportError: no usable GPU
        return 0


def default_device() -> str:
    """``cuda:0`` when this onnxruntime build has the CUDA provider and a GPU is visible, else ``cpu``.

    A GPU build of onnxruntime lists its CUDA provider whether or not the node has a GPU; asking for
    it without one would fail inside ONNX Runtime, so the GPU image serves on the CPU instead (see
    :func:`describe_providers`, which the server logs at start).
    """
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "cpu"
    return "cuda:0" if visible_gpus() > 0 else "cpu"


def describe_providers() -> str:
    """One log line: the onnxruntime build, its execution providers, visible GPUs, default device."""
    built = ort.get_available_providers()
    gpus = visible_gpus()
    device = default_device()
    line = f"onnxruntime {ort.__version__}: execution providers {built}; GPUs visible: {gpus}; "
    line += f"device {device}"
    if "CUDAExecutionProvider" in built and device == "cpu":
        line += " (GPU build without a visible GPU: serving on CPUExecutionProvider)"
    return line


@dataclass
class ShardPlan:
    """Resolved settings of one shard: device, precision, micro-batch size and its executor."""

    name: str
    device: str
    precision: PrecisionPolicy
    max_batch_size: int
    executor: ThreadPoolExecutor = field(repr=False)


@dataclass
class _Stage:
    segment: Segment
    shard: ShardPlan
    session: ort.InferenceSession


class Pipeline:
    """One precision variant of a model, runnable synchronously or as an async micro-batch pipeline."""

    def __init__(self, stages: list[_Stage], precision: PrecisionPolicy, output: str) -> None:
        self._stages = stages
        self.precision = precision
        self.output = output
        self.micro_batch = min(s.shard.max_batch_size for s in stages)

    @property
    def shards(self) -> list[ShardPlan]:
        """Distinct shard plans in first-use order."""
        seen: dict[str, ShardPlan] = {}
        for st in self._stages:
            seen.setdefault(st.shard.name, st.shard)
        return list(seen.values())

    @property
    def segment_count(self) -> int:
        """Number of subgraphs (sessions) in this pipeline."""
        return len(self._stages)

    def _run_micro(self, feeds: Feeds) -> np.ndarray:
        env = dict(feeds)
        for st in self._stages:
            seg = st.segment
            outs = st.session.run(list(seg.outputs), {k: env[k] for k in seg.inputs})
            env.update(zip(seg.outputs, outs, strict=True))
        return env[self.output]

    def _split(self, feeds: Feeds) -> list[Feeds]:
        n = next(iter(feeds.values())).shape[0]
        step = max(1, self.micro_batch)
        return [{k: v[i : i + step] for k, v in feeds.items()} for i in range(0, n, step)]

    def run(self, feeds: Feeds) -> np.ndarray:
        """Run a batch synchronously (micro-batch by micro-batch, no overlap)."""
        parts = [self._run_micro(f) for f in self._split(feeds)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    async def run_async(self, feeds: Feeds) -> np.ndarray:
        """Run a batch as a pipeline: each stage on its shard's executor, micro-batches overlapping."""
        loop = asyncio.get_running_loop()

        async def walk(micro: Feeds) -> np.ndarray:
            env = dict(micro)
            for st in self._stages:
                seg = st.segment
                sub = {k: env[k] for k in seg.inputs}
                outs = await loop.run_in_executor(st.shard.executor, st.session.run, list(seg.outputs), sub)
                env.update(zip(seg.outputs, outs, strict=True))
            return env[self.output]

        parts = await asyncio.gather(*(walk(m) for m in self._split(feeds)))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def close(self) -> None:
        """Shut down the shard executors."""
        for shard in self.shards:
            shard.executor.shutdown(wait=False)


CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
"""Graph fusions left off on CPU-only sessions. On the int8 graph, ONNX Runtime (1.32) fuses each
residual ``Add`` + ``LayerNormalization`` into ``SkipLayerNormalization``, whose CPU kernel took a
quarter of MiniLM's int8 run time; unfused, int8 ran 1.2x faster (64 mixed-length sentences in
length-sorted batches of 16: 118 -> 98 ms; fp32, where the pattern does not fuse, unchanged). GPU
providers keep the fusion, which is fast there."""


def _session(model: onnx.ModelProto, providers: list[Any], threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    # No busy-waiting between ops: on shared or small nodes spinning threads starve the event loop
    # that parses requests and forms batches.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    cpu_only = all((p[0] if isinstance(p, tuple) else p) == "CPUExecutionProvider" for p in providers)
    return ort.InferenceSession(
        model.SerializeToString(),
        opts,
        providers=providers,
        disabled_optimizers=list(CPU_DISABLED_OPTIMIZERS) if cpu_only else None,
    )


def build_pipeline(
    model_path: Path,
    shards: Sequence[ShardConfig],
    precision: PrecisionPolicy,
    *,
    threads: int = 0,
    default_batch: int = 1 << 30,
    output: str = "embeddings",
    base_model: onnx.ModelProto | None = None,
    workers: int = 1,
) -> Pipeline:
    """Cut, convert and load a model; ``precision`` applies to shards that set none of their own.

    ``workers`` > 1 lets a single-shard pipeline run that many batches at once (sessions are
    thread-safe); sharded pipelines keep one worker per shard, which is what makes them a pipeline.
    """
    model = base_model if base_model is not None else onnx.load(str(model_path))
    if not shards:
        shards = [ShardConfig(name=DEFAULT_SHARD, layers=[Layer.ALL], maxBatchSize=4096)]  # type: ignore[call-arg]
        default_batch_for = {DEFAULT_SHARD: default_batch}
    else:
        default_batch_for = {}
    segments = cut_model(model, assign_layers(shards))
    plans: dict[str, ShardPlan] = {}
    for sc in shards:
        prec = sc.precision or precision
        plans[sc.name] = ShardPlan(
            name=sc.name,
            device=sc.device or default_device(),
            precision=prec,
            max_batch_size=default_batch_for.get(sc.name, sc.max_batch_size),
            executor=ThreadPoolExecutor(
                max_workers=workers if len(shards) == 1 else 1, thread_name_prefix=f"shard-{sc.name}"
            ),
        )
    stages = []
    for seg in segments:
        plan = plans[seg.shard]
        converted = convert(seg.model, plan.precision)
        session = _session(converted, providers_for(plan.device, plan.precision), threads)
        # keep the segment's wiring, not its weights: the session owns those now
        stages.append(_Stage(replace(seg, model=onnx.ModelProto()), plan, session))
        del converted
    log.info(
        "built %s pipeline: %d segments over shards %s",
        precision.value,
        len(stages),
        [f"{p.name}:{p.device}:{p.precision.value}:mb{p.max_batch_size}" for p in plans.values()],
    )
    return Pipeline(stages, precision, output)


def pad_rows(rows: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> Feeds:
    """Right-pad variable-length token-id rows into ``input_ids`` and ``attention_mask`` feeds."""
    width = max(int(r.shape[0]) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : r.shape[0]] = r
        if masks is None:
            mask[i, : r.shape[0]] = 1
        else:
            mask[i, : r.shape[0]] = masks[i]
    return {"input_ids": ids, "attention_mask": mask}


def length_buckets(lengths: Sequence[int], slack: float = PADDING_SLACK) -> list[list[int]]:
    """Group row indices into buckets of similar length so padding stays bounded.

    Rows are sorted by length and a bucket grows while ``rows x longest <= slack x real tokens``.
    A dynamic batch of mixed-length requests padded to its longest row can cost several times
    the work of its real tokens (a 128-token outlier among 10-token rows); running its buckets one
    after the other keeps the batching gain without paying for the padding.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for i in order:
        n = lengths[i]
        if current and (len(current) + 1) * n > slack * (tokens + n):
            buckets.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += n
    if current:
        buckets.append(current)
    return buckets
