"""Serving on real pods: the runtime image built from the Dockerfile, on the cluster's real node.

The operator (a pod of the chart's release on the real node, with the release's kube-scheduler)
renders an InferenceDeployment into Deployments whose pods a real kubelet runs with containerd and
runc, in a namespace that enforces Pod Security ``restricted``. Requests go to the pods through
``kubectl port-forward`` (apiserver -> kubelet -> the pod's network namespace) and through the
Service's ClusterIP from a client pod on the same node (kube-proxy's iptables rules). Every figure
the tests measure is printed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from outrider_devcluster import polling
from outrider_devcluster.images import IMAGES
from outrider_devcluster.nodeconfig import REAL_NODE_PLACEMENT
from outrider_devcluster.release import Release, in_cluster_release, release_values
from outrider_devcluster.workloads import free_port, real_node_deployment
from outrider_operator.api.runtime import ModelState
from outrider_scheduler.planner.runtime_client import RuntimeClient

NAME = "minilm-real"
SCHEDULER = "outrider-e2e-real"
"""The release's scheduler profile (the cluster's host scheduler keeps ``outrider``)."""
MODEL = "minilm"
RUNTIME_IMAGE = IMAGES["runtime"].reference
RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
PLACEMENT = REAL_NODE_PLACEMENT
"""Spec placement that puts serving pods on the real node (it is tainted for everything else)."""
_NOT_YET = (subprocess.CalledProcessError, KeyError, IndexError, TypeError, ValueError, AssertionError)

# A client for the runtime image: sends text inferences to $TARGET (the Service's ClusterIP) at
# $RATE per second for $SECONDS, one new connection per request, over HTTP (urllib), plus one
# tritonclient HTTP and one tritonclient gRPC inference; prints one JSON line.
CLIENT = r"""
import json, os, time, urllib.request
import numpy as np
target, rate, seconds = os.environ["TARGET"], float(os.environ["RATE"]), float(os.environ["SECONDS"])
out = {"ok": 0, "failed": 0, "errors": []}
import tritonclient.http as th, tritonclient.grpc as tg
for mod, port in ((th, 8000), (tg, 8001)):
    c = mod.InferenceServerClient(f"{target}:{port}")
    x = mod.InferInput("text", [1], "BYTES")
    x.set_data_from_numpy(np.array([b"through the Service"], dtype=np.object_))
    out[mod.__name__] = list(c.infer("minilm", [x]).as_numpy("embeddings").shape)
body = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}).encode()
start = time.monotonic()
n = 0
while time.monotonic() - start < seconds:
    n += 1
    try:
        req = urllib.request.Request(f"http://{target}:8000/v2/models/minilm/infer", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            json.load(resp)
        out["ok"] += 1
    except Exception as exc:
        out["failed"] += 1
        out["errors"].append(f"{time.monotonic() - start:.2f}s {exc}"[:200])
    time.sleep(max(0.0, start + n / rate - time.monotonic()))
print(json.dumps(out), flush=True)
"""


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 120.0) -> Any:
    """Poll ``check``; kubectl failures and missing keys while objects appear count as "not yet"."""
    return polling.wait_for(what, check, timeout_s, every_s=0.25, tolerate=_NOT_YET)


def get_json(cluster: Any, *args: str) -> Any:
    """``kubectl get ... -o json`` parsed, or None when it fails."""
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _is_ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


@pytest.fixture(scope="module")
def restricted_ns(cluster: Any, real_node: str) -> Iterator[str]:
    """A namespace enforcing Pod Security ``restricted`` (latest), deleted afterwards."""
    name = f"e2e-real-{uuid.uuid4().hex[:6]}"
    cluster.kubectl(
        "apply", "-f", "-",
        input=yaml.safe_dump({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/warn": "restricted",
            }},
        }),
    )  # fmt: skip
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(Path(__file__).parents[1] / "crds")
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False)


@pytest.fixture(scope="module")
def served(
    cluster: Any, real_node: str, restricted_ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The operator pod running and the sample served on the real node; yields timings and names."""
    values = release_values([restricted_ns], SCHEDULER)
    with in_cluster_release(cluster, tmp_path_factory.mktemp("operator-real"), values) as release:
        sample = yaml.safe_load(
            (
                Path(__file__).parents[1] / "manifests/samples/outrider.dev_v1alpha1_inferencedeployment.yaml"
            ).read_text()
        )
        sample["metadata"] = {"name": NAME, "namespace": restricted_ns}
        spec = sample["spec"]
        spec["runtime"].update(
            {"gpusPerReplica": 0, "resources": {"cpu": "400m", "memory": "1536Mi"}, "maxWorkers": 2}
        )
        spec["replicas"] = {"min": 1, "max": 2}
        spec["standby"] = {"warm": 1, "cold": 0}
        spec["placement"] = PLACEMENT
        started = time.monotonic()
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(sample))

        def both_ready() -> dict[str, dict[str, Any]] | None:
            pods = get_json(cluster, "pods", "-n", restricted_ns, "-l", f"outrider.dev/deployment={NAME}")[
                "items"
            ]
            by_pool = {p["metadata"]["labels"]["outrider.dev/pool"]: p for p in pods if _is_ready(p)}
            return by_pool if {"active", "warm"} <= set(by_pool) else None

        pods = wait_for("active and warm pods Ready on the real node", both_ready, timeout_s=240)
        ready_s = time.monotonic() - started
        print(f"\n[real pods] InferenceDeployment applied -> active and warm pods Ready: {ready_s:.1f}s")
        yield {"namespace": restricted_ns, "pods": pods, "ready_s": ready_s, "release": release}


