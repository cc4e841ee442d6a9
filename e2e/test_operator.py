"""The operator end to end on the real local control plane.

``helm install`` runs the operator (and the release's kube-scheduler with its extender) as pods of
the Dockerfile's image on the real node, with the chart's ServiceAccount and RBAC, watching this
module's namespace. Children are created by the operator pod, pods by the real controller-manager,
scheduled by the release's kube-scheduler onto KWOK's simulated GPU nodes and marked ready by KWOK.
The operator's metrics are read through the apiserver's pod proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from outrider_devcluster import polling
from outrider_devcluster.release import RELEASE_NAMESPACE as RELEASE_NS
from outrider_devcluster.release import Release, in_cluster_release, release_values

REPO = Path(__file__).resolve().parents[1]
NS = f"e2e-operator-{os.getpid()}"
SCHEDULER = "outrider-e2e-operator"
"""The release's scheduler profile (the cluster's host scheduler keeps ``outrider``)."""
SAMPLE = REPO / "manifests" / "samples" / "outrider.dev_v1alpha1_inferencedeployment.yaml"


_NOT_YET = (subprocess.CalledProcessError, KeyError, IndexError, TypeError, ValueError, AssertionError)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Poll ``check``; kubectl failures and missing keys while objects appear count as "not yet"."""
    return polling.wait_for(what, check, timeout_s, every_s=0.5, tolerate=_NOT_YET)


def get_json(cluster: Any, *args: str) -> Any:
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == ctype:
            return dict(cond)
    return None


def idf(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "outrider.dev/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"}, **spec},
    }
    return yaml.safe_dump(body)


@pytest.fixture(scope="module")
def crds(cluster: Any) -> None:
    """Install (or update) the CRD from crds/ and wait until it is established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", "crd/inferencedeployments.outrider.dev"
    )
    cluster.kubectl("create", "namespace", NS, check=False)


@pytest.fixture(scope="module")
def operator(
    cluster: Any, crds: None, real_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The chart with the operator pod (and the release's scheduler) watching this module's namespace."""
    # the forecaster forecasts every 2 s from a Prometheus that is down (nothing listens on the pod's
    # 127.0.0.1:1); the agent publishes the real node's inventory
    values = release_values([NS], SCHEDULER, "forecaster", "agent", forecaster={"intervalSeconds": 2})
    try:
        with in_cluster_release(cluster, tmp_path_factory.mktemp("operator"), values) as release:
            pod = release.pod("operator")
            assert pod["spec"]["nodeName"] == real_node
            yield release
    finally:
        # Wait until the namespace (and its pods) are gone: the cluster is shared by the next
        # modules, and pods left on GPU nodes change where the scheduler puts theirs.
        cluster.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)


def test_apiserver_rejects_invalid_objects_with_schema_messages(cluster: Any, crds: None) -> None:
    cases = [
        ({"replicas": {"min": 5, "max": 2}}, "replicas.min must be <= replicas.max"),
        ({"precision": {"policy": "fp64"}}, 'Unsupported value: "fp64"'),
        ({"batching": {"maxBatchSize": 100000}}, "should be less than or equal to 4096"),
        ({"replicas": {"min": 0, "max": 2}}, "needs a warm or cold standby pool"),
        ({"scaling": {"mode": "reactive"}}, "reactive mode needs replicas.target"),
        (
            {
                "runtime": {"gpusPerReplica": 1},
                "sharding": {
                    "groups": [{"name": "a", "layers": ["attention"]}, {"name": "b", "layers": ["ffn"]}]
                },
            },
            "the shard groups need more GPUs than runtime.gpusPerReplica",
        ),
        (
            {
                "runtime": {"gpusPerReplica": 2},
                "sharding": {
                    "groups": [
                        {"name": "a", "layers": ["attention"]},
                        {"name": "b", "layers": ["attention", "ffn"]},
                    ]
                },
            },
            "each layer family may appear in only one shard group",
        ),
    ]
    for spec, message in cases:
        out = cluster.kubectl("apply", "-f", "-", input=idf("bad", **spec), check=False)
        assert out.returncode != 0, f"apiserver accepted {spec}"
        assert message in out.stderr, out.stderr


