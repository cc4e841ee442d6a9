"""The Outrider extender behind the real kube-scheduler (``outrider`` profile) on the local cluster.

Starts ``outrider extender serve`` as a subprocess watching the cluster, on the address the
cluster's outrider profile calls (``OUTRIDER_EXTENDER_URL``, default 127.0.0.1:8765), then creates
GPU pods with ``schedulerName: outrider`` and checks where kube-scheduler binds them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from outrider_devcluster.polling import wait_for
from outrider_devcluster.topology import STAND_IN_LABEL
from outrider_operator.api.inventory import GpuInventory
from outrider_operator.api.labels import ANNOTATION_GPU_INVENTORY
from outrider_scheduler.extender.simulation import make_pod

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
OUTRIDER = [sys.executable, "-c", "import sys; from outrider_cli import main; sys.exit(main())"]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class Extender:
    def __init__(self, base: str, proc: subprocess.Popen[str], log: Path) -> None:
        self.base = base
        self.proc = proc
        self.log = log

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        want = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""
        for line in self.get("/metrics").splitlines():
            if line.startswith(f"{name}{want} "):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture(scope="module")
def extender(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Extender]:
    url = urlparse(cluster.settings.extender_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    wait_for(f"{host}:{port} to be free for the extender", lambda: _port_free(host, port), timeout_s=60)
    log = tmp_path_factory.mktemp("extender") / "extender.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*OUTRIDER, "extender", "serve", "--kubeconfig", str(cluster.kubeconfig), "--host", host,
             "--port", str(port), "--log-level", "INFO"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    ext = Extender(f"http://{host}:{port}", proc, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"extender exited early:\n{log.read_text()}")
        try:
            return '"status":"ok"' in ext.get("/healthz")
        except OSError:
            return False

    wait_for("the extender to sync its cache", healthy, timeout_s=90)
    yield ext
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _inventories(cluster: Any) -> dict[str, GpuInventory]:
    """GPU inventories of the nodes these tests' pods may land on (stand-in nodes are tainted)."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    out = {}
    for n in nodes:
        if (n["metadata"].get("labels") or {}).get(STAND_IN_LABEL) == "true":
            continue
        raw = (n["metadata"].get("annotations") or {}).get(ANNOTATION_GPU_INVENTORY)
        if raw:
            out[n["metadata"]["name"]] = GpuInventory.from_annotation(raw)
    return out


