"""Stand-in pieces that need no cluster: reading pods, rewriting configs, topology and KWOK stages."""

from importlib import resources
from typing import Any

import pytest
import yaml

from outrider_devcluster import StandInError
from outrider_devcluster.standin_specs import Probe, plan_for, render_config, status_patch
from outrider_devcluster.topology import STAND_IN_LABEL, STAND_IN_TAINT, load_topology
from outrider_operator.api.resource import parse_spec
from outrider_operator.reconcile.children import Owner, render_children
from outrider_runtime.config import parse_config

TOLERATE = {"key": STAND_IN_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def _operator_pod(pool: str = "active") -> tuple[dict[str, Any], dict[str, str]]:
    """A pod as the operator's Deployment of ``pool`` would create it, and its ConfigMap data."""
    spec = parse_spec(
        {
            "model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
            "placement": {"nodeSelector": {STAND_IN_LABEL: "true"}, "tolerations": [TOLERATE]},
        }
    )
    children = render_children(Owner("minilm", "ml", "uid-1"), spec, active_replicas=1)
    config_map = next(c for c in children if c["kind"] == "ConfigMap")
    deployment = next(
        c
        for c in children
        if c["kind"] == "Deployment" and c["metadata"]["labels"]["outrider.dev/pool"] == pool
    )
    template = deployment["spec"]["template"]
    pod = {
        "metadata": {"name": "minilm-abc", "namespace": "ml", "uid": "0123456789ab", **template["metadata"]},
        "spec": {**template["spec"], "nodeName": "stand-in-h100-0"},
        "status": {"phase": "Running", "podIP": "10.244.0.9"},
    }
    return pod, config_map["data"]


@pytest.mark.parametrize("pool", ["active", "warm", "cold"])
def test_plan_reads_what_the_operator_renders(pool: str) -> None:
    pod, data = _operator_pod(pool)
    plan = plan_for(pod)
    container = pod["spec"]["containers"][0]
    assert plan.config_map == "minilm-runtime" and plan.config_key in data
    assert plan.env["POD_NAME"] == "minilm-abc" and not plan.unresolved_env
    probe = container["readinessProbe"]
    assert plan.probe.kind == "http" and plan.probe.path == probe["httpGet"]["path"]
    assert plan.probe.period_s == probe["periodSeconds"]
    assert plan.ports["http"] == 8000 and plan.component == "ml.minilm-abc.01234567"


def test_rendered_config_listens_on_local_ports_with_one_thread() -> None:
    pod, data = _operator_pod()
    text, mapping = render_config(data[plan_for(pod).config_key], 41000, 41001)
    config = parse_config(yaml.safe_load(text))
    assert (config.server.host, config.server.http_port, config.server.grpc_port) == (
        "127.0.0.1",
        41000,
        41001,
    )
    assert config.server.intra_op_threads == 1
    assert mapping == {8000: 41000, 8001: 41001}


def test_pods_that_cannot_be_hosted_say_why() -> None:
    pod, _ = _operator_pod()
    pod["spec"]["containers"][0]["args"] = ["sleep", "infinity"]
    with pytest.raises(StandInError, match="outrider runtime serve"):
        plan_for(pod)
    pod, _ = _operator_pod()
    pod["spec"]["containers"][0]["args"][-1] = "/elsewhere/runtime.yaml"
    with pytest.raises(StandInError, match="ConfigMap volume"):
        plan_for(pod)


def test_probe_defaults_follow_core_v1() -> None:
    assert Probe.from_spec(None).kind == "none"
    probe = Probe.from_spec({"httpGet": {"path": "/v2/health/settled", "port": "http"}})
    assert (probe.period_s, probe.timeout_s, probe.failure_threshold, probe.success_threshold) == (
        10,
        1,
        3,
        1,
    )
    assert Probe.from_spec({"tcpSocket": {"port": 8000}, "periodSeconds": 2}).kind == "tcp"


def test_stand_in_pool_is_labelled_tainted_and_not_scaled() -> None:
    topology = load_topology()
    stand_ins = [n for n in topology.nodes() if n["metadata"]["labels"].get(STAND_IN_LABEL) == "true"]
    assert stand_ins, "hack/cluster-topology.yaml holds a stand-in pool"
    assert all(n["spec"]["taints"] == [STAND_IN_TAINT] for n in stand_ins)
    assert all("taints" not in n["spec"] for n in topology.nodes() if n not in stand_ins)
    scaled = load_topology(nodes=100)
    assert sum(p.count for p in scaled.pools if p.stand_in) == len(stand_ins)
    assert sum(p.count for p in scaled.pools if not p.stand_in) == 100


def test_kwok_stages_split_pods_on_the_stand_in_toleration() -> None:
    text = resources.files("outrider_devcluster").joinpath("kwok-stages.yaml").read_text()
    stages = {d["metadata"]["name"]: d for d in yaml.safe_load_all(text) if d}

    def toleration_rule(name: str) -> dict[str, Any]:
        rules = stages[name]["spec"]["selector"]["matchExpressions"]
        return next(r for r in rules if "tolerations" in r["key"])

    assert toleration_rule("pod-ready")["operator"] == "NotIn"
    assert toleration_rule("pod-stand-in")["operator"] == "In"
    assert (
        toleration_rule("pod-ready")["values"]
        == toleration_rule("pod-stand-in")["values"]
        == [STAND_IN_LABEL]
    )
    template = yaml.safe_load(
        stages["pod-stand-in"]["spec"]["next"]["statusTemplate"].replace("{{", "#").replace("}}", "")
    )
    assert {c["type"]: c["status"] for c in template["conditions"] if "type" in c}["Ready"] == "False"


def _kwok_started_pod() -> dict[str, Any]:
    """A stand-in pod as KWOK's pod-stand-in stage leaves it."""
    unready = {"status": "False", "reason": "ContainersNotReady"}
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "ContainersReady", **unready},
                {"type": "Ready", **unready},
            ],
            "containerStatuses": [
                {"name": "server", "image": "x", "ready": False, "started": True, "restartCount": 0,
                 "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
            ],
        }
    }  # fmt: skip


def test_status_patch_is_what_a_kubelet_sends() -> None:
    pod = _kwok_started_pod()
    assert status_patch(pod, "server", ready=False, running=True, restart_count=0) is None, "nothing changed"
    patch = status_patch(pod, "server", ready=True, running=True, restart_count=0)
    assert patch is not None
    conditions = {c["type"]: c for c in patch["status"]["conditions"]}
    assert set(conditions) == {"Ready", "ContainersReady"}
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] is None
    (entry,) = patch["status"]["containerStatuses"]
    assert entry["ready"] is True and entry["state"] == pod["status"]["containerStatuses"][0]["state"]

    crashed = status_patch(pod, "server", ready=False, running=False, restart_count=0, exit_code=137)
    assert crashed is not None and "conditions" not in crashed["status"], "it was not ready already"
    (entry,) = crashed["status"]["containerStatuses"]
    assert entry["lastState"]["terminated"]["exitCode"] == 137
    assert entry["state"]["waiting"]["reason"] == "CrashLoopBackOff" and entry["started"] is False
    restarted = status_patch(pod, "server", ready=False, running=True, restart_count=1)
    assert restarted is not None
    assert restarted["status"]["containerStatuses"][0]["restartCount"] == 1
