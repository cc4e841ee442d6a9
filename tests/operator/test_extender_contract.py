"""The scheduler extender reads every pod the operator renders (the two share only the labels module).

A mismatch here once made the extender answer 400 to every operator-made pod, which kube-scheduler
(ignorable extender) silently skipped: placement lost its GPU awareness without any failure.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml

from outrider_operator.api.resource import parse_spec
from outrider_operator.reconcile.children import Owner, render_children
from outrider_scheduler.extender.errors import MalformedRequestError
from outrider_scheduler.extender.requirements import PodRequirements

REPO = Path(__file__).resolve().parents[2]
SAMPLES = [
    d
    for p in sorted((REPO / "manifests" / "samples").glob("*.yaml"))
    for d in yaml.safe_load_all(p.read_text())
    if d and d.get("kind") == "InferenceDeployment"
]


def _pods(sample: dict[str, Any]) -> list[dict[str, Any]]:
    spec = parse_spec(sample["spec"])
    owner = Owner(sample["metadata"]["name"], "ml", "uid-1")
    pods = []
    for obj in render_children(owner, spec, 2):
        if obj["kind"] == "Deployment":
            template = obj["spec"]["template"]
            meta = {**template["metadata"], "name": f"{obj['metadata']['name']}-abc", "namespace": "ml"}
            pods.append({"metadata": meta, "spec": template["spec"]})
    return pods


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda d: d["metadata"]["name"])
def test_extender_parses_operator_pods(sample: dict[str, Any]) -> None:
    spec = parse_spec(sample["spec"])
    for pod in _pods(sample):
        req = PodRequirements.from_pod(pod)
        assert req.gpus == spec.runtime.gpus_per_replica
        assert req.model == spec.model.name and req.deployment == sample["metadata"]["name"]
        assert req.pool in ("active", "warm", "cold")
        if spec.sharding.groups:
            assert [s.name for s in req.shards] == [g.name for g in spec.sharding.groups]
            assert [s.layers for s in req.shards] == [tuple(map(str, g.layers)) for g in spec.sharding.groups]
            assert [s.max_batch_size for s in req.shards] == [g.max_batch_size for g in spec.sharding.groups]


def test_malformed_layers_are_named() -> None:
    pod = _pods(SAMPLES[0])[0]
    pod["metadata"]["annotations"]["outrider.dev/shard-plan"] = '[{"name": "a", "layers": 3, "gpus": 1}]'
    with pytest.raises(MalformedRequestError, match=r"layers=3 must be a list"):
        PodRequirements.from_pod(pod)
