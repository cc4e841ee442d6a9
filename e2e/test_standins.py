"""Stand-in nodes: KWOK leaves their pods unready, and a StandInHost runs a real runtime for each.

Traffic goes only to 127.0.0.1 (the address in the pod's stand-in-endpoint annotation); the pod
IPs in EndpointSlices are read, never connected to.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from outrider_devcluster.polling import wait_for
from outrider_devcluster.standins import StandInHost
from outrider_devcluster.topology import STAND_IN_LABEL
from outrider_operator.api.labels import ANNOTATION_STAND_IN_ENDPOINT

PERIOD_S = 1
"""Readiness probe period of the test pods (the operator renders 1 s too)."""
RUNTIME_CONFIG = {
    "apiVersion": "runtime.outrider.dev/v1alpha1",
    "kind": "RuntimeConfig",
    "model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2", "format": "onnx"},
    "batching": {"maxBatchSize": 8, "minBatchDelayMs": 2},
    "server": {"httpPort": 8000, "grpcPort": 8001, "startState": "serving"},
}


def _placement() -> dict[str, Any]:
    return {
        "nodeSelector": {STAND_IN_LABEL: "true"},
        "tolerations": [
            {"key": STAND_IN_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
    }


def _objects(name: str) -> list[dict[str, Any]]:
    """ConfigMap, Service and Deployment shaped like the operator's (container args, volumes, probe)."""
    container = {
        "name": "server",
        "image": "outrider:dev",
        "args": ["outrider", "runtime", "serve", "--config", "/etc/outrider/runtime.yaml"],
        "ports": [{"name": "http", "containerPort": 8000}, {"name": "grpc", "containerPort": 8001}],
        "env": [
            {"name": "OUTRIDER_POOL", "value": "active"},
            {"name": "OUTRIDER_CACHE_DIR", "value": "/var/cache/outrider/models"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": PERIOD_S,
        },
        "volumeMounts": [{"name": "runtime-config", "mountPath": "/etc/outrider", "readOnly": True}],
    }
    pod_spec = {
        **_placement(),
        "containers": [container],
        "volumes": [{"name": "runtime-config", "configMap": {"name": f"{name}-runtime"}}],
        "terminationGracePeriodSeconds": 30,
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-runtime"},
            "data": {"runtime.yaml": yaml.safe_dump(RUNTIME_CONFIG)},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 8000, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            },
        },
    ]


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _http(endpoint: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    assert endpoint.startswith("127.0.0.1:"), f"only local addresses may be called, got {endpoint}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{endpoint}{path}", data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"{}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_kwok_leaves_stand_in_pods_unready_and_keeps_a_patched_ready(cluster: Any, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "idle"},
        "spec": {**_placement(), "containers": [{"name": "server", "image": "outrider:dev"}]},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    with cluster.api_client() as api:
        core: Any = k8s.CoreV1Api(api)
        running = wait_for(
            "KWOK to run the stand-in pod",
            lambda: (p := core.read_namespaced_pod("idle", namespace)).status.phase == "Running" and p,
        )
        assert running.spec.node_name.startswith("stand-in-"), running.spec.node_name
        assert running.status.pod_ip, "a stand-in pod still gets a (made-up) pod IP"
        statuses = running.status.container_statuses
        assert [(s.started, s.ready) for s in statuses] == [(True, False)]
        time.sleep(3)  # KWOK must not make it Ready later on
        conditions = {c.type: c.status for c in core.read_namespaced_pod("idle", namespace).status.conditions}
        assert conditions["Ready"] == "False" and conditions["ContainersReady"] == "False", conditions
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patch = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}}
        core.patch_namespaced_pod_status(
            "idle", namespace, patch, _content_type="application/strategic-merge-patch+json"
        )
        time.sleep(3)  # nor overwrite a Ready someone else patched
        assert _ready(core.read_namespaced_pod("idle", namespace))