def test_apiserver_refuses_specs_the_operator_could_never_serve(cluster: Any, crds: None) -> None:
    """Each of these was once accepted and then wedged or misled the operator (issue 14)."""
    cases = [
        ({"placement": {"tolerations": [{"key": "k", "operator": "Exists", "bogus": 1}]}}, "bogus"),
        ({"placement": {"tolerations": [{"key": 5}]}}, "tolerations[0].key"),
        ({"runtime": {"resources": {"cpu": "10000000000000P"}}}, "spec.runtime.resources.cpu"),
        ({"placement": {"nodeSelector": {"k": "x" * 1_000_000}}}, "spec.placement.nodeSelector.k: Too long"),
        ({"runtime": {"image": "repo/img :1"}}, "spec.runtime.image"),
        ({"runtime": {"gpuProducts": ["NVIDIA H100"]}}, "spec.runtime.gpuProducts[0]"),
        ({"placement": {"priorityClassName": "Bad Name"}}, "spec.placement.priorityClassName"),
    ]
    for spec, message in cases:
        out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=idf("bad", **spec), check=False)
        assert out.returncode != 0, f"apiserver accepted {spec}"
        assert message in out.stderr, out.stderr[:500]
    for name in ("a.b", "9abc", "a" * 64):
        out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=idf(name), check=False)
        assert out.returncode != 0, f"apiserver accepted the name {name!r}"
        assert "metadata.name must be at most 63 characters" in out.stderr, out.stderr[:500]


def test_samples_pass_server_side_validation(cluster: Any, crds: None) -> None:
    out = cluster.kubectl("apply", "--dry-run=server", "-k", str(REPO / "manifests" / "samples"), check=False)
    assert out.returncode == 0, out.stderr


def test_sample_reconciled_end_to_end(cluster: Any, operator: Release) -> None:
    sample = yaml.safe_load(SAMPLE.read_text())
    sample["metadata"]["namespace"] = NS
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(sample))
    name = sample["metadata"]["name"]

    def children() -> bool:
        deps = get_json(cluster, "deployments", "-n", NS, "-l", f"outrider.dev/deployment={name}")
        svc = get_json(cluster, "service", name, "-n", NS)
        cm = get_json(cluster, "configmap", f"{name}-runtime", "-n", NS)
        pdb = get_json(cluster, "pdb", name, "-n", NS)
        return bool(deps and len(deps["items"]) == 3 and svc and cm and pdb)

    wait_for("children", children)
    owner_uid = get_json(cluster, "infd", name, "-n", NS)["metadata"]["uid"]
    for kind, child in (
        ("deployment", name),
        ("deployment", f"{name}-warm"),
        ("service", name),
        ("configmap", f"{name}-runtime"),
        ("pdb", name),
    ):
        refs = get_json(cluster, kind, child, "-n", NS)["metadata"]["ownerReferences"]
        assert refs[0]["uid"] == owner_uid and refs[0]["controller"] is True

    def ready() -> dict[str, Any] | None:
        obj = get_json(cluster, "infd", name, "-n", NS)
        cond = condition(obj, "Ready")
        return obj if cond and cond["status"] == "True" else None

    obj = wait_for("Ready=True (pods scheduled and marked ready)", ready, timeout_s=120)
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["pools"]["active"] == {"desired": 2, "ready": 2, "updated": 2}
    assert status["pools"]["warm"]["desired"] == 1 and status["pools"]["cold"]["desired"] == 1
    assert status["gpusAttached"] == 4
    assert "batchSize" not in status and "plan" not in status  # the planner's fields: no planner runs here
    pods = get_json(cluster, "pods", "-n", NS, "-l", f"outrider.dev/deployment={name}")["items"]
    assert len(pods) == 4
    for pod in pods:
        assert pod["spec"]["schedulerName"] == SCHEDULER
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    table = cluster.kubectl("get", "infd", name, "-n", NS).stdout
    assert "READY" in table and "ACTIVE" in table and "FORECAST" in table

    # the Service routes only to serving pods (the active pool's, until a planner promotes others)
    def addresses() -> list[str]:
        eps = get_json(cluster, "endpointslices", "-n", NS, "-l", f"kubernetes.io/service-name={name}")
        return [a for s in eps["items"] for e in (s.get("endpoints") or []) for a in e["addresses"]]

    wait_for("two endpoints (the active pool only)", lambda: len(addresses()) == 2, timeout_s=30)
    time.sleep(2)
    assert len(addresses()) == 2, addresses()  # warm and cold pods never join


