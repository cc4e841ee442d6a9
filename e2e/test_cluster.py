"""The local cluster itself: nodes, scheduling under KWOK, garbage collection, RBAC, the extender
wiring of the ``outrider`` profile, and the clear failures of the tooling (ports, early exits,
stale folders, missing binaries, bad topology files)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from outrider_devcluster import (
    BinaryError,
    Cluster,
    ClusterError,
    ClusterSettings,
    ComponentExitedError,
    PortInUseError,
    Ports,
    StaleClusterError,
    TopologyError,
    load_topology,
)
from outrider_devcluster.gobuild import GoBuilder, kubernetes_ldflags, staging_modules
from outrider_devcluster.polling import wait_for
from outrider_devcluster.processes import ProcessTable
from outrider_devcluster.topology import Topology
from outrider_operator.api.inventory import GpuInventory
from outrider_operator.api.labels import ANNOTATION_GPU_INVENTORY, GPU_RESOURCE, LABEL_GPU_PRODUCT

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]


def gpu_deployment(name: str, replicas: int, gpus: int, scheduler: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "server",
                "image": "registry.invalid/outrider/runtime:e2e",
                "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
            }
        ]
    }
    if scheduler:
        spec["schedulerName"] = scheduler
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


# --------------------------------------------------------------------------- nodes


def test_kubectl_get_nodes_lists_the_topology(cluster: Any) -> None:
    out = cluster.kubectl("get", "nodes", "-o", "json").stdout
    names = {n["metadata"]["name"] for n in json.loads(out)["items"]}
    expected = {n["metadata"]["name"] for n in cluster.topology.nodes()}
    assert expected <= names
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    assert version == cluster.settings.versions.kubernetes or version.startswith("v1.")


def test_nodes_are_ready_with_gpu_capacity_and_inventory(cluster: Any) -> None:
    with cluster.api_client() as api:
        items: list[Any] = k8s.CoreV1Api(api).list_node().items
    nodes = {n.metadata.name: n for n in items}
    gpu_nodes = 0
    for pool in cluster.topology.pools:
        for name in pool.node_names():
            node = nodes[name]
            ready = [c for c in node.status.conditions if c.type == "Ready"]
            assert ready and ready[0].status == "True", f"{name} not Ready"
            for field in ("capacity", "allocatable"):
                resources = getattr(node.status, field)
                assert {"cpu", "memory", "pods", GPU_RESOURCE} <= set(resources), (name, field, resources)
                assert resources[GPU_RESOURCE] == str(pool.gpus)
            assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
            inventory = GpuInventory.from_annotation(node.metadata.annotations[ANNOTATION_GPU_INVENTORY])
            assert len(inventory.gpus) == pool.gpus
            if pool.gpu_product:
                gpu_nodes += 1
                assert node.metadata.labels[LABEL_GPU_PRODUCT] == pool.gpu_product
                assert {g.short_product for g in inventory.gpus} == {pool.gpu_product}
                assert inventory.driver and all(g.memory_total_mib > 10_000 for g in inventory.gpus)
            else:
                assert node.metadata.labels[LABEL_GPU_PRODUCT] == "none"
                assert inventory.cpu_only_reason
    assert gpu_nodes >= 1


# --------------------------------------------------------------------------- scheduling under KWOK


def test_gpu_deployment_is_scheduled_and_becomes_available(cluster: Any, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(gpu_deployment("serve", 3, 4)))
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-",
        input=json.dumps({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "serve"},
            "spec": {"selector": {"app": "serve"}, "ports": [{"port": 8000}]},
        }),
    )  # fmt: skip
    cluster.kubectl("rollout", "status", "-n", namespace, "deployment/serve", "--timeout=90s")
    gpu_capacity: dict[str, int] = {
        n["metadata"]["name"]: int(n["status"]["allocatable"].get(GPU_RESOURCE, "0"))
        for n in json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    }
    with cluster.api_client() as api:
        core = k8s.CoreV1Api(api)
        pods: list[Any] = core.list_namespaced_pod(namespace, label_selector="app=serve").items
        assert len(pods) == 3
        for pod in pods:
            assert pod.status.phase == "Running"
            assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
            assert pod.status.pod_ip, "KWOK gives Running pods a fake IP"
            assert gpu_capacity[pod.spec.node_name] >= 4, f"{pod.metadata.name} on {pod.spec.node_name}"
        pod_ips = {p.status.pod_ip for p in pods}

        def endpoint_ips() -> set[str]:
            slices = k8s.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
                namespace, label_selector="kubernetes.io/service-name=serve"
            )
            return {a for s in slices.items for e in (s.endpoints or []) for a in e.addresses}

        wait_for("Service endpoints for the ready pods", lambda: endpoint_ips() == pod_ips)


def test_gpu_requests_beyond_any_node_stay_pending(cluster: Any, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(gpu_deployment("huge", 1, 9)))

    def failed_event() -> str:
        out = cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "reason=FailedScheduling", "-o", "json"
        ).stdout
        return " ".join(e["message"] for e in json.loads(out)["items"])

    message = wait_for("a FailedScheduling event", failed_event)
    assert f"Insufficient {GPU_RESOURCE}" in message
    phases = cluster.kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[*].status.phase}").stdout
    assert phases.split() == ["Pending"]


# --------------------------------------------------------------------------- controller-manager


def test_garbage_collector_deletes_owned_objects(cluster: Any, namespace: str) -> None:
    with cluster.api_client() as api:
        core = k8s.CoreV1Api(api)
        owner: Any = core.create_namespaced_config_map(
            namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="owner"), data={"a": "1"})
        )
        ref = k8s.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
        core.create_namespaced_config_map(
            namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="child", owner_references=[ref]))
        )
        core.delete_namespaced_config_map("owner", namespace)

        def child_gone() -> bool:
            try:
                core.read_namespaced_config_map("child", namespace)
            except ApiException as exc:
                return bool(exc.status == 404)
            return False

        wait_for("the garbage collector to delete the child ConfigMap", child_gone)


def test_deleting_a_deployment_removes_its_pods(cluster: Any, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(gpu_deployment("gone", 2, 1)))
    cluster.kubectl("rollout", "status", "-n", namespace, "deployment/gone", "--timeout=90s")
    cluster.kubectl("delete", "-n", namespace, "deployment/gone", "--wait=true")

    def no_pods() -> bool:
        out = cluster.kubectl("get", "pods,replicasets", "-n", namespace, "-o", "name").stdout
        return bool(out.strip() == "")

    wait_for("ReplicaSet and pods to be garbage-collected", no_pods)


# --------------------------------------------------------------------------- RBAC


def test_service_account_token_is_subject_to_rbac(cluster: Any, namespace: str) -> None:
    with cluster.api_client() as api:
        core = k8s.CoreV1Api(api)
        core.create_namespaced_service_account(
            namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="reader"))
        )
    token = cluster.make_token(namespace, "reader")
    with cluster.token_client(token) as api:
        core = k8s.CoreV1Api(api)
        with pytest.raises(ApiException) as denied:
            core.list_namespaced_pod(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in str(denied.value.body)
    rbac = "rbac.authorization.k8s.io"
    role = {
        "apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    }  # fmt: skip
    binding = {
        "apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    }  # fmt: skip
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": [role, binding]}),
    )
    with cluster.token_client(token) as api:
        core = k8s.CoreV1Api(api)

        def allowed() -> bool:
            try:
                core.list_namespaced_pod(namespace)
            except ApiException:
                return False
            return True

        wait_for("the RoleBinding to grant list pods", allowed, timeout_s=20)
        with pytest.raises(ApiException) as still_denied:
            core.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


# --------------------------------------------------------------------------- the outrider profile


class _RecordingExtender(BaseHTTPRequestHandler):
    """A scheduler extender that admits only ``allowed`` nodes and records every call."""

    calls: list[tuple[str, dict[str, Any]]] = []
    allowed: set[str] = set()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        verb = self.path.rsplit("/", 1)[-1]
        type(self).calls.append((verb, body))
        names = body.get("NodeNames") or []
        if verb == "filter":
            reply: Any = {
                "NodeNames": [n for n in names if n in self.allowed],
                "FailedNodes": {n: "not chosen by the e2e extender" for n in names if n not in self.allowed},
                "Error": "",
            }
        else:
            reply = [{"Host": n, "Score": 10 if n in self.allowed else 0} for n in names]
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_outrider_profile_routes_gpu_pods_through_the_extender(cluster: Any, namespace: str) -> None:
    url = urlparse(cluster.settings.extender_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    try:
        server = ThreadingHTTPServer((host, port), _RecordingExtender)
    except OSError as exc:
        pytest.skip(f"{host}:{port} is taken (probably the real Outrider extender is running): {exc}")
    gpu_nodes = [
        n["metadata"]["name"]
        for n in cluster.topology.nodes()
        if n["status"]["capacity"][GPU_RESOURCE] != "0"
    ]
    l4_nodes = {n for n in gpu_nodes if n.startswith("gpu-l4")}
    _RecordingExtender.calls = []
    _RecordingExtender.allowed = set(gpu_nodes) - l4_nodes
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    l4_only = gpu_deployment("l4-only", 1, 1, "outrider")
    l4_only["spec"]["template"]["spec"]["nodeSelector"] = {LABEL_GPU_PRODUCT: "L4"}
    try:
        for manifest in (gpu_deployment("routed", 2, 1, "outrider"), gpu_deployment("plain", 1, 1), l4_only):
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
        cluster.kubectl("rollout", "status", "-n", namespace, "deployment/routed", "--timeout=90s")
        cluster.kubectl("rollout", "status", "-n", namespace, "deployment/plain", "--timeout=90s")

        def rejected_by_extender() -> str:
            out = cluster.kubectl(
                "get", "events", "-n", namespace, "--field-selector", "reason=FailedScheduling", "-o", "json"
            ).stdout
            return " ".join(
                e["message"] for e in json.loads(out)["items"] if "l4-only" in e["involvedObject"]["name"]
            )

        message = wait_for("the l4-only pod to be refused by the extender's filter", rejected_by_extender)
        pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    finally:
        server.shutdown()
        server.server_close()
    assert "not chosen by the e2e extender" in message
    by_app: dict[str, list[Any]] = {}
    for pod in pods:
        by_app.setdefault(pod["metadata"]["labels"]["app"], []).append(pod)
    placed = {p["spec"]["nodeName"] for p in by_app["routed"]}
    assert placed <= _RecordingExtender.allowed, f"the extender's filter decides placement: {placed}"
    assert [p["status"]["phase"] for p in by_app["l4-only"]] == ["Pending"]
    filtered = {c[1]["Pod"]["metadata"]["name"] for c in _RecordingExtender.calls if c[0] == "filter"}
    assert {p["metadata"]["name"] for p in by_app["routed"] + by_app["l4-only"]} <= filtered
    assert all(c[1]["NodeNames"] is not None for c in _RecordingExtender.calls), (
        "nodeCacheCapable sends names"
    )
    assert not {p["metadata"]["name"] for p in by_app["plain"]} & filtered, (
        "default-scheduler must not call it"
    )


# --------------------------------------------------------------------------- faults (own folder and ports)


def _isolated_settings(tmp_path: Path, base: int) -> ClusterSettings:
    ports = Ports.from_base(base)
    real = ClusterSettings.from_env()
    return ClusterSettings(
        cluster_dir=tmp_path / "cluster", bin_cache=real.bin_cache, ports=ports, ready_timeout_s=30
    )


def test_port_in_use_names_the_component(tmp_path: Path) -> None:
    settings = _isolated_settings(tmp_path, 31400)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.ports.apiserver))
        taken.listen()
        with pytest.raises(PortInUseError) as err:
            Cluster(settings, say=lambda _m: None).up(load_topology(), build=False)
    assert "kube-apiserver" in str(err.value) and str(settings.ports.apiserver) in str(err.value)
    assert not (settings.cluster_dir / "pids").exists() or not list((settings.cluster_dir / "pids").iterdir())


def test_component_exiting_early_is_reported_with_its_log(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("etcd", "kube-controller-manager", "kube-scheduler", "kwok"):
        (assets / name).symlink_to(cluster.bin(name))
    broken = assets / "kube-apiserver"
    broken.write_text("#!/bin/sh\necho 'fatal: simulated apiserver crash' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    settings = _isolated_settings(tmp_path, 31500)
    lab = Cluster(settings, say=lambda _m: None)
    with pytest.raises(ComponentExitedError) as err:
        lab.up(load_topology(), build=False)
    message = str(err.value)
    assert "kube-apiserver exited early with status 3" in message
    assert str(settings.cluster_dir / "logs" / "kube-apiserver.log") in message
    assert "simulated apiserver crash" in message
    assert lab.live_processes() == [], "a failed start stops what it started (etcd)"


def test_stale_half_running_cluster_is_refused_and_down_stops_only_recorded_pids(tmp_path: Path) -> None:
    settings = _isolated_settings(tmp_path, 31600)
    table = ProcessTable(settings.cluster_dir / "pids", settings.cluster_dir / "logs")
    ours = table.start("etcd", ["sleep", "120"])
    dead = table.start("kube-apiserver", ["true"])
    assert dead.popen is not None
    dead.popen.wait()
    bystander = subprocess.Popen(["sleep", "120"])
    try:
        lab = Cluster(settings, say=lambda _m: None)
        with pytest.raises(StaleClusterError) as err:
            lab.up(load_topology(), build=False)
        assert (
            "etcd" in str(err.value)
            and "kube-apiserver" in str(err.value)
            and "cluster-down" in str(err.value)
        )
        stopped = lab.down()
        assert stopped == [f"etcd (pid {ours.pid})"]
        assert ours.popen is not None and ours.popen.wait(5) is not None
        assert bystander.poll() is None, "down must not touch processes it did not start"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_dead_demo_process_is_forgotten_not_called_a_half_dead_cluster(tmp_path: Path) -> None:
    settings = _isolated_settings(tmp_path, 31700)
    table = ProcessTable(settings.cluster_dir / "pids", settings.cluster_dir / "logs")
    etcd = table.start("etcd", ["sleep", "120"])  # the control plane still runs
    crashed = table.start("outrider-runtime", ["true"])  # what `make demo` records, now dead
    assert crashed.popen is not None
    crashed.popen.wait()
    messages: list[str] = []
    lab = Cluster(settings, say=messages.append)
    try:
        with pytest.raises(ClusterError) as err:  # judged on the control plane alone
            lab._reuse_or_clean()
        assert not isinstance(err.value, StaleClusterError), err.value
        assert "apiserver is not ready" in str(err.value)
        assert not (settings.cluster_dir / "pids" / "outrider-runtime.pid").exists()
        assert any("outrider-runtime" in m and "gone" in m for m in messages)
    finally:
        lab.down()
        assert etcd.popen is not None and etcd.popen.wait(5) is not None


def test_missing_binaries_give_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    settings = ClusterSettings(
        cluster_dir=tmp_path / "cluster",
        bin_cache=tmp_path / "empty-cache",
        ports=_isolated_settings(tmp_path, 31700).ports,
    )
    with pytest.raises(BinaryError) as err:
        Cluster(settings, say=lambda _m: None).up(load_topology(), build=False)
    for name in ("etcd", "kube-apiserver", "kwok"):
        assert name in str(err.value)
    assert "make binaries" in str(err.value)


def test_bad_topology_files_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text("pools:\n  - name: gpu\n    count: 2\n    gpuProduct: H200X\n")
    with pytest.raises(TopologyError, match="H200X"):
        load_topology(bad)
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "absent.yaml")
    with pytest.raises(TopologyError, match="--nodes"):
        load_topology(nodes=0)


def test_scaled_topology_keeps_proportions() -> None:
    topology = load_topology(nodes=1000)
    assert isinstance(topology, Topology)
    assert sum(p.count for p in topology.pools) == 1000
    counts = {p.name: p.count for p in topology.pools}
    assert counts["gpu-h100"] == 2 * counts["gpu-a100"]
    assert len({n["metadata"]["name"] for n in topology.nodes()}) == topology.node_count


def test_build_helpers_derive_replaces_and_version_stamps() -> None:
    gomod = (
        "module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n)\nreplace go.etcd.io/x => ../x\n"
    )
    assert staging_modules(gomod) == ["k8s.io/api", "k8s.io/client-go"]
    assert staging_modules(gomod, "../") == ["go.etcd.io/x"]
    flags = kubernetes_ldflags("v1.36.3")
    assert "k8s.io/component-base/version.gitVersion=v1.36.3" in flags and "gitMinor=36" in flags


def test_go_builds_ignore_a_developers_workspace_and_cross_compile_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOWORK", str(tmp_path / "go.work"))
    monkeypatch.setenv("GOFLAGS", "-mod=vendor -trimpath")
    monkeypatch.setenv("GOOS", "windows")
    monkeypatch.setenv("GOARCH", "arm64")
    env = GoBuilder(tmp_path).env()
    assert env["GOWORK"] == "off" and env["GOFLAGS"] == "-trimpath"
    assert "GOOS" not in env and "GOARCH" not in env and env["GO111MODULE"] == "on"


def test_scheduler_configs_keep_the_extender_out_of_the_default_profile(cluster: Any) -> None:
    config_dir = cluster.settings.cluster_dir / "config"
    if not (config_dir / "kube-scheduler-outrider.yaml").exists():
        pytest.skip("the running cluster was not started by this tooling (no config folder)")
    default = yaml.safe_load((config_dir / "kube-scheduler.yaml").read_text())
    outrider = yaml.safe_load((config_dir / "kube-scheduler-outrider.yaml").read_text())
    assert [p["schedulerName"] for p in default["profiles"]] == ["default-scheduler"]
    assert "extenders" not in default
    assert [p["schedulerName"] for p in outrider["profiles"]] == ["outrider"]
    assert outrider["extenders"] == [
        {
            "urlPrefix": cluster.settings.extender_url,
            "filterVerb": "filter",
            "prioritizeVerb": "prioritize",
            "weight": 5,
            "nodeCacheCapable": True,
            "ignorable": True,
            "httpTimeout": "1s",
            "managedResources": [{"name": GPU_RESOURCE, "ignoredByScheduler": False}],
        }
    ]