def test_stand_in_host_runs_probes_and_stops_the_runtime(
    cluster: Any, namespace: str, tmp_path: Path
) -> None:
    for obj in _objects("minilm"):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))
    created = time.monotonic()
    with (
        cluster.api_client() as api,
        StandInHost(cluster.kubeconfig, tmp_path / "stand-ins", grace_s=10, namespaces=[namespace]) as host,
    ):
        core: Any = k8s.CoreV1Api(api)
        discovery: Any = k8s.DiscoveryV1Api(api)

        def the_pod() -> Any:
            pods = core.list_namespaced_pod(namespace, label_selector="app=minilm").items
            live = [p for p in pods if not p.metadata.deletion_timestamp]
            return live[0] if len(live) == 1 else None

        def annotated() -> Any:
            pod = the_pod()
            return pod if pod and (pod.metadata.annotations or {}).get(ANNOTATION_STAND_IN_ENDPOINT) else None

        pod = wait_for("the endpoint annotation", annotated, timeout_s=60)
        name = pod.metadata.name
        endpoint = pod.metadata.annotations[ANNOTATION_STAND_IN_ENDPOINT]
        assert endpoint == host.endpoint(namespace, name)
        assert not _ready(pod), "Ready before the runtime serves"

        wait_for(
            "Ready=True", lambda: _ready(core.read_namespaced_pod(name, namespace)), timeout_s=90, every_s=0.1
        )
        ready_after = time.monotonic() - created
        assert _http(endpoint, "/v2/health/ready")[0] == 200
        status, result = _http(
            endpoint,
            "/v2/models/minilm/infer",
            {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hello"]}]},
        )
        assert status == 200, result
        vector = result["outputs"][0]["data"]
        assert len(vector) == 384 and math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-3)

        pod_ip = core.read_namespaced_pod(name, namespace).status.pod_ip

        def ready_endpoint_ips() -> set[str]:
            slices = discovery.list_namespaced_endpoint_slice(
                namespace, label_selector="kubernetes.io/service-name=minilm"
            ).items
            return {
                a
                for s in slices
                for e in s.endpoints or []
                if e.conditions and e.conditions.ready
                for a in e.addresses
            }

        wait_for("the pod among the Service's ready endpoints", lambda: pod_ip in ready_endpoint_ips())

        switched = time.monotonic()
        assert _http(endpoint, "/v2/admin/state", {"state": "warm"})[0] == 200
        wait_for(
            "Ready=False after the switch to warm",
            lambda: not _ready(core.read_namespaced_pod(name, namespace)),
            timeout_s=3 * PERIOD_S + 5,
            every_s=0.1,
        )
        unready_after = time.monotonic() - switched
        wait_for(
            "the pod to leave the ready endpoints", lambda: pod_ip not in ready_endpoint_ips(), every_s=0.1
        )
        left_after = time.monotonic() - switched
        deployment: Any = k8s.AppsV1Api(api).read_namespaced_deployment("minilm", namespace)
        assert not deployment.status.ready_replicas, "the Deployment controller sees the pod unready"

        # a runtime that dies is not ready, and is restarted with restartCount bumped
        pid = host.pid(namespace, name)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

        def restarted() -> bool:
            p = core.read_namespaced_pod(name, namespace)
            return _ready(p) and p.status.container_statuses[0].restart_count == 1

        wait_for("a restart that serves again", restarted, timeout_s=60, every_s=0.2)
        assert host.pid(namespace, name) not in (None, pid)

        pid = host.pid(namespace, name)
        assert pid is not None
        deleted = time.monotonic()
        core.delete_namespaced_pod(name, namespace)
        wait_for("the runtime of the deleted pod to stop", lambda: not _pid_alive(pid), timeout_s=15)
        replacement = wait_for("the replacement pod to be hosted", annotated, timeout_s=60)
        assert replacement.metadata.name != name
        wait_for(
            "the replacement to be Ready",
            lambda: _ready(core.read_namespaced_pod(replacement.metadata.name, namespace)),
            timeout_s=60,
            every_s=0.1,
        )
        replaced_after = time.monotonic() - deleted
        pids = host.pids()
    assert pids and not any(_pid_alive(p) for p in pids), "stop() leaves no runtime running"
    left = json.loads(
        cluster.kubectl("get", "pod", "-n", namespace, replacement.metadata.name, "-o", "json").stdout
    )
    assert ANNOTATION_STAND_IN_ENDPOINT not in left["metadata"].get("annotations", {}), (
        "stop() drops the endpoint"
    )
    assert {c["type"]: c["status"] for c in left["status"]["conditions"]}["Ready"] == "False", (
        "unhosted is unready"
    )
    print(
        f"\nstand-in timings: created -> Ready {ready_after:.1f}s (model built first); "
        f"deleted -> replacement Ready {replaced_after:.1f}s; warm -> Ready=False {unready_after:.1f}s; "
        f"warm -> out of the ready endpoints {left_after:.1f}s"
    )