def test_pods_run_the_dockerfile_image_on_the_real_node_under_restricted_pod_security(
    cluster: Any, real_node: str, served: dict[str, Any]
) -> None:
    ns = served["namespace"]
    for pool, pod in served["pods"].items():
        assert pod["spec"]["nodeName"] == real_node, f"{pool} pod not on the real node"
        status = pod["status"]["containerStatuses"][0]
        assert status["image"].endswith(RUNTIME_IMAGE.split("/", 1)[1]), status["image"]
        assert status["imageID"], "no image ID: the container did not run from an image"
        assert status["ready"] and status["started"]
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        mounted = [v["name"] for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access")]
        assert not mounted, f"{pool} pod mounts a ServiceAccount token it never uses: {mounted}"
    events = get_json(cluster, "events", "-n", ns)["items"]
    refused = [e["message"] for e in events if e.get("reason") == "FailedCreate"]
    assert not refused, f"pods refused (Pod Security restricted?): {refused}"
    active = served["pods"]["active"]["metadata"]["name"]
    logs = cluster.kubectl("logs", "-n", ns, active).stdout
    assert "listening on" in logs, logs[-2000:]


def _port_forward(cluster: Any, ns: str, target: str, ports: list[str]) -> subprocess.Popen[str]:
    argv = [
        str(cluster.bin("kubectl")),
        "--kubeconfig",
        str(cluster.kubeconfig),
        "-n",
        ns,
        "port-forward",
        target,
        *ports,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    forwarded = 0
    deadline = time.monotonic() + 30
    while forwarded < len(ports) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        forwarded += line.startswith("Forwarding from 127.0.0.1")
    if forwarded < len(ports):
        proc.kill()
        raise AssertionError(
            f"port-forward {target} did not start: {proc.stdout.read() if proc.stdout else ''}"
        )
    return proc


def test_tritonclient_http_and_grpc_through_port_forward(cluster: Any, served: dict[str, Any]) -> None:
    import tritonclient.grpc as tg
    import tritonclient.http as th

    http_port, grpc_port = free_port(), free_port()
    forward = _port_forward(
        cluster, served["namespace"], f"svc/{NAME}", [f"{http_port}:8000", f"{grpc_port}:8001"]
    )
    try:
        shapes = {}
        for mod, port in ((th, http_port), (tg, grpc_port)):
            client = mod.InferenceServerClient(f"127.0.0.1:{port}")
            assert client.is_model_ready(MODEL)
            text = mod.InferInput("text", [2], "BYTES")
            text.set_data_from_numpy(np.array([b"a real pod", b"on a real node"], dtype=np.object_))
            out = client.infer(MODEL, [text]).as_numpy("embeddings")
            assert out is not None and np.isfinite(out).all()
            shapes[mod.__name__] = out.shape
        assert shapes["tritonclient.http"] == shapes["tritonclient.grpc"] == (2, 384)
    finally:
        forward.kill()


def _run_client(cluster: Any, ns: str, target: str, rate: float, seconds: float) -> str:
    """Start the in-cluster client pod (restricted-compliant) on the real node; return its name."""
    name = f"client-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            **PLACEMENT,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": RUNTIME_IMAGE, "command": ["python3", "-c", CLIENT],
                "env": [{"name": "TARGET", "value": target}, {"name": "RATE", "value": str(rate)},
                        {"name": "SECONDS", "value": str(seconds)}],
                "securityContext": {k: v for k, v in RESTRICTED.items() if k != "seccompProfile"},
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            }],
        },
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    return name


