"""The whole chart in the cluster: every component a pod on the real node, nothing on this machine.

``helm install`` with the images built from the Dockerfile (and the kube-scheduler image made from
the cluster's own kube-scheduler) runs the operator, the kube-scheduler with the extender beside it,
the forecaster, the planner and the agent as pods on the real node, in a namespace enforcing Pod
Security ``restricted``. Prometheus is the one host process (as beside a user's cluster): it finds
the serving pods through the apiserver and scrapes them on the real node's bridge; the forecaster
pod queries it at the address pods reach this machine at. The tests check each component's work
where it shows: pods placed by the release's scheduler (whose extender counts the calls), status
written by the operator, planner and forecaster pods, and the agent's inventory on the Node.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from outrider_devcluster import polling
from outrider_devcluster.images import IMAGES, ensure_images
from outrider_devcluster.incluster import COMPONENTS, in_cluster_values
from outrider_devcluster.prometheus import TargetWriter, prometheus_argv, prometheus_url, scrape_config
from outrider_devcluster.release import ready
from outrider_devcluster.workloads import real_node_deployment
from outrider_operator.api import labels

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "manifests" / "samples"
RELEASE = "e2e"
SCHEDULER = "outrider-e2e"
"""The release's scheduler profile: neither the host scheduler's nor the demo's."""
_NOT_YET = (
    subprocess.CalledProcessError, KeyError, IndexError, TypeError, ValueError, AssertionError, OSError,
)  # fmt: skip


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 120.0, every_s: float = 0.5) -> Any:
    return polling.wait_for(what, check, timeout_s, every_s=every_s, tolerate=_NOT_YET)


def get_json(cluster: Any, *args: str) -> Any:
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def restricted_namespace(cluster: Any, name: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))


