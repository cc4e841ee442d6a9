"""Real node benchmark: cluster start with a real node, image import, pod creation -> Ready, memory.

Runs its own cluster (a temporary folder, its own ports, one real node) with the binaries and the
images already built (``make binaries image``); refuses to run beside another cluster that has real
nodes (they would share node names, addresses and kube-proxy). Measures, ``--repeats`` times:

* ``up_s``: ``Cluster.up`` from the first process to every node Ready, the real node included, with
  the step times the tooling recorded (containerd start, each image's import, kubelet -> Ready);
* ``pod_ready_s``: the operator's own rendering of the sample (``render_children``: ConfigMap,
  Deployments, Service) applied for a CPU spec placed on the real node; from the apply to the
  active pod Running and Ready (the model is built from the image's weights at start), and the
  warm pod Ready; plus a bare pod of the runtime image (no model) to Running;
* ``rss_mib``: resident memory of kubelet, containerd and kube-proxy, idle and with the two
  serving pods (shims included), and of the pods' containers;
* ``down_s``: ``Cluster.down`` (pods killed, host restored).

Image sizes and build times come from the last ``make image`` (``~/.cache/outrider/images``).
Prints the JSON and writes ``bench/results/real-node.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchkube import kubectl
from outrider_devcluster import Cluster, ClusterSettings, Ports, ensure_binaries, load_topology
from outrider_devcluster.hoststate import cgroup_pids
from outrider_devcluster.images import IMAGES, NODE_IMAGES, build_timings, ensure_images, image_size
from outrider_devcluster.nodeconfig import REAL_NODE_LABEL
from outrider_devcluster.processes import rss_bytes
from outrider_devcluster.realnode import other_real_node_clusters, shim_pids
from outrider_operator.api.resource import parse_spec
from outrider_operator.reconcile.children import Owner, render_children
from report import emit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "real-node.json"
NS = "bench-real"
TOLERATION = {"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_settings(folder: Path) -> ClusterSettings:
    ports = Ports.from_base(32600)
    return ClusterSettings(cluster_dir=folder, ports=ports, ready_timeout_s=120, real_nodes=1)


def sample_children() -> list[dict[str, Any]]:
    """The operator's rendering of the sample, as a CPU deployment placed on the real node."""
    raw = yaml.safe_load(
        (REPO / "manifests/samples/outrider.dev_v1alpha1_inferencedeployment.yaml").read_text()
    )
    spec = raw["spec"]
    spec["runtime"].update({"gpusPerReplica": 0, "resources": {"cpu": "500m", "memory": "1536Mi"}})
    spec["replicas"] = {"min": 1, "max": 1}
    spec["standby"] = {"warm": 1, "cold": 0}
    spec["placement"] = {"nodeSelector": {REAL_NODE_LABEL: "true"}, "tolerations": [TOLERATION]}
    objects = render_children(
        Owner("minilm", NS, "00000000-0000-0000-0000-000000000000"), parse_spec(spec), 1
    )
    for obj in objects:
        obj["metadata"].pop("ownerReferences", None)  # no InferenceDeployment here: nothing to own them
    return [o for o in objects if o["kind"] != "PodDisruptionBudget"]


def pods(settings: ClusterSettings, binary: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kubectl(settings, binary, "get", "pods", "-n", NS, "-o", "json")
    )["items"]
    return items


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def measure_pods(settings: ClusterSettings, binary: Path) -> dict[str, float]:
    kubectl(settings, binary, "create", "namespace", NS)
    bare = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "namespace": NS},
        "spec": {"nodeSelector": {REAL_NODE_LABEL: "true"}, "tolerations": [TOLERATION],
                 "containers": [{"name": "c", "image": IMAGES["runtime"].reference,
                                 "command": ["python3", "-c", "import time; time.sleep(3600)"]}]},
    }  # fmt: skip
    started = time.monotonic()
    kubectl(settings, binary, "apply", "-f", "-", stdin=yaml.safe_dump(bare))
    out: dict[str, float] = {}
    while "bare_running_s" not in out:
        if any(
            p["metadata"]["name"] == "bare" and p["status"].get("phase") == "Running"
            for p in pods(settings, binary)
        ):
            out["bare_running_s"] = round(time.monotonic() - started, 2)
        elif time.monotonic() - started > 120:
            raise RuntimeError("the bare pod did not run within 120 s")
        time.sleep(0.1)
    kubectl(settings, binary, "delete", "pod", "bare", "-n", NS, "--wait=false")
    started = time.monotonic()
    kubectl(settings, binary, "apply", "-f", "-", stdin=yaml.safe_dump_all(sample_children()))
    while time.monotonic() - started < 240:
        for pod in pods(settings, binary):
            pool = (pod["metadata"].get("labels") or {}).get("outrider.dev/pool")
            if pool and pod["status"].get("phase") == "Running":
                out.setdefault(f"{pool}_running_s", round(time.monotonic() - started, 2))
            if pool and ready(pod):
                out.setdefault(f"{pool}_ready_s", round(time.monotonic() - started, 2))
        if "active_ready_s" in out and "warm_ready_s" in out:
            return out
        time.sleep(0.1)
    raise RuntimeError(f"serving pods not Ready within 240 s: {out}")