def test_reconcile_is_idempotent_and_never_writes_spec(cluster: Any, operator: Release) -> None:
    name = "minilm"
    wait_for(
        "sample ready",
        lambda: (condition(get_json(cluster, "infd", name, "-n", NS), "Ready") or {}).get("status") == "True",
        timeout_s=120,
    )

    def snapshot() -> dict[str, str]:
        out = {}
        for kind, child in (("service", name), ("configmap", f"{name}-runtime"), ("pdb", name)):
            out[f"{kind}/{child}"] = get_json(cluster, kind, child, "-n", NS)["metadata"]["resourceVersion"]
        for dep in ("", "-warm", "-cold"):
            obj = get_json(cluster, "deployment", f"{name}{dep}", "-n", NS)
            out[f"deployment/{name}{dep}"] = str(obj["metadata"]["generation"])
        return out

    before = snapshot()
    time.sleep(8)  # more than two resync periods of 3 s
    assert snapshot() == before
    metrics = operator.scrape("operator")
    ok = [
        ln for ln in metrics.splitlines() if ln.startswith('outrider_operator_reconciles_total{result="ok"}')
    ]
    assert ok and float(ok[0].split()[-1]) >= 3, ok
    obj = get_json(cluster, "infd", name, "-n", NS, "--show-managed-fields")
    entries = obj["metadata"]["managedFields"]
    assert any(e["manager"] == "outrider-operator" for e in entries), entries
    for entry in entries:
        if entry.get("manager", "").startswith("kubectl"):
            continue
        assert "f:spec" not in json.dumps(entry.get("fieldsV1", {})), entry


def test_drift_in_children_is_repaired(cluster: Any, operator: Release) -> None:
    name = "minilm"
    wait_for("service", lambda: get_json(cluster, "service", name, "-n", NS))
    old_uid = get_json(cluster, "service", name, "-n", NS)["metadata"]["uid"]
    cluster.kubectl("delete", "service", name, "-n", NS)
    wait_for(
        "service recreated",
        lambda: (
            (get_json(cluster, "service", name, "-n", NS) or {}).get("metadata", {}).get("uid")
            not in (None, old_uid)
        ),
    )
    cluster.kubectl("scale", "deployment", name, "-n", NS, "--replicas=5")
    wait_for(
        "replicas restored", lambda: get_json(cluster, "deployment", name, "-n", NS)["spec"]["replicas"] == 2
    )
    cluster.kubectl(
        "patch",
        "configmap",
        f"{name}-runtime",
        "-n",
        NS,
        "--type=merge",
        "-p",
        json.dumps({"data": {"runtime.yaml": "tampered"}}),
    )
    wait_for(
        "config restored",
        lambda: (
            "RuntimeConfig"
            in get_json(cluster, "configmap", f"{name}-runtime", "-n", NS)["data"]["runtime.yaml"]
        ),
    )