def _client_result(cluster: Any, ns: str, name: str, timeout_s: float) -> dict[str, Any]:
    def done() -> bool:
        phase = get_json(cluster, "pod", "-n", ns, name)["status"]["phase"]
        assert phase != "Failed", cluster.kubectl("logs", "-n", ns, name, check=False).stdout[-3000:]
        return bool(phase == "Succeeded")

    wait_for(f"client pod {name} finished", done, timeout_s=timeout_s)
    logs = cluster.kubectl("logs", "-n", ns, name).stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(logs[-1])
    return result


def test_spec_change_rolls_out_on_real_pods_with_zero_failed_requests(
    cluster: Any, real_node: str, served: dict[str, Any]
) -> None:
    ns = served["namespace"]
    cluster_ip = get_json(cluster, "service", "-n", ns, NAME)["spec"]["clusterIP"]
    before = {p["metadata"]["uid"] for p in served["pods"].values()}
    client = _run_client(cluster, ns, cluster_ip, rate=10, seconds=75)
    wait_for(
        "client running", lambda: get_json(cluster, "pod", "-n", ns, client)["status"]["phase"] == "Running"
    )
    time.sleep(5)
    started = time.monotonic()
    cluster.kubectl(
        "patch", "infd", NAME, "-n", ns, "--type=merge", "-p", '{"spec":{"runtime":{"maxWorkers":3}}}'
    )

    def rolled() -> bool:
        pods = get_json(cluster, "pods", "-n", ns, "-l", f"outrider.dev/deployment={NAME}")["items"]
        new = [p for p in pods if p["metadata"]["uid"] not in before]
        return len(pods) == 2 and len(new) == 2 and all(_is_ready(p) for p in new)

    wait_for("both pools rolled out to new Ready pods", rolled, timeout_s=120)
    print(f"\n[real pods] spec change -> both pools replaced and Ready: {time.monotonic() - started:.1f}s")
    result = _client_result(cluster, ns, client, timeout_s=150)
    print(
        f"[real pods] requests through the ClusterIP during the rollout: "
        f"{result['ok']} ok, {result['failed']} failed"
    )
    assert result["tritonclient.http"] == result["tritonclient.grpc"] == [1, 384]
    assert result["ok"] >= 500, result
    assert result["failed"] == 0, result["errors"][:10]


