"""Precision conversion of (sub)graphs and the adaptive per-request precision policy.

Conversions (applied per shard segment, after sharding):

* ``fp32``: unchanged.
* ``fp16`` / ``bf16``: weights are stored in the half type and a ``Cast`` back to float32 feeds each
  consumer. On the CPU execution provider, which lacks half kernels for most ops, this is
  *weight-storage* precision: the numeric effect of rounding the weights is real, compute stays
  fp32. On CUDA/TensorRT nodes the provider runs half kernels via its own settings (see
  :mod:`outrider_runtime.triton_repo`).
* ``int8``: ONNX Runtime dynamic quantization of the weight MatMuls (per-channel int8 weights,
  activations quantized on the fly); activation-by-activation MatMuls (attention scores) stay fp32.
  Per-channel scales keep MiniLM's embeddings above 0.99 cosine of fp32, per-tensor ones do not.

Adaptive precision (:class:`AdaptivePolicy`) routes each request by a *complexity* score, its token
count, bucketed (<=8, <=16, <=32 ... tokens): a bucket runs int8 only if every calibration sentence
in it keeps int8/fp32 cosine agreement at or above the accuracy floor, otherwise fp32. The measured
agreement is exported as a metric.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from outrider_runtime.config import PrecisionPolicy
from outrider_runtime.errors import ModelBuildError

__all__ = ["LENGTH_BUCKETS", "AdaptivePolicy", "CalibrationPoint", "bucket_of", "convert", "cosine_rows"]


class _QuantizerNoise(logging.Filter):
    """Drop the root-logger chatter of ONNX Runtime's quantizer (it logs through ``logging.warning``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname or "quantization" not in record.pathname


logging.getLogger().addFilter(_QuantizerNoise())

_HALF = {PrecisionPolicy.FP16: TensorProto.FLOAT16, PrecisionPolicy.BF16: TensorProto.BFLOAT16}
_MIN_WEIGHT_ELEMENTS = 64


def _to_half_weights(model: onnx.ModelProto, elem: int) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    casts: list[onnx.NodeProto] = []
    keep: list[onnx.TensorProto] = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < _MIN_WEIGHT_ELEMENTS:
            keep.append(init)
            continue
        arr = numpy_helper.to_array(init)
        half_name = f"{init.name}__half"
        if elem == TensorProto.FLOAT16:
            keep.append(numpy_helper.from_array(arr.astype(np.float16), half_name))
        else:  # bfloat16: keep the top 16 bits with round-to-nearest-even
            bits = arr.astype(np.float32).view(np.uint32)
            rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
            t = helper.make_tensor(
                half_name, TensorProto.BFLOAT16, list(arr.shape), rounded.tobytes(), raw=True
            )
            keep.append(t)
        casts.append(helper.make_node("Cast", [half_name], [init.name], name=f"{init.name}/cast", to=1))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    return out


def convert(model: onnx.ModelProto, precision: PrecisionPolicy) -> onnx.ModelProto:
    """Return ``model`` converted to ``precision`` (fp32, fp16, bf16 or int8)."""
    if precision is PrecisionPolicy.FP32:
        return model
    if precision in _HALF:
        return _to_half_weights(model, _HALF[precision])
    if precision is PrecisionPolicy.INT8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(prefix="outrider-q-") as tmp:
            dst = Path(tmp) / "int8.onnx"
            inits = {t.name for t in model.graph.initializer}
            weight_matmuls = [
                n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits
            ]
            if not weight_matmuls:
                return model
            try:
                quantize_dynamic(
                    model,
                    dst,
                    op_types_to_quantize=["MatMul"],
                    nodes_to_quantize=weight_matmuls,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                )
            except Exception as exc:
                raise ModelBuildError(f"int8 dynamic quantization failed: {exc}") from exc
            return onnx.load(str(dst))
    raise ModelBuildError(f"precision {precision.value!r} is a policy, not a conversion target")


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``[n, d]`` arrays."""
    a2 = a.reshape(a.shape[0], -1).astype(np.float64)
    b2 = b.reshape(b.shape[0], -1).astype(np.float64)
    num = (a2 * b2).sum(axis=1)
    den = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    return np.asarray(num / np.maximum(den, 1e-12), dtype=np.float64)


@dataclass(frozen=True)
class CalibrationPoint:
    """One calibration sentence: its token count and the cosine of the low-precision embedding."""

    length: int
    cosine: float


LENGTH_BUCKETS = (8, 16, 32, 64, 128, 256, 512)
"""Upper token-count edges of the complexity buckets adaptive precision decides on."""


def bucket_of(length: int, edges: Sequence[int] = LENGTH_BUCKETS) -> int:
    """The upper edge of the bucket ``length`` falls in (the last edge for anything longer)."""
    for edge in edges:
        if length <= edge:
            return edge
    return edges[-1]


@dataclass
class AdaptivePolicy:
    """Per-request precision by complexity, measured as the request's token count.

    The calibration set is split into length buckets (``<=8, <=16, ... tokens``). A bucket runs at
    the low precision only if *every* calibration sentence in it keeps cosine agreement with fp32
    at or above the floor; buckets that fail, and buckets the calibration set does not cover, run
    fp32. (On all-MiniLM-L6-v2 the shortest sentences are the ones int8 hurts most, so the
    direction of the rule is measured, not assumed.)
    """

    floor: float
    low: PrecisionPolicy = PrecisionPolicy.INT8
    low_buckets: frozenset[int] = frozenset()
    points: list[CalibrationPoint] = field(default_factory=list)

    @classmethod
    def calibrate(
        cls, floor: float, lengths: Sequence[int], cosines: Sequence[float], low: PrecisionPolicy
    ) -> AdaptivePolicy:
        """Fit the bucket decisions on calibration results (one length and cosine per sentence)."""
        pts = [CalibrationPoint(int(n), float(c)) for n, c in zip(lengths, cosines, strict=True)]
        worst: dict[int, float] = {}
        for p in pts:
            b = bucket_of(p.length)
            worst[b] = min(worst.get(b, 1.0), p.cosine)
        passing = frozenset(b for b, c in worst.items() if c >= floor)
        return cls(floor=floor, low=low, low_buckets=passing, points=sorted(pts, key=lambda p: p.length))

    def choose(self, length: int) -> PrecisionPolicy:
        """Precision for a request whose longest sequence has ``length`` tokens."""
        return self.low if bucket_of(length) in self.low_buckets else PrecisionPolicy.FP32

    def agreement(self) -> float:
        """Mean cosine agreement with fp32 over the calibration set under this policy."""
        if not self.points:
            return 1.0
        return float(np.mean([p.cosine if self.choose(p.length) is self.low else 1.0 for p in self.points]))

    def low_share(self) -> float:
        """Share of calibration sentences routed to the low precision."""
        if not self.points:
            return 0.0
        return float(np.mean([self.choose(p.length) is self.low for p in self.points]))

    def describe(self) -> str:
        """Human-readable routing, e.g. ``<=8:fp32 <=16:int8 ...``."""
        return " ".join(
            f"<={b}:{(self.low if b in self.low_buckets else PrecisionPolicy.FP32).value}"
            for b in LENGTH_BUCKETS
        )
