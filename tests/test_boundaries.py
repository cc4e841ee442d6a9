"""The direction of dependencies between the packages, checked on the real import graph.

The runtime (a pod on every GPU node) must never load the control plane's libraries; no product
package may reach into the dev tooling in ``hack/``, which is not in the wheel or the images.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = {
    "outrider_operator": REPO / "operator" / "outrider_operator",
    "outrider_cli": REPO / "operator" / "outrider_cli",
    "outrider_scheduler": REPO / "scheduler" / "outrider_scheduler",
    "outrider_runtime": REPO / "runtime" / "outrider_runtime",
}
DEV_TOOLING = "outrider_devcluster"


def _modules(package: str) -> list[str]:
    root = PRODUCT[package]
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("__init__", "__main__"):
            parts = parts[:-1] if parts[-1] == "__init__" else []
        if parts:
            out.append(".".join(parts))
    return out


def _loaded_after_importing(modules: list[str]) -> set[str]:
    """Top-level packages in ``sys.modules`` after importing ``modules`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_runtime_never_loads_the_control_planes_libraries() -> None:
    loaded = _loaded_after_importing(_modules("outrider_runtime"))
    forbidden = {"kopf", "kubernetes", "sklearn", "outrider_scheduler", DEV_TOOLING}
    assert not loaded & forbidden, sorted(loaded & forbidden)
    assert "onnxruntime" in loaded  # the check can see a heavy import when there is one


@pytest.mark.parametrize("package", sorted(PRODUCT))
def test_no_product_module_loads_the_dev_tooling(package: str) -> None:
    loaded = _loaded_after_importing(_modules(package))
    assert DEV_TOOLING not in loaded
    assert package in loaded


def test_no_product_source_names_the_dev_tooling_even_lazily() -> None:
    """Imports hidden in strings (importlib, a subcommand table) count as well."""
    offenders = []
    for root in PRODUCT.values():
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names = [node.value]
                if any(n == DEV_TOOLING or n.startswith(DEV_TOOLING + ".") for n in names):
                    offenders.append(f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}")
    assert not offenders, offenders


def test_the_wheel_and_the_images_leave_the_dev_tooling_out() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    where = config["tool"]["setuptools"]["packages"]["find"]["where"]
    assert "hack" not in where and all((REPO / w).is_dir() for w in where)
    for w in where:
        assert not (REPO / w / DEV_TOOLING).exists(), w
    instructions = [
        line for line in (REPO / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    assert not [line for line in instructions if "hack" in line]