def _free_gpus(cluster: Any) -> dict[str, int]:
    """Allocatable GPUs minus those requested by pods bound to each node (the cluster is shared)."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    free = {n["metadata"]["name"]: int(n["status"]["allocatable"].get("nvidia.com/gpu", "0")) for n in nodes}
    pods = json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
    for p in pods:
        node = p["spec"].get("nodeName")
        if not node or p.get("status", {}).get("phase") in ("Succeeded", "Failed") or node not in free:
            continue
        for c in p["spec"].get("containers", []):
            limits = (c.get("resources") or {}).get("limits") or {}
            free[node] -= int(limits.get("nvidia.com/gpu", "0"))
    return free


def _create(cluster: Any, namespace: str, pod: dict[str, Any]) -> None:
    pod = json.loads(json.dumps(pod))
    pod["metadata"]["namespace"] = namespace
    pod.pop("status", None)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))


def _pod(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        cluster.kubectl("get", "pod", "-n", namespace, name, "-o", "json").stdout
    )
    return out


def _bound(cluster: Any, namespace: str, name: str) -> str:
    node: str = wait_for(
        f"pod {name} to be bound",
        lambda: _pod(cluster, namespace, name)["spec"].get("nodeName"),
        timeout_s=90,
    )
    return node


def test_gpu_pods_land_on_suitable_nodes(cluster: Any, extender: Extender, namespace: str) -> None:
    inventories = _inventories(cluster)
    free = _free_gpus(cluster)
    fp8_big = {
        n for n, inv in inventories.items()
        if free[n] >= 2 and sum("fp8" in g.precisions and g.memory_free_mib >= 70000 for g in inv.gpus) >= 2
    }  # fmt: skip
    assert fp8_big, f"the topology needs an H100-class node with 2 free GPUs: {free}"
    before_filter = extender.metric("outrider_extender_requests_total", verb="filter", outcome="ok")
    _create(cluster, namespace, make_pod("fp8-70g", 2, min_memory_mib=70000, precision="fp8"))
    assert _bound(cluster, namespace, "fp8-70g") in fp8_big

    # The cluster may be shared: size the sharded replica to what an NVLink node still has free,
    # while a PCIe node (L4) has at least as many free GPUs, so only NVLink tells them apart.
    free = _free_gpus(cluster)
    multi = {n: inv for n, inv in inventories.items() if len(inv.gpus) > 1}
    nvlink = {n: free[n] for n, inv in multi.items() if all(g.nvlink_peers for g in inv.gpus)}
    pcie = {n: free[n] for n, inv in multi.items() if not any(g.nvlink_peers for g in inv.gpus)}
    assert nvlink and pcie, f"the topology needs NVLink and PCIe multi-GPU nodes: {free}"
    shards = min(max(nvlink.values()), max(pcie.values()))
    assert shards >= 2, f"not enough free GPUs left in the (shared) cluster: {free}"
    _create(cluster, namespace, make_pod("sharded", shards, min_memory_mib=20000))
    assert _bound(cluster, namespace, "sharded") in nvlink, f"{shards} shards need one NVLink group, not PCIe"
    assert (
        extender.metric("outrider_extender_requests_total", verb="filter", outcome="ok") >= before_filter + 2
    )
    assert extender.metric("outrider_extender_requests_total", verb="prioritize", outcome="ok") >= 1
    assert "outrider_extender_request_duration_seconds_count" in extender.get("/metrics")


def test_warm_cache_node_is_preferred(cluster: Any, extender: Extender, namespace: str) -> None:
    inventories = _inventories(cluster)
    cached = {n for n, inv in inventories.items() if inv.gpus and inv.cached_models}
    if not cached:
        pytest.fail("the topology should hold a node with cached models (hack/cluster-topology.yaml)")
    model = sorted(inventories[sorted(cached)[0]].cached_models)[0]
    warm = {n for n in cached if model in inventories[n].cached_models}
    _create(cluster, namespace, make_pod("warm-1", 1, model=model))
    assert _bound(cluster, namespace, "warm-1") in warm


def test_unplaceable_pod_stays_pending_with_our_reason(
    cluster: Any, extender: Extender, namespace: str
) -> None:
    # 120 GiB on one GPU: an H200-class device, which no node of the local cluster has.
    _create(cluster, namespace, make_pod("needs-h200", 1, min_memory_mib=120000))

    def reason() -> str:
        events = json.loads(
            cluster.kubectl(
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                "involvedObject.name=needs-h200",
                "-o",
                "json",
            ).stdout
        )["items"]
        return " ".join(e.get("message", "") for e in events if e.get("reason") == "FailedScheduling")

    message = wait_for("a FailedScheduling event", reason, timeout_s=90)
    assert "outrider: needs 1 GPUs with 120000 MiB free each" in message, message
    assert _pod(cluster, namespace, "needs-h200")["spec"].get("nodeName") is None
    described = cluster.kubectl("describe", "pod", "-n", namespace, "needs-h200").stdout
    assert "outrider: needs 1 GPUs with 120000 MiB free" in described
    assert extender.metric("outrider_extender_nodes_filtered_total", reason="insufficient_gpu_memory") >= 1


def test_node_agent_publishes_on_a_real_node(cluster: Any, extender: Extender) -> None:
    name = f"agent-e2e-{uuid.uuid4().hex[:6]}"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"outrider.dev/e2e": "agent"}},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(node))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "outrider_scheduler.agent", "--node-name", name,
             "--kubeconfig", str(cluster.kubeconfig), "--recorded", "a100-sxm4-80gb-x8", "--once"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        got = json.loads(cluster.kubectl("get", "node", name, "-o", "json").stdout)
        labels = got["metadata"]["labels"]
        assert labels["outrider.dev/gpu-product"] == "A100"
        assert labels["outrider.dev/gpu-architecture"] == "ampere"
        assert labels["outrider.dev/e2e"] == "agent", "the merge patch keeps existing labels"
        inv = GpuInventory.from_annotation(got["metadata"]["annotations"][ANNOTATION_GPU_INVENTORY])
        assert len(inv.gpus) == 8 and inv.gpus[3].memory_free_mib == 81920 - 60000
        # The extender's watch picks the node up: it answers for it (an unknown node is a 400).
        body = json.dumps({"Pod": make_pod("probe", 1), "NodeNames": [name]}).encode()

        def known() -> dict[str, Any] | None:
            req = urllib.request.Request(f"{extender.base}/scheduler/filter", data=body, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    reply: dict[str, Any] = json.loads(resp.read())
                    return reply
            except urllib.error.HTTPError:
                return None

        reply = wait_for("the extender to cache the new node", known, timeout_s=30)
        assert "0 of 0 free" in reply["FailedAndUnresolvableNodes"][name]
    finally:
        cluster.kubectl("delete", "node", name, "--wait=false", check=False)