def test_invalid_spec_reported_and_children_untouched(cluster: Any, operator: Release) -> None:
    name = "too-big"
    cluster.kubectl("apply", "-f", "-", input=idf(name, runtime={"gpusPerReplica": 2}))
    wait_for("children", lambda: get_json(cluster, "deployment", name, "-n", NS))
    gen_before = get_json(cluster, "deployment", name, "-n", NS)["metadata"]["generation"]
    cluster.kubectl("apply", "-f", "-", input=idf(name, runtime={"gpusPerReplica": 12}))

    def invalid() -> dict[str, Any] | None:
        cond = condition(get_json(cluster, "infd", name, "-n", NS), "Ready")
        return cond if cond and cond["reason"] == "InvalidSpec" else None

    cond = wait_for("Ready=False/InvalidSpec", invalid)
    assert cond["status"] == "False"
    assert "spec.runtime.gpusPerReplica" in cond["message"] and "largest node offers 8" in cond["message"]
    events = get_json(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")
    assert any(e["reason"] == "InvalidSpec" and e["type"] == "Warning" for e in events["items"])
    dep = get_json(cluster, "deployment", name, "-n", NS)
    assert dep["metadata"]["generation"] == gen_before
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    pod = operator.pod("operator")  # the same container, never restarted: bad input crashed nothing
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, pod["status"]
    # fixing the spec recovers
    cluster.kubectl("apply", "-f", "-", input=idf(name, runtime={"gpusPerReplica": 4}))
    wait_for(
        "limits updated",
        lambda: (
            get_json(cluster, "deployment", name, "-n", NS)["spec"]["template"]["spec"]["containers"][0][
                "resources"
            ]["limits"]["nvidia.com/gpu"]
            == "4"
        ),
    )


def test_scale_subresource_in_reactive_mode(cluster: Any, operator: Release) -> None:
    name = "reactive"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=idf(name, scaling={"mode": "reactive"}, replicas={"min": 1, "max": 6, "target": 1}),
    )
    wait_for("deployment", lambda: get_json(cluster, "deployment", name, "-n", NS))
    # GET /scale answers (what HPA and KEDA read), then kubectl scale writes through it
    scale = get_json(cluster, "infd", name, "-n", NS, "--subresource=scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    cluster.kubectl("scale", "infd", name, "-n", NS, "--replicas=3")
    wait_for("scaled to 3", lambda: get_json(cluster, "deployment", name, "-n", NS)["spec"]["replicas"] == 3)
    wait_for("status.replicas", lambda: get_json(cluster, "infd", name, "-n", NS)["status"]["replicas"] == 3)


def test_deleting_cascades_to_children(cluster: Any, operator: Release) -> None:
    name = "short-lived"
    cluster.kubectl("apply", "-f", "-", input=idf(name, runtime={"gpusPerReplica": 0}))
    wait_for("children", lambda: get_json(cluster, "deployment", f"{name}-warm", "-n", NS))
    assert not (get_json(cluster, "infd", name, "-n", NS)["metadata"].get("finalizers"))
    cluster.kubectl("delete", "infd", name, "-n", NS, "--wait=true", "--timeout=30s")

    def gone() -> bool:
        left = []
        for kind in ("deployments", "services", "configmaps", "pdb"):
            items = get_json(cluster, kind, "-n", NS, "-l", f"outrider.dev/deployment={name}")["items"]
            left += [i["metadata"]["name"] for i in items]
        return not left

    wait_for("garbage collection of children", gone, timeout_s=60)


def test_why_a_rollout_is_stuck_reaches_the_object(cluster: Any, operator: Release) -> None:
    """A cause only the ReplicaSet or the pod held (a missing PriorityClass, a node selector no
    node matches) becomes Ready's reason and message, and a Warning Event (issue 14, item 4)."""
    small = {"runtime": {"gpusPerReplica": 0}, "replicas": {"min": 1, "max": 1}}
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=idf("stuck-priority", placement={"priorityClassName": "no-such-class"}, **small),
    )
    selector = {"nodeSelector": {"outrider.dev/no-such-label": "x"}}
    cluster.kubectl("apply", "-f", "-", input=idf("stuck-selector", placement=selector, **small))

    def ready(name: str) -> dict[str, Any]:
        return condition(get_json(cluster, "infd", name, "-n", NS), "Ready") or {}

    wait_for("ReplicaFailure on Ready", lambda: ready("stuck-priority").get("reason") == "ReplicaFailure")
    assert "no-such-class" in ready("stuck-priority")["message"], ready("stuck-priority")
    wait_for("Unschedulable on Ready", lambda: ready("stuck-selector").get("reason") == "Unschedulable")
    assert "node" in ready("stuck-selector")["message"], ready("stuck-selector")

    def events(name: str) -> set[str]:
        items = get_json(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")[
            "items"
        ]
        return {e["reason"] for e in items if e["type"] == "Warning"}

    wait_for("Warning Events", lambda: "ReplicaFailure" in events("stuck-priority"))
    wait_for("Warning Events", lambda: "Unschedulable" in events("stuck-selector"))
    cluster.kubectl(
        "delete", "infd", "stuck-priority", "stuck-selector", "-n", NS, "--wait=true", "--timeout=30s"
    )


LATENCY_THRESHOLD = "outrider_operator_alert_latency_p99_seconds"


def _thresholds(operator: Release, deployment: str) -> dict[str, float]:
    """The operator's outrider_operator_alert_* samples for ``deployment`` in this module's namespace."""
    text = operator.scrape("operator")
    out = {}
    for line in text.splitlines():
        ours = f'deployment="{deployment}"' in line and f'namespace="{NS}"' in line
        if line.startswith("outrider_operator_alert_") and ours:
            out[line.split("{")[0]] = float(line.split()[-1])
    return out


def test_each_deployments_alert_thresholds_are_exported(cluster: Any, operator: Release) -> None:
    """The alert rules compare each deployment with its own spec.monitoring.alerts: the operator
    exports them per deployment, follows edits and forgets deleted deployments."""
    strict = {"latencyP99Ms": 100, "errorRatePercent": 1, "gpuUtilizationPercent": 80}
    small = {"runtime": {"gpusPerReplica": 0}, "replicas": {"min": 1, "max": 1}}
    cluster.kubectl("apply", "-f", "-", input=idf("alerts-strict", monitoring={"alerts": strict}, **small))
    cluster.kubectl("apply", "-f", "-", input=idf("alerts-default", **small))
    expected_strict = {
        "outrider_operator_alert_latency_p99_seconds": 0.1,
        "outrider_operator_alert_error_ratio": 0.01,
        "outrider_operator_alert_gpu_utilization_ratio": 0.8,
    }
    wait_for("strict thresholds", lambda: _thresholds(operator, "alerts-strict") == expected_strict)
    wait_for(
        "default thresholds",
        lambda: (
            _thresholds(operator, "alerts-default")
            == {
                "outrider_operator_alert_latency_p99_seconds": 0.2,
                "outrider_operator_alert_error_ratio": 0.05,
                "outrider_operator_alert_gpu_utilization_ratio": 0.95,
            }
        ),
    )
    patch = {"spec": {"monitoring": {"alerts": {"latencyP99Ms": 150}}}}
    cluster.kubectl("patch", "infd", "alerts-strict", "-n", NS, "--type=merge", "-p", json.dumps(patch))
    wait_for(
        "edited threshold",
        lambda: (
            _thresholds(operator, "alerts-strict").get("outrider_operator_alert_latency_p99_seconds") == 0.15
        ),
    )
    cluster.kubectl(
        "delete", "infd", "alerts-strict", "alerts-default", "-n", NS, "--wait=true", "--timeout=30s"
    )
    wait_for("series of deleted deployments dropped", lambda: not _thresholds(operator, "alerts-strict"))
    wait_for("series of deleted deployments dropped", lambda: not _thresholds(operator, "alerts-default"))


