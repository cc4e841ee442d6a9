"""Why a rollout is stuck: causes read from Deployments and pods, lifted onto the conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from outrider_operator.api.resource import parse_spec
from outrider_operator.api.status import InferenceDeploymentStatus
from outrider_operator.reconcile.status import ObservedPool, compute_status
from outrider_operator.reconcile.troubles import Trouble, deployment_trouble, pod_trouble, worst_trouble

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _deployment(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"status": {"conditions": list(conditions)}}


def _pod(name: str = "p-1", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def test_a_replica_failure_names_the_refusal() -> None:
    forbidden = 'pods "m-5d8f" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true'
    d = _deployment(
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": forbidden},
    )
    assert deployment_trouble(d) == Trouble("ReplicaFailure", f"FailedCreate: {forbidden}")
    stalled = _deployment(
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "m timed out",
        }
    )
    assert deployment_trouble(stalled) == Trouble("ReplicaFailure", "m timed out")
    assert deployment_trouble(_deployment({"type": "Available", "status": "True"})) is None
    assert deployment_trouble(None) is None


def test_pod_causes_scheduling_images_and_crashes() -> None:
    unschedulable = _pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/8 nodes are available: 8 node(s) didn't match Pod's node affinity/selector.",
            }
        ]
    )
    t = pod_trouble(unschedulable)
    assert (
        t is not None and t.reason == "Unschedulable" and "didn't match" in t.message and "p-1" in t.message
    )
    pulling = _pod(
        containerStatuses=[
            {
                "name": "server",
                "state": {"waiting": {"reason": "InvalidImageName", "message": 'invalid reference "a b"'}},
            }
        ]
    )
    t = pod_trouble(pulling)
    assert t is not None and t.reason == "ImagePullFailed" and "InvalidImageName" in t.message
    crashing = _pod(
        containerStatuses=[{"name": "server", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
    )
    assert (pod_trouble(crashing) or Trouble("", "")).reason == "CrashLooping"
    creating = _pod(
        containerStatuses=[{"name": "server", "state": {"waiting": {"reason": "ContainerCreating"}}}]
    )
    assert pod_trouble(creating) is None  # a pod on its way is no trouble
    assert pod_trouble(_pod(phase="Running")) is None


def test_the_earliest_cause_is_shown_with_a_count() -> None:
    a, b = Trouble("Unschedulable", "pod a: no node"), Trouble("Unschedulable", "pod b: no node")
    crash = Trouble("CrashLooping", "pod c")
    assert worst_trouble([crash, None, a, b]) == Trouble(
        "Unschedulable", "pod a: no node (and 1 more like it)"
    )
    assert worst_trouble([None, None]) is None
    long = pod_trouble(
        _pod(
            conditions=[
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "x" * 5000}
            ]
        )
    )
    assert long is not None and len(long.message) <= 600


def test_a_trouble_becomes_the_reason_of_ready_and_progressing(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(minimal_spec)
    stuck = ObservedPool(True, desired=2, total=2, ready=0, updated=2, generation=1, observed_generation=1)
    pools = {"active": stuck, "warm": ObservedPool(True), "cold": ObservedPool(True)}
    trouble = Trouble("Unschedulable", "pod m-1: 0/8 nodes are available")
    st = compute_status("m", spec, 1, InferenceDeploymentStatus(), pools, T0, trouble=trouble)
    ready = next(c for c in st.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "Unschedulable")
    assert ready.message == "0/2 active pods ready, 2 updated: pod m-1: 0/8 nodes are available"
    progressing = next(c for c in st.conditions if c.type == "Progressing")
    assert progressing.reason == "Unschedulable" and "stuck" in progressing.message
    plain = compute_status("m", spec, 1, InferenceDeploymentStatus(), pools, T0)
    assert next(c for c in plain.conditions if c.type == "Ready").reason == "PodsNotReady"
