"""Building a model's sessions: cut into shards, converted to each precision variant, calibrated
(each variant's agreement with fp32; the adaptive policy) and warmed up with real inferences.

Pure work on files and ONNX Runtime sessions; :class:`~outrider_runtime.model_handle.ModelHandle`
runs it in a worker thread and swaps the result in between requests.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import onnx

from outrider_runtime.builtin_models import DESCRIPTOR, mark_cached, resolve_model_dir
from outrider_runtime.calibration import calibration_texts
from outrider_runtime.config import PrecisionPolicy, RuntimeConfig
from outrider_runtime.pipeline import Pipeline, build_pipeline, pad_rows
from outrider_runtime.precision import AdaptivePolicy, cosine_rows
from outrider_runtime.tokenizer import Tokenizer

__all__ = ["BuiltModel", "build_model"]

log = logging.getLogger(__name__)


@dataclass
class BuiltModel:
    """A finished build of a model: sessions per precision variant and what calibration measured."""

    precision: PrecisionPolicy
    pipelines: dict[PrecisionPolicy, Pipeline]
    agreement: dict[str, float]
    policy: AdaptivePolicy | None
    max_len: int
    tokenizer: Tokenizer | None
    hidden: int
    vocab_size: int | None
    load_seconds: float


def _release_free_memory() -> None:
    """Hand memory freed after a load (protobufs, calibration sessions) back to the OS (glibc only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def build_model(config: RuntimeConfig, precision: PrecisionPolicy) -> BuiltModel:
    """Build, calibrate and warm up every variant of ``config``'s model at ``precision`` (in a worker
    thread: it touches no live state)."""
    t0 = time.perf_counter()
    model_dir = resolve_model_dir(config.model.uri)
    if config.model.uri.startswith("builtin:"):
        mark_cached(config.model.name, model_dir)  # the node agent reports the cache under this name
    desc_path = model_dir / DESCRIPTOR
    desc = json.loads(desc_path.read_text()) if desc_path.exists() else {}
    max_len = int(desc.get("maxSequenceLength", 256))
    tok = model_dir / "tokenizer.json"
    tokenizer = Tokenizer(tok, max_len) if tok.exists() else None
    base = onnx.load(str(model_dir / "model.onnx"))
    out_dims = base.graph.output[0].type.tensor_type.shape.dim
    hidden = int(out_dims[-1].dim_value) if out_dims else 0
    word = next((t for t in base.graph.initializer if t.name == "embeddings.word_embeddings.weight"), None)
    vocab_size = int(word.dims[0]) if word is not None else None
    variants = (
        [PrecisionPolicy.FP32, PrecisionPolicy.INT8] if precision is PrecisionPolicy.ADAPTIVE else [precision]
    )
    threads = config.server.intra_op_threads
    pipelines = {
        p: build_pipeline(
            model_dir / "model.onnx",
            config.shards,
            p,
            threads=threads,
            base_model=base,
            workers=config.server.batch_concurrency,
            output=base.graph.output[0].name,
        )
        for p in variants
    }
    try:
        agreement, policy = _calibrate(config, pipelines, precision, tokenizer)
        for pipe in pipelines.values():  # warm-up with real inferences at two lengths
            for n in (8, 32):
                pipe.run(pad_rows([np.full(n, 1000 + i, dtype=np.int64) for i in range(2)]))
    except Exception:
        for pipe in pipelines.values():
            pipe.close()
        raise
    del base
    _release_free_memory()
    return BuiltModel(
        precision=precision,
        pipelines=pipelines,
        agreement=agreement,
        policy=policy,
        max_len=max_len,
        tokenizer=tokenizer,
        hidden=hidden,
        vocab_size=vocab_size,
        load_seconds=time.perf_counter() - t0,
    )


def _calibration_rows(tokenizer: Tokenizer | None) -> list[np.ndarray]:
    if tokenizer is not None:
        return tokenizer.encode(calibration_texts())
    rng = np.random.default_rng(0)
    return [rng.integers(1000, 2000, size=int(n)).astype(np.int64) for n in (4, 8, 16, 32, 64, 128)]


def _calibrate(
    config: RuntimeConfig,
    pipelines: dict[PrecisionPolicy, Pipeline],
    precision: PrecisionPolicy,
    tokenizer: Tokenizer | None,
) -> tuple[dict[str, float], AdaptivePolicy | None]:
    """Measure each variant's cosine agreement with fp32 on the calibration set; fit adaptive."""
    agreement: dict[str, float] = {}
    policy: AdaptivePolicy | None = None
    low = [p for p in pipelines if p is not PrecisionPolicy.FP32]
    if not low:
        agreement["fp32"] = 1.0
        return agreement, policy
    rows = _calibration_rows(tokenizer)
    ref_pipe = pipelines.get(PrecisionPolicy.FP32)
    if ref_pipe is None:  # a single low-precision variant: build an fp32 reference just for this
        model_dir = resolve_model_dir(config.model.uri)
        ref_pipe = build_pipeline(model_dir / "model.onnx", [], PrecisionPolicy.FP32)
    ref = np.concatenate([ref_pipe.run(pad_rows([r])) for r in rows])
    lengths = [int(r.shape[0]) for r in rows]
    for p in low:
        got = np.concatenate([pipelines[p].run(pad_rows([r])) for r in rows])
        cos = cosine_rows(got, ref)
        agreement[p.value] = float(cos.mean())
        if precision is PrecisionPolicy.ADAPTIVE:
            policy = AdaptivePolicy.calibrate(config.precision.floor, lengths, list(cos), p)
            agreement["adaptive"] = policy.agreement()
            log.info(
                "adaptive precision: %s (int8 mean cosine %.4f, adaptive %.4f, floor %.4f)",
                policy.describe(),
                cos.mean(),
                policy.agreement(),
                config.precision.floor,
            )
    if ref_pipe is not pipelines.get(PrecisionPolicy.FP32):
        ref_pipe.close()
    return agreement, policy