def test_chart_rbac_is_least_privilege(cluster: Any, operator: Release) -> None:
    def can(sa: str, *verb_resource: str) -> bool:
        out = cluster.kubectl(
            "auth", "can-i", *verb_resource, "--as", f"system:serviceaccount:{RELEASE_NS}:{sa}", check=False
        )
        return out.stdout.strip() == "yes"

    assert can(
        "outrider-operator", "patch", "inferencedeployments.outrider.dev", "--subresource=status", "-n", NS
    )
    assert can("outrider-operator", "create", "deployments.apps", "-n", NS)
    assert not can("outrider-operator", "update", "inferencedeployments.outrider.dev", "-n", NS)  # never spec
    assert not can("outrider-operator", "get", "secrets", "-n", NS)
    assert can("outrider-scheduler", "watch", "inferencedeployments.outrider.dev", "-A")
    assert can("outrider-scheduler", "create", "bindings", "-n", NS)  # system:kube-scheduler
    assert not can("outrider-scheduler", "get", "secrets", "-n", NS)
    assert not can(
        "outrider-scheduler", "patch", "inferencedeployments.outrider.dev", "--subresource=status", "-n", NS
    )
    assert not can("outrider-scheduler", "patch", "inferencedeployments.outrider.dev", "-n", NS)
    assert can(
        "outrider-forecaster", "patch", "inferencedeployments.outrider.dev", "--subresource=status", "-n", NS
    )
    assert not can("outrider-forecaster", "patch", "inferencedeployments.outrider.dev", "-n", NS)  # spec
    assert not can("outrider-forecaster", "list", "pods", "-A")
    assert can("outrider-agent", "patch", "nodes")
    assert not can("outrider-agent", "delete", "nodes")
    assert not can("outrider-agent", "list", "pods", "-A")


def test_forecaster_and_operator_share_status_without_clobbering(cluster: Any, operator: Release) -> None:
    """The forecaster owns Forecasting and status.forecast; the operator owns the rest (SSA managers)."""
    name = "forecast-me"
    cluster.kubectl("apply", "-f", "-", input=idf(name))

    def both() -> dict[str, Any] | None:
        obj = get_json(cluster, "infd", name, "-n", NS)
        ready, fc = condition(obj, "Ready"), condition(obj, "Forecasting")
        if ready and ready["status"] == "True" and fc:
            return obj
        return None

    obj = wait_for("Ready from the operator and Forecasting from the forecaster", both, timeout_s=90)
    fc = condition(obj, "Forecasting")
    assert fc is not None
    assert (fc["status"], fc["reason"]) == ("False", "MetricsUnavailable"), fc
    assert "forecast" not in obj["status"]  # no fake zero forecast when nothing was measured
    time.sleep(7)  # two operator resyncs (3 s) and several forecaster cycles (2 s)
    obj = get_json(cluster, "infd", name, "-n", NS, "--show-managed-fields")
    assert condition(obj, "Forecasting") is not None and condition(obj, "Ready") is not None
    managers = {
        (m["manager"], m.get("subresource", "")): json.dumps(m.get("fieldsV1", {}))
        for m in obj["metadata"]["managedFields"]
    }
    assert '"k:{\\"type\\":\\"Forecasting\\"}"' in managers[("outrider-forecaster", "status")]
    assert '"k:{\\"type\\":\\"Ready\\"}"' in managers[("outrider-operator", "status")]
    assert "Forecasting" not in managers[("outrider-operator", "status")]
    pod = operator.pod("forecaster")  # it survives Prometheus being down: never restarted
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, operator.logs("forecaster")
