"""The runtime accepts every config the operator renders (the two sides share no code)."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from outrider_operator.api.resource import parse_spec
from outrider_operator.reconcile.runtimeconfig import render_runtime_config
from outrider_runtime.config import parse_config

REPO = Path(__file__).resolve().parents[2]
SAMPLES = [
    d
    for p in sorted((REPO / "manifests" / "samples").glob("*.yaml"))
    for d in yaml.safe_load_all(p.read_text())
    if d and d.get("kind") == "InferenceDeployment"
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda d: d["metadata"]["name"])
@pytest.mark.parametrize("pool", ["active", "warm", "cold"])
def test_runtime_parses_rendered_config(sample: dict[str, Any], pool: str) -> None:
    spec = parse_spec(sample["spec"])
    rendered = render_runtime_config(spec, pool)
    config = parse_config(rendered)
    assert config.model.name == spec.model.name
    assert config.batching.max_batch_size == spec.batching.max_batch_size
    assert [s.name for s in config.shards] == [g.name for g in spec.sharding.groups]
    assert str(config.server.start_state) == {"active": "serving", "warm": "warm", "cold": "cold"}[pool]