def test_killed_pod_is_replaced_and_serves_again(cluster: Any, served: dict[str, Any]) -> None:
    ns = served["namespace"]
    pods = get_json(
        cluster, "pods", "-n", ns, "-l", f"outrider.dev/deployment={NAME},outrider.dev/pool=active"
    )
    victim = pods["items"][0]["metadata"]["name"]
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", ns, victim, "--grace-period=0", "--force", "--wait=false")

    def replacement() -> str | None:
        items = get_json(
            cluster, "pods", "-n", ns, "-l", f"outrider.dev/deployment={NAME},outrider.dev/pool=active"
        )
        fresh = [p for p in items["items"] if p["metadata"]["name"] != victim and _is_ready(p)]
        return fresh[0]["status"]["podIP"] if fresh else None

    ip = wait_for("a replacement active pod Ready", replacement, timeout_s=120)
    replaced_s = time.monotonic() - started
    body = json.dumps(
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["again"]}]}
    ).encode()
    # the pod's own address, on this machine's bridge: a pod that really runs here
    req = urllib.request.Request(
        f"http://{ip}:8000/v2/models/{MODEL}/infer", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        out = json.load(resp)
    assert out["outputs"][0]["shape"] == [1, 384]
    print(f"\n[real pods] killed active pod -> replacement Ready and serving: {replaced_s:.1f}s")


def test_warm_promotion_flips_readiness_and_the_endpoint(cluster: Any, served: dict[str, Any]) -> None:
    ns = served["namespace"]
    items = get_json(
        cluster, "pods", "-n", ns, "-l", f"outrider.dev/deployment={NAME},outrider.dev/pool=warm"
    )
    warm = next(p for p in items["items"] if _is_ready(p))
    name, ip = warm["metadata"]["name"], warm["status"]["podIP"]

    def endpoint_ready() -> bool:
        slices = get_json(cluster, "endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={NAME}")[
            "items"
        ]
        return any(
            ip in e["addresses"] and e["conditions"].get("ready")
            for s in slices
            for e in s.get("endpoints") or []
        )

    assert not endpoint_ready(), "a warm pod must not be routed before its promotion"
    started = time.monotonic()

    async def promote() -> None:
        # the planner's own client: the typed StateChange body it sends on a promotion
        async with RuntimeClient() as runtime:
            await runtime.set_state(name, f"{ip}:8000", ModelState.SERVING)

    asyncio.run(promote())
    state_s = time.monotonic() - started
    cluster.kubectl("label", "pod", "-n", ns, name, "outrider.dev/role=serving", "--overwrite")
    wait_for("the promoted pod's endpoint Ready", endpoint_ready, timeout_s=30)
    flipped_s = time.monotonic() - started
    print(f"\n[real pods] warm -> serving: runtime state {state_s:.2f}s, endpoint Ready {flipped_s:.2f}s")
    assert flipped_s < 10


@pytest.mark.timeout(900)
def test_gpu_runtime_image_starts_on_the_cpu_and_names_its_providers(
    cluster: Any, real_node: str, served: dict[str, Any]
) -> None:
    from outrider_devcluster import Cluster
    from outrider_devcluster.images import ensure_images

    ns = served["namespace"]
    Cluster(cluster.settings).real_nodes.import_images(ensure_images(cluster.settings, ("runtime-gpu",)))
    body = real_node_deployment(
        "minilm-gpu-image", ns, cpu="300m", replicas={"min": 1, "max": 1}, standby={"warm": 0, "cold": 0}
    )
    body["spec"]["runtime"]["image"] = IMAGES["runtime-gpu"].reference
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def ready_ip() -> tuple[str, str] | None:
        pods = get_json(cluster, "pods", "-n", ns, "-l", "outrider.dev/deployment=minilm-gpu-image")["items"]
        ready = [p for p in pods if _is_ready(p)]
        return (ready[0]["metadata"]["name"], ready[0]["status"]["podIP"]) if ready else None

    name, ip = wait_for("the GPU-image pod Ready", ready_ip, timeout_s=240)
    logs = cluster.kubectl("logs", "-n", ns, name).stdout
    line = next((x for x in logs.splitlines() if "execution providers" in x), "")
    print(f"\n[real pods] GPU image on a CPU node: {line.split(': ', 1)[-1]}")
    assert "CUDAExecutionProvider" in line and "GPUs visible: 0" in line, logs[-2000:]
    assert "serving on CPUExecutionProvider" in line
    req = urllib.request.Request(
        f"http://{ip}:8000/v2/models/{MODEL}/infer",
        data=json.dumps(
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["gpu image"]}]}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp)["outputs"][0]["shape"] == [1, 384]


