from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from outrider_runtime.config import (
    DynamicMode,
    Layer,
    ModelState,
    PrecisionPolicy,
    RuntimeConfig,
    load_config,
    parse_config,
)
from outrider_runtime.errors import ConfigError

EXAMPLE = """
apiVersion: runtime.outrider.dev/v1alpha1
kind: RuntimeConfig
model: {name: minilm, uri: /models/minilm, format: onnx}
precision: {policy: adaptive, accuracyFloor: "0.99"}
batching: {maxBatchSize: 16, minBatchDelayMs: 10, lookaheadWindow: 3, dynamic: Enabled}
shards:
  - {name: attention, layers: [embeddings, attention], devicePreference: memoryBandwidth,
     maxBatchSize: 32, device: cpu}
  - {name: ffn, layers: [ffn, head], devicePreference: compute, maxBatchSize: 64, device: cpu}
server: {httpPort: 8000, grpcPort: 8001, maxQueueSize: 1024, maxRequestBytes: 16777216, startState: serving}
"""


def test_documented_example_parses(tmp_path: Path) -> None:
    f = tmp_path / "runtime.yaml"
    f.write_text(EXAMPLE)
    cfg = load_config(f)
    assert cfg.precision.policy is PrecisionPolicy.ADAPTIVE
    assert cfg.precision.floor == pytest.approx(0.99)
    assert cfg.batching.dynamic is DynamicMode.ENABLED
    assert [s.name for s in cfg.shards] == ["attention", "ffn"]
    assert cfg.shards[0].layers == [Layer.EMBEDDINGS, Layer.ATTENTION]
    assert cfg.shards[1].max_batch_size == 64
    assert cfg.server.start_state is ModelState.SERVING


def test_json_file_and_round_trip(tmp_path: Path) -> None:
    cfg = parse_config(yaml.safe_load(EXAMPLE))
    f = tmp_path / "runtime.json"
    f.write_text(cfg.model_dump_json(by_alias=True))
    assert load_config(f) == cfg


def test_defaults_are_pinned() -> None:
    cfg = RuntimeConfig()
    assert cfg.model.uri == "builtin:all-minilm-l6-v2"
    assert cfg.precision.policy is PrecisionPolicy.FP32
    assert cfg.precision.accuracy_floor == "0.99"
    assert (cfg.batching.max_batch_size, cfg.batching.min_batch_delay_ms, cfg.batching.lookahead_window) == (
        16,
        10.0,
        3,
    )
    assert cfg.shards == []
    assert (cfg.server.http_port, cfg.server.max_queue_size, cfg.server.max_request_bytes) == (
        8000,
        1024,
        16 * 1024 * 1024,
    )
    assert cfg.server.latency_window_s == 2.0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"batching": {"maxBatchSize": 0}}, "batching.maxBatchSize"),
        ({"precision": {"accuracyFloor": "high"}}, "precision.accuracyFloor"),
        ({"precision": {"accuracyFloor": "1.5"}}, "precision.accuracyFloor"),
        ({"precision": {"policy": "int4"}}, "precision.policy"),
        ({"batching": {"dynamic": True}}, "batching.dynamic"),
        ({"server": {"startState": "hot"}}, "server.startState"),
        ({"shards": [{"name": "a", "layers": ["attention", "mlp"]}]}, "shards.0.layers.1"),
        ({"shards": [{"name": "a", "layers": ["ffn"], "device": "tpu:0"}]}, "shards.0.device"),
        ({"kind": "Deployment"}, "kind"),
        ({"batching": {"maxBatchSise": 3}}, "batching.maxBatchSise"),
        ({"server": {"latencyWindowS": 0}}, "server.latencyWindowS"),
        ({"server": {"latencyWindowS": 3600}}, "server.latencyWindowS"),
    ],
)
def test_bad_config_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert field in str(err.value)


def test_layer_in_two_shards_is_rejected() -> None:
    with pytest.raises(ConfigError, match="more than one shard"):
        parse_config({"shards": [{"name": "a", "layers": ["ffn"]}, {"name": "b", "layers": ["ffn", "head"]}]})


def test_shard_cannot_be_adaptive() -> None:
    with pytest.raises(ConfigError, match="adaptive"):
        parse_config({"shards": [{"name": "a", "layers": ["all"], "precision": "adaptive"}]})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config_module_needs_no_control_plane() -> None:
    import subprocess
    import sys

    code = (
        "import sys, outrider_runtime.config, outrider_runtime.server, outrider_runtime.cli;"
        "bad=[m for m in ('kopf','kubernetes') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_model_state_is_the_api_enum() -> None:
    """The runtime and the planner share one ModelState, so they can never disagree on a value."""
    from outrider_operator.api.runtime import ModelState as ApiModelState

    assert ModelState is ApiModelState
    assert parse_config({"server": {"startState": "warm"}}).server.start_state is ApiModelState.WARM
