"""Device choice: a GPU build of onnxruntime without a visible GPU serves on the CPU and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from outrider_runtime import pipeline


def test_gpu_build_without_a_visible_gpu_falls_back_to_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    built = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(pipeline.ort, "get_available_providers", lambda: built)
    monkeypatch.setattr(pipeline, "visible_gpus", lambda: 0)
    assert pipeline.default_device() == "cpu"
    line = pipeline.describe_providers()
    assert "CUDAExecutionProvider" in line and "GPUs visible: 0" in line and "device cpu" in line
    assert "serving on CPUExecutionProvider" in line
    monkeypatch.setattr(pipeline, "visible_gpus", lambda: 2)
    assert pipeline.default_device() == "cuda:0"
    assert "serving on CPUExecutionProvider" not in pipeline.describe_providers()


def test_cpu_build_never_picks_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(pipeline, "visible_gpus", lambda: 4)
    assert pipeline.default_device() == "cpu"


def test_this_machine_reports_its_real_providers() -> None:
    # NVML counts what the driver shows: none on a machine without NVIDIA device files
    devices = [d for d in Path("/dev").glob("nvidia[0-9]*")]
    assert pipeline.visible_gpus() == len(devices)
    line = pipeline.describe_providers()
    assert pipeline.ort.__version__ in line and "CPUExecutionProvider" in line
