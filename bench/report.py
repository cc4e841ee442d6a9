"""Benchmark output: the result as indented JSON on stdout and in the results file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], out: Path) -> None:
    """Print ``result`` as JSON and write it to ``out`` (creating its folder)."""
    text = json.dumps(result, indent=2)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
