"""``engine: triton``: render a Triton model repository for a runtime config and drive it with tritonclient.

Rendering (:func:`render_repository`):

* one shard (or none): ``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/1/model.onnx``;
* several shards: one ONNX Runtime model per segment, ``<model>__<i>_<shard>``, each with its own
  ``max_batch_size``, dynamic batching and an ``instance_group`` pinned to the shard's GPU
  (``cuda:N`` -> ``KIND_GPU gpus: [N]``; ``cpu`` -> ``KIND_CPU``), plus an ``ensemble`` named after the
  model that wires the segments in order;
* precision: ``int8`` ships the dynamically quantized ONNX file; ``fp16`` and ``bf16`` ship the fp32
  file and ask the TensorRT execution accelerator for ``FP16`` (TensorRT has no bf16 mode, so bf16
  falls back to fp16 there) with ``fp32`` kept as the ONNX Runtime CUDA fallback.

Triton has no tokenizer in this path: the rendered repository takes ``input_ids`` and
``attention_mask`` (INT64). :class:`TritonEngine` is the client side: load with a config override,
wait for readiness, read statistics and run inference, through ``tritonclient.http``. The same code
runs against Outrider's own runtime in the tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from outrider_runtime.builtin_models import resolve_model_dir
from outrider_runtime.config import DynamicMode, PrecisionPolicy, RuntimeConfig, ShardConfig
from outrider_runtime.precision import convert
from outrider_runtime.sharding import Segment, assign_layers, cut_model

__all__ = ["TritonEngine", "render_config_pbtxt", "render_repository"]

_TYPES: dict[int, str] = {
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.FLOAT16: "TYPE_FP16",
}


def _q(s: str) -> str:
    return json.dumps(s)


def _dims(vi: onnx.ValueInfoProto) -> list[int]:
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
    return dims[1:] if dims else [-1]


def _tensor_block(kind: str, values: list[onnx.ValueInfoProto]) -> str:
    items = []
    for vi in values:
        t = _TYPES.get(int(vi.type.tensor_type.elem_type), "TYPE_FP32")
        items.append(f"  {{\n    name: {_q(vi.name)}\n    data_type: {t}\n    dims: {_dims(vi)}\n  }}")
    return f"{kind} [\n" + ",\n".join(items) + "\n]\n"


def render_config_pbtxt(
    name: str,
    model: onnx.ModelProto,
    max_batch_size: int,
    delay_ms: float,
    dynamic: bool,
    device: str,
    precision: PrecisionPolicy,
) -> str:
    """The ``config.pbtxt`` of one ONNX Runtime model in the repository."""
    lines = [
        f"name: {_q(name)}",
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        _tensor_block("input", list(model.graph.input)).rstrip(),
        _tensor_block("output", list(model.graph.output)).rstrip(),
    ]
    if dynamic:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {int(delay_ms * 1000)}\n}}")
    if device.startswith("cuda:"):
        gpu = int(device.split(":", 1)[1])
        lines.append(
            f"instance_group [\n  {{\n    count: 1\n    kind: KIND_GPU\n    gpus: [ {gpu} ]\n  }}\n]"
        )
        if precision in (PrecisionPolicy.FP16, PrecisionPolicy.BF16):
            lines.append(
                "optimization {\n  execution_accelerators {\n    gpu_execution_accelerator : [ {\n"
                '      name : "tensorrt"\n      parameters { key: "precision_mode" value: "FP16" }\n'
                '      parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n    } ]\n  }\n}'
            )
    else:
        lines.append("instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]")
    lines.append(
        f'parameters {{ key: "outrider_precision" value: {{ string_value: {_q(precision.value)} }} }}'
    )
    return "\n".join(lines) + "\n"


def _ensemble(name: str, segs: list[tuple[str, Segment]], base: onnx.ModelProto, max_batch: int) -> str:
    ext = {n: f"t_{i}" for i, n in enumerate(dict.fromkeys(o for _, s in segs for o in s.outputs))}
    for vi in base.graph.input:
        ext[vi.name] = vi.name
    for vi in base.graph.output:
        ext[vi.name] = vi.name
    steps = []
    for model_name, seg in segs:
        imap = "\n".join(f"      input_map {{ key: {_q(i)} value: {_q(ext[i])} }}" for i in seg.inputs)
        omap = "\n".join(f"      output_map {{ key: {_q(o)} value: {_q(ext[o])} }}" for o in seg.outputs)
        steps.append(
            f"    {{\n      model_name: {_q(model_name)}\n      model_version: -1\n{imap}\n{omap}\n    }}"
        )
    return (
        f'name: {_q(name)}\nplatform: "ensemble"\nmax_batch_size: {max_batch}\n'
        + _tensor_block("input", list(base.graph.input))
        + _tensor_block("output", list(base.graph.output))
        + "ensemble_scheduling {\n  step [\n"
        + ",\n".join(steps)
        + "\n  ]\n}\n"
    )


def render_repository(config: RuntimeConfig, root: Path, model_dir: Path | None = None) -> list[Path]:
    """Write the Triton model repository for ``config`` under ``root``; returns the files written."""
    src = model_dir or resolve_model_dir(config.model.uri)
    base = onnx.load(str(src / "model.onnx"))
    b = config.batching
    dynamic = b.dynamic is DynamicMode.ENABLED
    policy = config.precision.policy
    default_prec = PrecisionPolicy.FP32 if policy is PrecisionPolicy.ADAPTIVE else policy
    shards = list(config.shards) or [ShardConfig(name="all", layers=["all"], maxBatchSize=b.max_batch_size)]  # type: ignore[call-arg]
    by_name = {s.name: s for s in shards}
    segments = cut_model(base, assign_layers(config.shards))
    written: list[Path] = []

    def emit(name: str, seg_model: onnx.ModelProto, shard: ShardConfig) -> None:
        prec = shard.precision or default_prec
        file_model = convert(seg_model, prec) if prec is PrecisionPolicy.INT8 else seg_model
        d = root / name
        (d / "1").mkdir(parents=True, exist_ok=True)
        onnx.save_model(file_model, str(d / "1" / "model.onnx"))
        mbs = b.max_batch_size if len(segments) == 1 else shard.max_batch_size
        (d / "config.pbtxt").write_text(
            render_config_pbtxt(
                name, seg_model, mbs, b.min_batch_delay_ms, dynamic, shard.device or "cuda:0", prec
            )
        )
        written.extend([d / "config.pbtxt", d / "1" / "model.onnx"])

    if len(segments) == 1:
        emit(config.model.name, base, shards[0])
        return written
    named = []
    for seg in segments:
        name = f"{config.model.name}__{seg.index}_{seg.shard}"
        emit(name, seg.model, by_name.get(seg.shard, shards[0]))
        named.append((name, seg))
    ens_dir = root / config.model.name
    (ens_dir / "1").mkdir(parents=True, exist_ok=True)
    mb = min(s.max_batch_size for s in shards)
    (ens_dir / "config.pbtxt").write_text(_ensemble(config.model.name, named, base, mb))
    written.append(ens_dir / "config.pbtxt")
    return written


class TritonEngine:
    """Drive a V2 server (Triton, or Outrider's runtime) through ``tritonclient.http``."""

    def __init__(self, url: str, model: str, timeout_s: float = 60.0) -> None:
        import tritonclient.http as httpclient

        self._http = httpclient
        self.model = model
        self.client = httpclient.InferenceServerClient(
            url, connection_timeout=timeout_s, network_timeout=timeout_s
        )

    def load(
        self,
        max_batch_size: int | None = None,
        delay_ms: float | None = None,
        precision: PrecisionPolicy | None = None,
    ) -> None:
        """Load (or reload) the model with a config override."""
        cfg: dict[str, Any] = {}
        if max_batch_size is not None:
            cfg["max_batch_size"] = max_batch_size
        if delay_ms is not None:
            cfg["dynamic_batching"] = {"max_queue_delay_microseconds": int(delay_ms * 1000)}
        if precision is not None:
            cfg["parameters"] = {"precision": {"string_value": precision.value}}
        self.client.load_model(self.model, config=json.dumps(cfg) if cfg else None)

    def unload(self) -> None:
        """Unload the model."""
        self.client.unload_model(self.model)

    def wait_ready(self, timeout_s: float = 120.0) -> bool:
        """Poll model readiness until ready or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.client.is_model_ready(self.model):
                    return True
            except Exception:  # server not up yet
                pass
            time.sleep(0.2)
        return False

    def statistics(self) -> dict[str, Any]:
        """The model's inference statistics entry."""
        stats: dict[str, Any] = self.client.get_inference_statistics(self.model)["model_stats"][0]
        return stats

    def max_batch_size(self) -> int:
        """``max_batch_size`` of the loaded model config."""
        return int(self.client.get_model_config(self.model)["max_batch_size"])

    def embed_ids(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run ``input_ids``/``attention_mask`` through the model and return ``embeddings``."""
        h = self._http
        a = h.InferInput("input_ids", list(ids.shape), "INT64")
        a.set_data_from_numpy(ids.astype(np.int64))
        m = h.InferInput("attention_mask", list(mask.shape), "INT64")
        m.set_data_from_numpy(mask.astype(np.int64))
        result = self.client.infer(self.model, [a, m])
        out: np.ndarray = result.as_numpy("embeddings")
        return out