def node_rss(cluster: Cluster) -> dict[str, float]:
    per = {p.component: rss_bytes(p.pid) / 2**20 for p in cluster.live_processes()}
    node = {k: round(v, 1) for k, v in per.items() if k.startswith(("kubelet-", "containerd-", "kube-proxy"))}
    nodes = cluster.real_nodes.nodes
    shims = sum(rss_bytes(pid) for n in nodes for pid in shim_pids(n)) / 2**20
    containers = sum(rss_bytes(pid) for n in nodes for pid in cgroup_pids(n.cgroup_root)) / 2**20
    return {**node, "shims": round(shims, 1), "pod_containers": round(containers, 1),
            "node_total": round(sum(node.values()) + shims, 1)}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = ClusterSettings.from_env()
    binaries = ensure_binaries(base)
    archives = ensure_images(base, (*NODE_IMAGES, "runtime-gpu"))
    if other_real_node_clusters(Path(tempfile.gettempdir()) / "outrider-bench-none"):
        raise SystemExit(
            "another cluster runs real nodes (make cluster-down first): they would share node names"
        )
    builds = build_timings(base)
    result: dict[str, Any] = {
        "benchmark": "real-node",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "images": {
            IMAGES[k].reference: {
                "bytes": image_size(a),
                "mb": round(image_size(a) / 1e6),
                **builds.get(k, {}),
            }
            for k, a in archives.items()
        },
        "base_image_build_s": builds.get("base", {}).get("build_s"),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="outrider-bench-real-") as tmp:
        settings = bench_settings(Path(tmp) / "cluster")
        cluster = Cluster(settings, say=lambda m: log(f"    {m}"))
        for i in range(args.repeats):
            log(f"==> run {i + 1}/{args.repeats}: cluster up with one real node")
            up_s = cluster.up(load_topology(), build=False)
            run_result: dict[str, Any] = {"up_s": round(up_s, 2)}
            try:
                run_result["steps"] = json.loads((settings.cluster_dir / "timings.json").read_text())
                time.sleep(args.settle)
                run_result["rss_idle_mib"] = node_rss(cluster)
                run_result["pods"] = measure_pods(settings, binaries["kubectl"])
                time.sleep(args.settle)
                run_result["rss_two_serving_pods_mib"] = node_rss(cluster)
            finally:
                started = time.monotonic()
                cluster.down()
                run_result["down_s"] = round(time.monotonic() - started, 2)
            log(f"    {json.dumps(run_result)}")
            result["runs"].append(run_result)
    runs = result["runs"]

    def med(get: Any) -> float:
        return round(statistics.median(get(r) for r in runs), 2)

    result["median"] = {
        "up_s": med(lambda r: r["up_s"]),
        "real_node_ready_s": med(lambda r: r["steps"]["real nodes Ready"]),
        "import_runtime_s": med(lambda r: r["steps"]["real-0 import runtime"]),
        "import_control_s": med(lambda r: r["steps"]["real-0 import control"]),
        "bare_pod_running_s": med(lambda r: r["pods"]["bare_running_s"]),
        "active_pod_ready_s": med(lambda r: r["pods"]["active_ready_s"]),
        "warm_pod_ready_s": med(lambda r: r["pods"]["warm_ready_s"]),
        "node_rss_idle_mib": med(lambda r: r["rss_idle_mib"]["node_total"]),
        "node_rss_two_pods_mib": med(lambda r: r["rss_two_serving_pods_mib"]["node_total"]),
        "pod_containers_rss_mib": med(lambda r: r["rss_two_serving_pods_mib"]["pod_containers"]),
        "down_s": med(lambda r: r["down_s"]),
    }
    result["target"] = {"warm_up_s": 45.0, "met": result["median"]["up_s"] <= 45.0}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="cluster starts (default 3)")
    ap.add_argument(
        "--settle", type=float, default=5.0, help="seconds idle before reading memory (default 5)"
    )
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the JSON")
    args = ap.parse_args()
    result = run(args)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
