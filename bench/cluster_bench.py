"""Local cluster benchmark: start-to-Ready time and idle memory at 5 and 1,000 nodes.

Runs its own cluster in a temporary folder on its own ports (so a cluster started by
``make cluster-up`` is left alone), with the binaries already in the cache:

* ``start_to_ready_s``: from the first process start (etcd) to every node of the default
  topology Ready, repeated ``--repeats`` times; median, min and max (target <= 30 s).
* ``idle_rss_mib``: summed resident memory of etcd, kube-apiserver, kube-controller-manager,
  both kube-schedulers and KWOK after ``--settle`` seconds idle, with 5 nodes and then with
  ``--scale-nodes`` nodes (created in parallel; the time to all Ready is reported too).
* ``build``: the per-step timings the build step recorded (``<build dir>/timings.json``), and with
  ``--cold-build`` a fresh build into an empty Go build cache and binary cache (slow: minutes).

Prints the JSON and writes ``bench/results/cluster.json``.
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

from outrider_devcluster import COMPONENTS, Cluster, ClusterSettings, Ports, ensure_binaries, load_topology
from outrider_devcluster.processes import rss_bytes
from report import emit

REPO = Path(__file__).resolve().parents[1]
TARGET_START_S = 30.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_settings(folder: Path) -> ClusterSettings:
    ports = Ports.from_base(32400)
    return ClusterSettings(cluster_dir=folder, ports=ports, ready_timeout_s=120)


def cluster_rss(cluster: Cluster) -> dict[str, float]:
    per = {p.component: rss_bytes(p.pid) / 2**20 for p in cluster.live_processes()}
    missing = [c for c in COMPONENTS if c not in per]
    if missing:
        raise RuntimeError(f"components not running: {missing}")
    return {**{k: round(v, 1) for k, v in per.items()}, "total": round(sum(per.values()), 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    base_settings = ClusterSettings.from_env()
    ensure_binaries(base_settings)  # cached: a no-op; otherwise this is the build
    result: dict[str, Any] = {
        "benchmark": "local-cluster",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {
            "kubernetes": base_settings.versions.kubernetes,
            "etcd": base_settings.versions.etcd,
            "kwok": base_settings.versions.kwok,
        },
    }
    topology = load_topology()
    starts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="outrider-bench-") as tmp:
        settings = bench_settings(Path(tmp) / "cluster")
        cluster = Cluster(settings, say=lambda _m: None)
        for i in range(args.repeats):
            log(f"==> start {i + 1}/{args.repeats}")
            try:
                starts.append(cluster.up(topology, build=False))
                if i == args.repeats - 1:
                    log(f"==> idle {args.settle:.0f}s with {topology.node_count} nodes")
                    time.sleep(args.settle)
                    result["idle_rss_mib_5_nodes"] = cluster_rss(cluster)
                    if args.scale_nodes:
                        scaled = topology.scaled(args.scale_nodes)
                        log(f"==> scaling to {scaled.node_count} nodes")
                        t0 = time.monotonic()
                        cluster.up(scaled, build=False)
                        result["scale"] = {
                            "nodes": scaled.node_count,
                            "create_to_all_ready_s": round(time.monotonic() - t0, 2),
                        }
                        log(f"==> idle {args.settle:.0f}s with {scaled.node_count} nodes")
                        time.sleep(args.settle)
                        result[f"idle_rss_mib_{scaled.node_count}_nodes"] = cluster_rss(cluster)
                        result["scale"]["ready_after_idle"] = cluster.status().nodes_ready
            finally:
                cluster.down()
    result["start_to_ready_s"] = {
        "nodes": topology.node_count,
        "runs": [round(s, 2) for s in starts],
        "median": round(statistics.median(starts), 2),
        "min": round(min(starts), 2),
        "max": round(max(starts), 2),
        "target": TARGET_START_S,
        "meets_target": statistics.median(starts) <= TARGET_START_S,
    }
    result["build"] = build_timings(base_settings, args.cold_build)
    return result


def build_timings(settings: ClusterSettings, cold: bool) -> dict[str, Any]:
    timings_file = settings.build_dir / "timings.json"
    recorded = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    out: dict[str, Any] = {
        "recorded_steps_s": {k: v["seconds"] for k, v in sorted(recorded.items())},
        "note": "recorded steps ran with whatever Go build cache the machine had (often warm)",
    }
    if cold:
        out["cold"] = cold_build()
    return out


def cold_build() -> dict[str, Any]:
    """Build every binary with an empty Go build cache and binary cache; the module cache stays."""
    with tempfile.TemporaryDirectory(prefix="outrider-cold-") as tmp:
        os.environ["GOCACHE"] = str(Path(tmp) / "gocache")
        settings = ClusterSettings(bin_cache=Path(tmp) / "bin")
        saved_path = os.environ["PATH"]
        os.environ.pop("KUBEBUILDER_ASSETS", None)
        os.environ["PATH"] = os.pathsep.join(p for p in saved_path.split(os.pathsep) if "outrider" not in p)
        log("==> cold build (empty GOCACHE, empty binary cache)")
        t0 = time.monotonic()
        try:
            ensure_binaries(settings)
        finally:
            os.environ["PATH"] = saved_path
            os.environ.pop("GOCACHE")
        seconds = time.monotonic() - t0
        steps = json.loads((settings.build_dir / "timings.json").read_text())
    return {
        "total_s": round(seconds, 1),
        "steps_s": {k: v["seconds"] for k, v in sorted(steps.items())},
        "conditions": "empty GOCACHE; Go module cache already populated; shared 2-core machine",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="cluster starts to time (default 3)")
    parser.add_argument("--settle", type=float, default=20.0, help="idle seconds before measuring memory")
    parser.add_argument(
        "--scale-nodes", type=int, default=1000, help="node count of the scale step (0: skip)"
    )
    parser.add_argument("--cold-build", action="store_true", help="also time a build from an empty Go cache")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cluster.json")
    args = parser.parse_args()
    result = run(args)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
