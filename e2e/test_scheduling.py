"""The Outrider extender behind a real kube-scheduler, both in the chart's scheduler pod.

``helm install`` runs the release's kube-scheduler with the extender beside it (on 127.0.0.1 in the
pod) as a pod of the Dockerfile's image on the real node, and the node agent as a DaemonSet pod
there. The tests create GPU pods with the release's ``schedulerName`` and check where the scheduler
binds them (KWOK's simulated GPU nodes); the extender's metrics are read through the apiserver's
pod proxy.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outrider_devcluster.nodeconfig import REAL_NODE_LABEL
from outrider_devcluster.polling import wait_for
from outrider_devcluster.release import Release, in_cluster_release, release_values
from outrider_operator.api.inventory import GpuInventory
from outrider_operator.api.labels import ANNOTATION_GPU_INVENTORY
from outrider_scheduler.extender.simulation import gpu_node, make_pod, recorded_inventory

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
SCHEDULER = "outrider-e2e-scheduling"
"""The release's scheduler profile (the cluster's host scheduler keeps ``outrider``)."""


class Extender:
    """The release's extender, seen from outside its pod: its metrics."""

    def __init__(self, release: Release) -> None:
        self.release = release

    def metrics(self) -> str:
        return self.release.scrape("scheduler")

    def metric(self, name: str, **labels: str) -> float:
        want = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""
        for line in self.metrics().splitlines():
            if line.startswith(f"{name}{want} "):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture(scope="module")
def extender(cluster: Any, real_node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Extender]:
    """The chart with the scheduler (extender beside it) and the agent (its operator watches an empty
    namespace: these tests create pods themselves)."""
    watched = f"e2e-scheduling-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", watched)
    values = release_values([watched], SCHEDULER, "agent")
    try:
        with in_cluster_release(cluster, tmp_path_factory.mktemp("extender"), values) as release:
            yield Extender(release)
    finally:
        cluster.kubectl("delete", "namespace", watched, "--wait=false", check=False)


def _inventories(cluster: Any) -> dict[str, GpuInventory]:
    """GPU inventories of the nodes these tests' pods may land on (the real node is tainted)."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    out = {}
    for n in nodes:
        if (n["metadata"].get("labels") or {}).get(REAL_NODE_LABEL) == "true":
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
    pod["spec"]["schedulerName"] = SCHEDULER
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
    assert "outrider_extender_request_duration_seconds_count" in extender.metrics()


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


def test_node_agent_pod_publishes_the_real_nodes_inventory_and_keeps_its_labels(
    cluster: Any, extender: Extender, real_node: str
) -> None:
    """The agent DaemonSet's pod on the real node (a CPU machine: no NVML in the pod) publishes."""
    pod = extender.release.pod("agent")
    assert pod["spec"]["nodeName"] == real_node

    def published() -> dict[str, Any]:
        node = json.loads(cluster.kubectl("get", "node", real_node, "-o", "json").stdout)
        assert ANNOTATION_GPU_INVENTORY in node["metadata"]["annotations"]
        return dict(node)

    node = wait_for("the agent pod's inventory on the real node", published, timeout_s=60)
    inventory = GpuInventory.from_annotation(node["metadata"]["annotations"][ANNOTATION_GPU_INVENTORY])
    assert inventory.gpus == [], inventory
    labels = node["metadata"]["labels"]
    assert labels["outrider.dev/real-node"] == "true", "the merge patch keeps the node's own labels"
    assert labels["kubernetes.io/hostname"] == real_node


def test_the_extender_pod_places_on_a_node_added_after_it_started(
    cluster: Any, extender: Extender, namespace: str
) -> None:
    """A simulated A100 node created now (inventory as an agent publishes it): the extender's watch
    learns it, and a pod only it can take (its taint tolerated, its name selected) is bound there."""
    name = f"late-a100-{uuid.uuid4().hex[:6]}"
    taint = {"key": "outrider.dev/e2e-late", "value": name, "effect": "NoSchedule"}
    node = gpu_node(name, recorded_inventory("a100-sxm4-80gb-x8"), taints=[taint], kwok=True)
    cluster.kubectl("create", "-f", "-", input=json.dumps(node))  # with status: capacity, allocatable
    try:
        wait_for(
            f"KWOK marks {name} Ready",
            lambda: any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in json.loads(cluster.kubectl("get", "node", name, "-o", "json").stdout)["status"].get(
                    "conditions", []
                )
            ),
            timeout_s=60,
        )
        before = extender.metric("outrider_extender_requests_total", verb="filter", outcome="ok")
        pod = make_pod("late", 2, min_memory_mib=70000)
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": name}
        pod["spec"]["tolerations"] = [{**taint, "operator": "Equal"}]
        _create(cluster, namespace, pod)
        assert _bound(cluster, namespace, "late") == name
        assert extender.metric("outrider_extender_requests_total", verb="filter", outcome="ok") > before
    finally:
        cluster.kubectl("delete", "node", name, "--wait=false", check=False)
