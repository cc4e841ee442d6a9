from typing import Any

import pytest
from pydantic import ValidationError

from outrider_operator.api.resource import parse_spec
from outrider_operator.api.spec import InferenceDeploymentSpec


def test_defaults_are_the_documented_ones(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(minimal_spec)
    assert spec.scaling.forecast_horizon_seconds == 300
    assert spec.scaling.reaction_deadline_seconds == 10
    assert (
        spec.batching.max_batch_size,
        spec.batching.min_batch_delay_ms,
        spec.batching.lookahead_window,
    ) == (
        16,
        10,
        3,
    )
    assert spec.batching.dynamic == "Enabled"
    assert spec.runtime.engine == "outrider"
    assert spec.runtime.max_workers == 4
    assert spec.monitoring.metrics == ["latency_p99", "throughput", "gpu_utilization"]
    assert spec.monitoring.alerts.latency_p99_ms == 200
    assert spec.precision.policy == "fp32"
    assert spec.replicas.min == 1 and spec.replicas.max == 4


def test_wire_form_is_camel_case_and_round_trips(minimal_spec: dict[str, Any]) -> None:
    wire = parse_spec(minimal_spec).to_wire()
    assert "gpusPerReplica" in wire["runtime"]
    assert "forecastHorizonSeconds" in wire["scaling"]
    assert parse_spec(wire) == parse_spec(minimal_spec)


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"replicas": {"min": 5, "max": 2}}, "replicas.min must be <= replicas.max"),
        ({"replicas": {"min": 0}}, "needs a warm or cold standby pool"),
        ({"precision": {"policy": "fp8"}}, "precision.policy"),
        ({"precision": {"accuracyFloor": "1.5"}}, "accuracyFloor"),
        ({"batching": {"maxBatchSize": 0}}, "batching.maxBatchSize"),
        ({"model": {"name": "Bad_Name", "uri": "builtin:x"}}, "model.name"),
        ({"model": {"name": "m", "uri": "ftp://x"}}, "model.uri"),
        (
            {
                "runtime": {"gpusPerReplica": 1},
                "sharding": {
                    "groups": [
                        {"name": "a", "layers": ["attention"], "gpus": 1},
                        {"name": "b", "layers": ["ffn"], "gpus": 1},
                    ]
                },
            },
            "shard groups need 2 GPUs",
        ),
        ({"sharding": {"groups": [{"name": "a", "layers": ["all", "ffn"]}]}}, "'all' must be the only layer"),
        (
            {
                "sharding": {
                    "groups": [
                        {"name": "a", "layers": ["attention"]},
                        {"name": "b", "layers": ["attention", "ffn"]},
                    ]
                }
            },
            "layer 'attention' is in shard groups 'a' and 'b'",
        ),
        (
            {"sharding": {"groups": [{"name": "a", "layers": ["all"]}, {"name": "b", "layers": ["ffn"]}]}},
            "'all' layers must be the only group",
        ),
        (
            {"sharding": {"groups": [{"name": "a", "layers": ["ffn"]}, {"name": "a", "layers": ["head"]}]}},
            "used twice",
        ),
        ({"scaling": {"mode": "chaos"}}, "scaling.mode"),
        ({"scaling": {"mode": "reactive"}}, "reactive mode needs replicas.target"),
        ({"unknownField": 1}, "unknownField"),
        (
            {"model": {"name": "m", "uri": "builtin:x", "format": "torchscript"}},
            "outrider engine serves ONNX",
        ),
    ],
)
def test_invalid_specs_name_the_problem(
    minimal_spec: dict[str, Any], patch: dict[str, Any], needle: str
) -> None:
    raw = {**minimal_spec, **patch}
    with pytest.raises(ValidationError) as info:
        InferenceDeploymentSpec.model_validate(raw)
    text = str(info.value)
    assert needle.split(".")[-1] in text or needle in text, text


def test_seed_partition_is_expressible(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(
        {
            **minimal_spec,
            "runtime": {"gpusPerReplica": 2},
            "sharding": {
                "groups": [
                    {
                        "name": "attention",
                        "layers": ["attention"],
                        "devicePreference": "memoryBandwidth",
                        "maxBatchSize": 32,
                    },
                    {"name": "ffn", "layers": ["ffn"], "devicePreference": "compute", "maxBatchSize": 64},
                ]
            },
        }
    )
    assert [g.max_batch_size for g in spec.sharding.groups] == [32, 64]
    assert spec.sharding.total_gpus() == 2