@pytest.fixture(scope="module")
def release(
    cluster: Any, real_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Prometheus on this machine, then the chart with every component on the real node."""
    work = tmp_path_factory.mktemp("in-cluster")
    suffix = uuid.uuid4().hex[:6]
    system, ns = f"outrider-e2e-{suffix}", f"e2e-served-{suffix}"
    from outrider_devcluster import Cluster

    started = time.monotonic()
    archives = ensure_images(cluster.settings, ("kube-scheduler",))
    Cluster(cluster.settings).real_nodes.import_images(archives)  # a cluster started before it existed
    print(f"\n[in-cluster] kube-scheduler image ready on the node in {time.monotonic() - started:.1f}s")
    api = cluster.api_client()
    targets = TargetWriter(api, work / "targets.json", [real_node]).start()
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets.path)))
    prom_log = work / "prometheus.log"
    prometheus = subprocess.Popen(
        prometheus_argv(config, work / "tsdb"), stdout=prom_log.open("wb"), stderr=subprocess.STDOUT
    )

    def prometheus_ready() -> bool:
        assert prometheus.poll() is None, f"Prometheus exited:\n{prom_log.read_text()[-2000:]}"
        with urllib.request.urlopen(f"{prometheus_url()}/-/ready", timeout=2) as r:
            return r.status == 200

    values = work / "values.yaml"
    chart_values = in_cluster_values([ns], prometheus_url=prometheus_url(), scheduler_name=SCHEDULER)
    values.write_text(yaml.safe_dump(chart_values))
    helm = ("upgrade", "--install", RELEASE, str(REPO / "charts" / "outrider"), "--namespace", system)
    try:
        wait_for("Prometheus ready", prometheus_ready, 30, 0.25)
        restricted_namespace(cluster, system)
        restricted_namespace(cluster, ns)
        started = time.monotonic()
        cluster.helm(*helm, "-f", str(values), "--wait", "--timeout", "300s")
        print(f"[in-cluster] helm install --wait: every component Ready in {time.monotonic() - started:.1f}s")
        yield {"system": system, "ns": ns, "node": real_node}
    finally:
        for component in COMPONENTS:
            logs = cluster.kubectl(
                "logs", "-n", system, "-l", f"app.kubernetes.io/component={component}", "--all-containers",
                "--tail", "40", check=False,
            )  # fmt: skip
            print(f"--- {component} ---\n{logs.stdout[-3000:]}{logs.stderr[-500:]}")
        cluster.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", check=False)
        cluster.helm("uninstall", RELEASE, "--namespace", system, "--wait", check=False)
        cluster.kubectl("delete", "namespace", system, "--wait=true", "--timeout=120s", check=False)
        prometheus.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            prometheus.wait(timeout=20)
        if prometheus.poll() is None:
            prometheus.kill()
        targets.stop()
        api.close()


def component_pod(cluster: Any, system: str, component: str) -> dict[str, Any]:
    pods = get_json(cluster, "pods", "-n", system, "-l", f"app.kubernetes.io/component={component}")
    running = [p for p in pods["items"] if ready(p) and not p["metadata"].get("deletionTimestamp")]
    assert running, f"no Ready {component} pod"
    return dict(running[0])


def scrape(cluster: Any, system: str, pod: str, port: int) -> str:
    """A pod's /metrics through the apiserver's pod proxy (apiserver -> the pod on the real node)."""
    path = f"/api/v1/namespaces/{system}/pods/{pod}:{port}/proxy/metrics"
    return str(cluster.kubectl("get", "--raw", path).stdout)


def counter(text: str, name: str, **match: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in match.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_every_component_is_a_pod_of_the_built_images_on_the_real_node(
    cluster: Any, release: dict[str, Any]
) -> None:
    control = IMAGES["control"].reference.split("/", 1)[1]
    for component in COMPONENTS:
        pod = component_pod(cluster, release["system"], component)
        assert pod["spec"]["nodeName"] == release["node"], (component, pod["spec"]["nodeName"])
        images = {c["name"]: c["image"] for c in pod["status"]["containerStatuses"]}
        for container, image in images.items():
            expected = IMAGES["kube-scheduler"].reference if container == "kube-scheduler" else control
            assert image.endswith(expected.split("/", 1)[-1]), (component, container, image)
        print(f"[in-cluster] {component}: {pod['metadata']['name']} Ready on {release['node']} ({images})")
    node = get_json(cluster, "node", release["node"])
    # the agent pod published the node's inventory (a CPU-only node here: no NVML in the pod)
    assert labels.ANNOTATION_GPU_INVENTORY in node["metadata"]["annotations"]


def test_gpu_pods_are_placed_by_the_release_scheduler_and_its_extender(
    cluster: Any, release: dict[str, Any]
) -> None:
    ns, system = release["ns"], release["system"]
    sample = yaml.safe_load((SAMPLES / "outrider.dev_v1alpha1_inferencedeployment.yaml").read_text())
    sample["metadata"] = {"name": "gpu", "namespace": ns}
    sample["spec"]["replicas"] = {"min": 1, "max": 2}
    sample["spec"]["standby"] = {"warm": 0, "cold": 0}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(sample))

    def scheduled() -> list[dict[str, Any]]:
        pods = get_json(cluster, "pods", "-n", ns, "-l", f"{labels.LABEL_DEPLOYMENT}=gpu")["items"]
        assert pods and all(p["spec"].get("nodeName") for p in pods)
        return list(pods)

    pods = wait_for("the in-cluster operator's GPU pod is scheduled", scheduled, 180)
    assert {p["spec"]["schedulerName"] for p in pods} == {SCHEDULER}
    events = get_json(cluster, "events", "-n", ns, "--field-selector", "reason=Scheduled")["items"]
    sources = {e.get("reportingComponent") or e.get("source", {}).get("component") for e in events}
    assert SCHEDULER in sources, sources
    scheduler_pod = component_pod(cluster, system, "scheduler")
    scheduler = scheduler_pod["metadata"]["name"]
    metrics = scrape(cluster, system, scheduler, 8766)  # the metrics listener; the API is pod-local
    with pytest.raises(OSError):  # the scheduler API answers kube-scheduler in the pod, nobody else
        socket.create_connection((scheduler_pod["status"]["podIP"], 8765), timeout=3).close()
    calls = counter(metrics, "outrider_extender_requests_total", verb="filter")
    assert calls >= 1, metrics[-2000:]
    print(f"[in-cluster] GPU pod on {pods[0]['spec']['nodeName']}; extender filter calls: {calls:.0f}")


def test_planner_and_forecaster_pods_act_on_serving_pods_of_the_real_node(
    cluster: Any, release: dict[str, Any]
) -> None:
    ns = release["ns"]
    body = real_node_deployment(
        "live",
        ns,
        cpu="400m",
        replicas={"min": 1, "max": 2},
        standby={"warm": 1, "cold": 0},
        scaling={"forecastHorizonSeconds": 30},  # a forecast after 30 s of history, not 300
    )
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def planned() -> dict[str, Any]:
        status = get_json(cluster, "infd", "live", "-n", ns)["status"]
        plan = status["plan"]
        assert (plan["servingPods"], plan["warmPods"]) == (1, 1), plan
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
        assert status["image"] == IMAGES["runtime"].reference  # the operator's default: nothing pinned
        return dict(status)

    started = time.monotonic()
    wait_for("the operator pod says Ready and the planner pod reaches both pods", planned, 300, 2)
    print(f"[in-cluster] Ready, and the planner sees 1 serving, 1 warm, {time.monotonic() - started:.0f}s")
    serving = [
        p
        for p in get_json(cluster, "pods", "-n", ns, "-l", f"{labels.LABEL_DEPLOYMENT}=live")["items"]
        if p["metadata"]["labels"].get(labels.LABEL_ROLE) == labels.ROLE_SERVING and ready(p)
    ]
    address = f"{serving[0]['status']['podIP']}:8000"  # a pod on this machine's real node
    request = json.dumps(
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["forecast me"]}]}
    ).encode()
    sent = 0

    def forecast() -> dict[str, Any]:
        nonlocal sent
        for _ in range(10):
            req = urllib.request.Request(f"http://{address}/v2/models/minilm/infer", data=request)
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200
            sent += 1
        status = get_json(cluster, "infd", "live", "-n", ns)["status"]
        cond = next(c for c in status["conditions"] if c["type"] == "Forecasting")
        assert cond["status"] == "True", cond
        return dict(status["forecast"])

    started = time.monotonic()
    published = wait_for("the forecaster pod publishes a forecast from Prometheus", forecast, 180, 0.5)
    print(
        f"[in-cluster] forecast after {time.monotonic() - started:.0f}s and {sent} requests: "
        f"p50 {published['p50Rps']} req/s, p90 peak {published['p90PeakRps']}"
    )
    assert float(published["p50Rps"]) > 0
    obj = get_json(cluster, "infd", "live", "-n", ns, "--show-managed-fields")
    managers = {m["manager"] for m in obj["metadata"]["managedFields"]}
    assert {"outrider-forecaster", "outrider-planner"} <= managers, managers
    operator = component_pod(cluster, release["system"], "operator")["metadata"]["name"]
    logs = cluster.kubectl("logs", "-n", release["system"], operator).stdout
    # kopf reached the apiserver at the address the kubelet gives pods (no cluster DNS here)
    assert "kubernetes.default.svc" not in logs, logs[-3000:]


def test_the_agent_may_change_only_its_own_node(cluster: Any, release: dict[str, Any]) -> None:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    system = release["system"]
    agent = component_pod(cluster, system, "agent")
    account = agent["spec"]["serviceAccountName"]
    ref = k8s.V1BoundObjectReference(
        kind="Pod", api_version="v1", name=agent["metadata"]["name"], uid=agent["metadata"]["uid"]
    )
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], bound_object_ref=ref)
    )
    with cluster.api_client() as api:
        bound = k8s.CoreV1Api(api).create_namespaced_service_account_token(account, system, request)
    other = next(
        n["metadata"]["name"]
        for n in get_json(cluster, "nodes")["items"]
        if n["metadata"]["name"] != release["node"]
    )
    mark = {"metadata": {"annotations": {"outrider.dev/e2e-probe": "1"}}}

    def patch(token: str, node: str, body: dict[str, Any]) -> int:
        with cluster.token_client(token) as api:
            try:
                k8s.CoreV1Api(api).patch_node(node, body)
            except ApiException as exc:
                assert "Outrider agent may change" in str(exc.body) or exc.status == 403, exc.body
                return int(exc.status)
        return 200

    own = bound.status.token
    assert patch(own, release["node"], mark) == 200  # its own Node: what it publishes
    assert patch(own, other, mark) in (403, 422), f"the agent's token changed {other}"
    assert patch(own, release["node"], {"spec": {"unschedulable": True}}) in (403, 422)
    unbound = cluster.make_token(system, account)  # a token bound to no pod names no node
    assert patch(unbound, release["node"], mark) in (403, 422)
    cluster.kubectl("annotate", "node", release["node"], "outrider.dev/e2e-probe-", check=False)


def _container_pid(container_id: str) -> int:
    """The host PID of a container's main process (the real node's containers run on this machine)."""
    cid = container_id.split("://", 1)[-1]
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if cid in (proc / "cgroup").read_text():
                pids.append(int(proc.name))
    assert pids, f"no process of container {cid} on this machine"
    return min(pids)


def test_a_hung_extender_costs_pods_little_and_is_restarted(cluster: Any, release: dict[str, Any]) -> None:
    """A stopped extender (its loop hung) costs a GPU pod at most the scheduler's 1 s timeouts, and
    the liveness probe restarts it (issue 14, item 6: 5 pods took 50 s, and nothing restarted it)."""
    import os
    import signal

    ns, system = release["ns"], release["system"]
    scheduler = component_pod(cluster, system, "scheduler")
    extender = next(c for c in scheduler["status"]["containerStatuses"] if c["name"] == "extender")
    pid = _container_pid(extender["containerID"])
    restarts = int(extender["restartCount"])
    restricted = {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"hung-{i}", "namespace": ns},
            "spec": {
                "schedulerName": SCHEDULER,
                "containers": [
                    {
                        "name": "c",
                        "image": "registry.k8s.io/pause:3.10",
                        "resources": {"limits": {labels.GPU_RESOURCE: "1"}},
                        "securityContext": restricted,
                    }
                ],
            },
        }
        for i in range(3)
    ]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(pods))

        def all_scheduled() -> bool:
            items = get_json(cluster, "pods", "-n", ns, "-l", "!outrider.dev/deployment")["items"]
            hung = [p for p in items if p["metadata"]["name"].startswith("hung-")]
            return len(hung) == 3 and all(p["spec"].get("nodeName") for p in hung)

        wait_for("3 GPU pods scheduled past the hung extender", all_scheduled, 60, 0.2)
        took = time.monotonic() - started
        print(f"[in-cluster] 3 GPU pods scheduled with the extender stopped in {took:.1f}s")
        assert took < 12, f"3 pods took {took:.1f}s past a hung extender (at most 2 s each expected)"

        def restarted() -> bool:
            pod = get_json(cluster, "pod", scheduler["metadata"]["name"], "-n", system)
            status = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "extender")
            return int(status["restartCount"]) > restarts

        wait_for("the kubelet restarts the hung extender", restarted, 60, 1.0)
        print(
            f"[in-cluster] the hung extender was restarted {time.monotonic() - started:.1f}s after it stopped"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        cluster.kubectl("delete", "pod", "hung-0", "hung-1", "hung-2", "-n", ns, "--wait=false", check=False)
    wait_for("the scheduler pod Ready again", lambda: component_pod(cluster, system, "scheduler"), 120, 1.0)
