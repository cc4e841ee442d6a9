from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def minimal_spec() -> dict[str, Any]:
    return {"model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"}}
