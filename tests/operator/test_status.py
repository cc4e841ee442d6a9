from datetime import UTC, datetime, timedelta
from typing import Any

from outrider_operator.api.resource import parse_spec
from outrider_operator.api.status import InferenceDeploymentStatus
from outrider_operator.reconcile.scaling import desired_active_replicas
from outrider_operator.reconcile.semantics import ClusterFacts, SpecProblem, check_semantics
from outrider_operator.reconcile.status import (
    ObservedPool,
    compute_status,
    invalid_spec_status,
    observe_deployment,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _pools(active: ObservedPool, warm: ObservedPool | None = None) -> dict[str, ObservedPool]:
    return {"active": active, "warm": warm or ObservedPool(True), "cold": ObservedPool(True)}


def _cond(status: InferenceDeploymentStatus, ctype: str) -> tuple[str, str]:
    cond = next(c for c in status.conditions if c.type == ctype)
    return cond.status, cond.reason


def test_ready_needs_current_generation_and_all_replicas(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(minimal_spec)
    rolling = ObservedPool(
        True, desired=2, total=3, ready=2, updated=1, available=2, generation=3, observed_generation=3
    )
    st = compute_status("m", spec, 5, InferenceDeploymentStatus(), _pools(rolling), T0)
    assert _cond(st, "Ready") == ("False", "PodsNotReady")
    assert _cond(st, "Progressing") == ("True", "RollingOut")
    stale = ObservedPool(
        True, desired=2, total=2, ready=2, updated=2, available=2, generation=4, observed_generation=3
    )
    assert _cond(compute_status("m", spec, 5, st, _pools(stale), T0), "Ready")[0] == "False"
    # both new pods exist, one is ready, and an old pod still serves: not rolled out yet
    mid = ObservedPool(
        True, desired=2, total=3, ready=2, updated=2, available=2, generation=4, observed_generation=4
    )
    assert _cond(compute_status("m", spec, 5, st, _pools(mid), T0), "Ready")[0] == "False"
    done = ObservedPool(
        True, desired=2, total=2, ready=2, updated=2, available=2, generation=4, observed_generation=4
    )
    st2 = compute_status("m", spec, 5, st, _pools(done), T0 + timedelta(seconds=5))
    assert _cond(st2, "Ready") == ("True", "Available")
    assert _cond(st2, "Progressing") == ("False", "Complete")
    assert st2.observed_generation == 5
    assert st2.selector == "outrider.dev/deployment=m,outrider.dev/pool=active"
    assert st2.replicas == 2 and st2.ready_replicas == 2 and st2.gpus_attached == 2


def test_transition_time_kept_while_status_unchanged(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(minimal_spec)
    done = ObservedPool(
        True, desired=1, total=1, ready=1, updated=1, available=1, generation=1, observed_generation=1
    )
    st1 = compute_status("m", spec, 1, InferenceDeploymentStatus(), _pools(done), T0)
    st2 = compute_status("m", spec, 1, st1, _pools(done), T0 + timedelta(minutes=5))
    assert st1 == st2  # nothing changed, so nothing to write


def test_missing_children_and_degraded(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec({**minimal_spec, "replicas": {"min": 2, "max": 4}})
    st = compute_status("m", spec, 1, InferenceDeploymentStatus(), _pools(ObservedPool(False)), T0)
    assert _cond(st, "Ready") == ("False", "ChildrenMissing")
    low = ObservedPool(True, desired=2, ready=1, updated=2, generation=1, observed_generation=1)
    assert _cond(compute_status("m", spec, 1, st, _pools(low), T0), "Degraded") == ("True", "BelowMinimum")


def test_invalid_spec_status_keeps_counts_and_names_field() -> None:
    prev = InferenceDeploymentStatus(replicas=3, ready_replicas=3)
    st = invalid_spec_status(prev, [SpecProblem("spec.runtime.gpusPerReplica", "too many")], 7, T0)
    ready = next(c for c in st.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert "spec.runtime.gpusPerReplica" in ready.message
    assert st.replicas == 3 and st.observed_generation == 7


def test_semantic_checks(minimal_spec: dict[str, Any]) -> None:
    nodes = [
        {
            "metadata": {"labels": {"outrider.dev/gpu-product": "H100"}},
            "status": {"allocatable": {"nvidia.com/gpu": "8"}},
        },
        {"metadata": {"labels": {}}, "status": {"allocatable": {"cpu": "8"}}},
    ]
    facts = ClusterFacts.from_nodes(nodes, "nvidia.com/gpu", "outrider.dev/gpu-product")
    assert facts.max_gpus_per_node == 8 and facts.gpu_products == frozenset({"H100"})
    ok = parse_spec({**minimal_spec, "runtime": {"gpusPerReplica": 8}})
    assert check_semantics(ok, facts) == []
    too_big = parse_spec({**minimal_spec, "runtime": {"gpusPerReplica": 12}})
    problems = check_semantics(too_big, facts)
    assert problems and problems[0].field == "spec.runtime.gpusPerReplica"
    assert "largest node offers 8" in problems[0].message
    # no nodes known (yet): nothing is claimed impossible
    assert check_semantics(too_big, ClusterFacts()) == []
    # nodes but no GPU node at all: the GPU pool may scale from zero, so nothing is impossible yet
    cpu_only = ClusterFacts.from_nodes(nodes[1:], "nvidia.com/gpu", "outrider.dev/gpu-product")
    assert cpu_only.node_count == 1 and check_semantics(too_big, cpu_only) == []
    # remote URIs the operator cannot fetch yet are named, not silently passed to a failing pod
    for uri in ("s3://bucket/minilm", "hf://sentence-transformers/all-MiniLM-L6-v2"):
        remote = parse_spec({**minimal_spec, "model": {"name": "minilm", "uri": uri}})
        assert [p.field for p in check_semantics(remote, ClusterFacts())] == ["spec.model.uri"]
    # a CPU-only spec with shard groups needs no GPU node
    sharded_cpu = parse_spec(
        {
            **minimal_spec,
            "runtime": {"gpusPerReplica": 0},
            "sharding": {"groups": [{"name": "all", "layers": ["all"]}]},
        }
    )
    assert check_semantics(sharded_cpu, facts) == []
    small = ClusterFacts(max_gpus_per_node=1, node_count=2)
    two_shards = parse_spec(
        {
            **minimal_spec,
            "runtime": {"gpusPerReplica": 2},
            "sharding": {
                "groups": [
                    {"name": "a", "layers": ["embeddings", "attention"]},
                    {"name": "b", "layers": ["ffn", "head"]},
                ]
            },
        }
    )
    assert [p.field for p in check_semantics(two_shards, small)] == [
        "spec.runtime.gpusPerReplica",
        "spec.sharding.groups",
    ]


def test_desired_replicas_by_mode(minimal_spec: dict[str, Any]) -> None:
    base = {**minimal_spec, "replicas": {"min": 2, "max": 5, "target": 9}}
    reactive = parse_spec({**base, "scaling": {"mode": "reactive"}})
    assert desired_active_replicas(reactive, InferenceDeploymentStatus()) == 5
    advisory = parse_spec({**base, "scaling": {"mode": "advisory"}})
    assert desired_active_replicas(advisory, InferenceDeploymentStatus()) == 2
    predictive = parse_spec(base)
    assert desired_active_replicas(predictive, InferenceDeploymentStatus()) == 2
    holding = InferenceDeploymentStatus.model_validate({"pools": {"active": {"desired": 4}}})
    assert desired_active_replicas(predictive, holding) == 4  # no forecast: hold, never drop
    assert desired_active_replicas(advisory, holding) == 4  # advisory never acts: no drop to min either
    too_many = InferenceDeploymentStatus.model_validate({"pools": {"active": {"desired": 9}}})
    assert desired_active_replicas(advisory, too_many) == 5  # still within [min, max]


def _deployment_object(total: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 3},
        "status": {
            "replicas": total,
            "readyReplicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 3,
            "observedGeneration": 2,
        },
    }


def test_observe_deployment() -> None:
    assert observe_deployment(_deployment_object(total=3)).rolled_out
    old_pod_left = observe_deployment(_deployment_object(total=4))  # an old-template pod remains
    assert not old_pod_left.rolled_out
    assert not observe_deployment(None).exists


def test_status_shows_the_image_the_pods_run(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(minimal_spec)
    done = ObservedPool(
        True, desired=2, total=2, ready=2, updated=2, available=2, generation=3, observed_generation=3
    )
    st = compute_status("m", spec, 5, InferenceDeploymentStatus(), _pools(done), T0, image="reg/rt:2")
    assert st.image == "reg/rt:2" and st.to_wire()["image"] == "reg/rt:2"
