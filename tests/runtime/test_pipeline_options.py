"""Session options: the SkipLayerNormalization fusion stays off on CPU (and only there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import pytest

from outrider_runtime import pipeline
from outrider_runtime.builtin_models import ensure_builtin
from outrider_runtime.config import PrecisionPolicy
from outrider_runtime.precision import convert


def _optimized_ops(model: onnx.ModelProto, tmp: Path, disabled: list[str] | None) -> set[str]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp / "optimized.onnx")
    ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
    )
    return {n.op_type for n in onnx.load(str(tmp / "optimized.onnx")).graph.node}


def test_the_disabled_fusion_is_the_one_onnxruntime_applies_to_int8(tmp_path: Path) -> None:
    model = convert(onnx.load(str(ensure_builtin("tiny-bert") / "model.onnx")), PrecisionPolicy.INT8)
    assert "SkipLayerNormalization" in _optimized_ops(model, tmp_path, None), "ORT no longer fuses it"
    disabled = list(pipeline.CPU_DISABLED_OPTIMIZERS)
    assert "SkipLayerNormalization" not in _optimized_ops(model, tmp_path, disabled)


@pytest.mark.parametrize(
    ("providers", "expected"),
    [
        (["CPUExecutionProvider"], list(pipeline.CPU_DISABLED_OPTIMIZERS)),
        ([("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"], None),
    ],
)
def test_sessions_disable_it_on_cpu_only(
    monkeypatch: pytest.MonkeyPatch, providers: list[Any], expected: list[str] | None
) -> None:
    seen: dict[str, Any] = {}

    def fake_session(*args: Any, **kwargs: Any) -> object:
        seen.update(kwargs)
        return object()

    monkeypatch.setattr(pipeline.ort, "InferenceSession", fake_session)
    pipeline._session(onnx.ModelProto(), providers, 0)
    assert seen["providers"] == providers
    assert seen["disabled_optimizers"] == expected