def test_operator_runs_as_a_pod_on_the_real_node_through_the_kubernetes_service(
    cluster: Any, real_node: str, served: dict[str, Any]
) -> None:
    """The chart's operator as a pod of the control image: in-cluster config, 10.96.0.1 via kube-proxy."""
    release: Release = served["release"]
    ns = served["namespace"]
    pod = release.pod("operator")
    assert pod["spec"]["nodeName"] == real_node
    assert pod["status"]["containerStatuses"][0]["image"].endswith(
        IMAGES["control"].reference.split("/", 1)[1]
    )
    body = {
        "apiVersion": "outrider.dev/v1alpha1", "kind": "InferenceDeployment",
        "metadata": {"name": "by-the-pod", "namespace": ns},
        "spec": {"model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"}},  # GPU pods: KWOK nodes
    }  # fmt: skip
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def reconciled() -> bool:
        obj = get_json(cluster, "infd", "by-the-pod", "-n", ns)
        status = obj.get("status") or {}
        children = get_json(cluster, "deployments", "-n", ns, "-l", "outrider.dev/deployment=by-the-pod")
        return bool(status.get("observedGeneration") == obj["metadata"]["generation"] and children["items"])

    try:
        wait_for("the in-cluster operator reconciles the object", reconciled, timeout_s=90)
        took = time.monotonic() - started
        print(f"\n[real pods] in-cluster operator: object -> children and status in {took:.1f}s")
        logs = cluster.kubectl("logs", "-n", release.namespace, pod["metadata"]["name"]).stdout
        assert "by-the-pod" in logs, logs[-2000:]
    finally:
        cluster.kubectl("delete", "infd", "by-the-pod", "-n", ns, "--wait=true", "--timeout=60s", check=False)


def _workload_pods(rendered: str, namespace: str) -> list[dict[str, Any]]:
    """A Pod per workload the chart renders, with its pod template's spec (ServiceAccount: default)."""
    pods = []
    for doc in yaml.safe_load_all(rendered):
        if not doc or doc.get("kind") not in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
            continue
        spec = dict(doc["spec"]["template"]["spec"])
        spec["serviceAccountName"] = "default"  # the chart's accounts live in its release namespace
        meta = {"name": doc["metadata"]["name"], "namespace": namespace}
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    return pods


def test_every_pod_of_the_chart_passes_pod_security_restricted(cluster: Any, restricted_ns: str) -> None:
    chart = str(Path(__file__).parents[1] / "charts" / "outrider")

    def refused(*sets: str) -> dict[str, str]:
        rendered = cluster.helm("template", "outrider", chart, "--namespace", restricted_ns, *sets).stdout
        pods = _workload_pods(rendered, restricted_ns)
        assert len(pods) >= 5, [p["metadata"]["name"] for p in pods]  # operator, scheduler, forecaster, ...
        out = {}
        for pod in pods:
            # the apiserver runs Pod Security admission on a server-side dry run, creating nothing
            proc = cluster.kubectl(
                "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False
            )
            if proc.returncode != 0:
                out[pod["metadata"]["name"]] = proc.stderr.strip()
        return out

    assert refused() == {}
    # the node model cache shared with pods needs a hostPath, which "restricted" forbids: the test sees it
    with_cache = refused("--set", "agent.shareModelCacheWithPods=true")
    assert list(with_cache) == ["outrider-agent"] and "hostPath" in with_cache["outrider-agent"], with_cache


def test_samples_are_admitted_under_pod_security_restricted(
    cluster: Any, served: dict[str, Any], restricted_ns: str
) -> None:
    samples = Path(__file__).parents[1] / "manifests" / "samples"
    names = []
    for path in sorted(samples.glob("outrider.dev_*.yaml")):
        body = yaml.safe_load(path.read_text())
        body["metadata"]["namespace"] = restricted_ns
        names.append(body["metadata"]["name"])
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def created() -> bool:
        pods = get_json(cluster, "pods", "-n", restricted_ns)["items"]
        owners = {(p["metadata"].get("labels") or {}).get("outrider.dev/deployment") for p in pods}
        return all(n in owners for n in names)

    wait_for("every sample has pods", created, timeout_s=90)
    events = get_json(cluster, "events", "-n", restricted_ns)["items"]
    refused = [e["message"] for e in events if e.get("reason") == "FailedCreate"]
    assert not refused, refused
    for name in names:
        cluster.kubectl("delete", "infd", name, "-n", restricted_ns, "--wait=true", "--timeout=60s")
