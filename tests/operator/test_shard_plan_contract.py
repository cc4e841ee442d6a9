"""The shard-plan annotation: one typed model written by the operator and read by the extender."""

from __future__ import annotations

import json

import pytest

from outrider_operator.api.placement import (
    ShardPlanError,
    parse_shard_plan,
    render_shard_plan,
    shard_plan_for,
)
from outrider_operator.api.resource import parse_spec
from outrider_operator.reconcile.children import shard_plan_annotation
from outrider_scheduler.extender.errors import MalformedRequestError
from outrider_scheduler.extender.requirements import PodRequirements, ShardGroup
from outrider_scheduler.extender.simulation import make_pod

SHARDED = {
    "model": {"name": "m", "uri": "builtin:all-minilm-l6-v2"},
    "runtime": {"gpusPerReplica": 2},
    "sharding": {
        "groups": [
            {"name": "attn", "layers": ["embeddings", "attention"], "devicePreference": "memoryBandwidth"},
            {"name": "ffn", "layers": ["ffn", "head"], "maxBatchSize": 64},
        ]
    },
}


def test_what_the_operator_writes_the_extender_reads_back_unchanged() -> None:
    spec = parse_spec(SHARDED)
    raw = shard_plan_annotation(spec)
    assert raw == render_shard_plan(shard_plan_for(spec))
    entries = parse_shard_plan(raw)
    assert entries == shard_plan_for(spec)
    groups = [ShardGroup.from_entry(e) for e in entries]
    assert groups[0] == ShardGroup("attn", ("embeddings", "attention"), "memoryBandwidth", 32, 1)
    assert groups[1] == ShardGroup("ffn", ("ffn", "head"), "compute", 64, 1)
    assert json.loads(raw)[0] == {
        "name": "attn",
        "layers": ["embeddings", "attention"],
        "devicePreference": "memoryBandwidth",
        "maxBatchSize": 32,
        "gpus": 1,
    }


def test_an_unsharded_spec_is_one_group_holding_everything() -> None:
    spec = parse_spec(
        {"model": {"name": "m", "uri": "builtin:all-minilm-l6-v2"}, "runtime": {"gpusPerReplica": 1}}
    )
    (entry,) = parse_shard_plan(shard_plan_annotation(spec))
    assert (entry.name, entry.layers, entry.gpus) == ("all", ("all",), 1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[{", "is not valid JSON"),
        ("{}", "must be a JSON list of shard groups"),
        ("[1]", r"\[0\] must be an object"),
        ('[{"layers": "ffn"}]', r"\[0\]\.layers='ffn' must be a list of all, attention"),
        ('[{"layers": ["gpu"]}]', r"\[0\]\.layers=\['gpu'\] must be a list"),
        (
            '[{}, {"devicePreference": "fast"}]',
            r"\[1\]\.devicePreference='fast' must be 'memoryBandwidth' or",
        ),
        ('[{"gpus": true}]', r"\[0\]\.gpus=True must be a non-negative integer"),
        ('[{"maxBatchSize": -2}]', r"\[0\]\.maxBatchSize=-2 must be a non-negative integer"),
    ],
)
def test_bad_plans_name_the_entry_and_the_field(raw: str, message: str) -> None:
    with pytest.raises(ShardPlanError, match=message):
        parse_shard_plan(raw)
    pod = make_pod("p", 1)
    pod["metadata"]["annotations"]["outrider.dev/shard-plan"] = raw
    with pytest.raises(MalformedRequestError, match=message):
        PodRequirements.from_pod(pod)


def test_unknown_fields_and_missing_ones_are_tolerated() -> None:
    """Pods rendered by a newer operator (or by hand) still place: defaults fill what is missing."""
    (entry,) = parse_shard_plan('[{"layers": ["attention"], "addedLater": {"x": 1}}]')
    assert (entry.name, entry.device_preference, entry.max_batch_size, entry.gpus) == (
        "shard-0",
        "memoryBandwidth",
        1,
        1,
    )
    assert parse_shard_plan("") == [] and parse_shard_plan(None) == []
