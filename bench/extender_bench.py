"""Scheduler extender benchmark; writes ``bench/results/extender.json``.

1. ``nodes``: filter and prioritize latency (p50/p99, ms) over real HTTP at 100, 1,000 and 5,000
   nodes. The extender runs as its own process (``outrider extender serve --static-cluster``), as
   kube-scheduler would call it: node-cache-capable, node names only, one keep-alive connection.
   Target: p99 <= 5 ms per call at 5,000 nodes.
2. ``placement``: a replayed mix of deployments (scale-ups and scale-downs) placed by the
   Outrider strategies vs a model of the default scheduler on the same synthetic cluster:
   unschedulable pods, pods placed on unsuitable GPUs, GPUs stranded (free but unusable for the
   pending shard sizes) and the cache-hit rate of scale-ups.
3. ``scheduler_throughput_ratio``: on a real local control plane with ``--cluster-nodes``
   simulated GPU nodes (its own folder and ports), pods bound per second by kube-scheduler with
   the ``outrider`` profile (calling this extender) vs the default profile, in the same run.
   Skipped with ``--skip-cluster`` or when the cluster binaries are missing (reported as such).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from outrider_scheduler.extender.cache import ClusterCache
from outrider_scheduler.extender.config import ExtenderConfig
from outrider_scheduler.extender.engine import Engine
from outrider_scheduler.extender.nodes import NodeState
from outrider_scheduler.extender.requirements import PodRequirements
from outrider_scheduler.extender.simulation import make_pod, synthetic_nodes
from outrider_scheduler.extender.strategies import GpuFit, ShardTopology
from report import emit

REPO = Path(__file__).resolve().parents[1]
OUTRIDER = [sys.executable, "-c", "import sys; from outrider_cli import main; sys.exit(main())"]
TARGET_P99_MS = 5.0
TARGET_THROUGHPUT_RATIO = 0.5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- 1. HTTP latency

LATENCY_PODS = [
    make_pod("bench-small", 1),
    make_pod("bench-llm", 2, min_memory_mib=40000, precision="bf16", model="llama-8b", deployment="chat"),
    make_pod(
        "bench-sharded", 8, min_memory_mib=60000, precision="fp8", model="llama-70b",
        shard_plan=[
            {
                "name": "attention",
                "layers": ["embeddings", "attention"],
                "devicePreference": "memoryBandwidth",
                "gpus": 4,
            },
            {"name": "ffn", "layers": ["ffn", "head"], "devicePreference": "compute", "gpus": 4},
        ],
    ),
    make_pod("bench-embed", 1, min_memory_mib=8000, precision="int8", model="minilm", pool="active"),
    make_pod("bench-mid", 4, min_memory_mib=30000),
]  # fmt: skip


def latency_at(size: int, calls: int, warmup: int) -> dict[str, Any]:
    nodes = synthetic_nodes(size, seed=size, without_inventory_share=0.01)
    rng = random.Random(size)
    pods = [
        make_pod(
            f"busy-{i}", rng.choice([1, 1, 2, 4]), node_name=nodes[rng.randrange(size)]["metadata"]["name"]
        )
        for i in range(size // 2)
    ]
    names = [n["metadata"]["name"] for n in nodes]
    with tempfile.TemporaryDirectory(prefix="outrider-extender-bench-") as tmp:
        cluster = Path(tmp) / "cluster.json"
        cluster.write_text(json.dumps({"nodes": nodes, "pods": pods}))
        port = free_port()
        proc = subprocess.Popen(
            [*OUTRIDER, "extender", "serve", "--port", str(port), "--static-cluster", str(cluster),
             "--log-level", "WARNING"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            conn = _connect(port, proc)
            filter_bodies = [json.dumps({"Pod": p, "NodeNames": names}).encode() for p in LATENCY_PODS]
            prio_bodies = []
            passed_counts = []
            for pod, body in zip(LATENCY_PODS, filter_bodies, strict=True):
                passed = _post(conn, "/scheduler/filter", body)["NodeNames"]
                passed_counts.append(len(passed))
                prio_bodies.append(json.dumps({"Pod": pod, "NodeNames": passed}).encode())
            timings: dict[str, list[float]] = {"filter": [], "prioritize": []}
            server: dict[str, list[float]] = {"filter": [], "prioritize": []}
            for i in range(warmup + calls):
                k = i % len(LATENCY_PODS)
                for verb, body in (("filter", filter_bodies[k]), ("prioritize", prio_bodies[k])):
                    t0 = time.perf_counter()
                    raw, inside = _post_timed(conn, f"/scheduler/{verb}", body)
                    elapsed = (time.perf_counter() - t0) * 1000  # request sent -> whole reply received
                    json.loads(raw)
                    if i >= warmup:
                        timings[verb].append(elapsed)
                        server[verb].append(inside)
            conn.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    out: dict[str, Any] = {"calls_per_verb": calls, "nodes_passing_filter_per_pod": passed_counts}
    for verb, values in timings.items():
        out[f"{verb}_p50_ms"] = round(statistics.median(values), 3)
        out[f"{verb}_p99_ms"] = round(pct(values, 99), 3)
        out[f"{verb}_max_ms"] = round(max(values), 3)
    # Time inside the extender (Server-Timing header): parsing, strategies, encoding - without the
    # HTTP transport and without waiting for a CPU on this shared machine.
    out["server_side"] = {
        f"{verb}_{q}_ms": round(statistics.median(v) if q == "p50" else pct(v, 99), 3)
        for verb, v in server.items()
        for q in ("p50", "p99")
    }
    out["meets_target"] = out["filter_p99_ms"] <= TARGET_P99_MS and out["prioritize_p99_ms"] <= TARGET_P99_MS
    return out


def _connect(port: int, proc: subprocess.Popen[str]) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"extender exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return conn
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("extender did not become healthy within 120 s")
        time.sleep(0.2)


def _post_timed(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[bytes, float]:
    """POST; returns the reply body and the extender's own time (ms) from its Server-Timing header."""
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:300]!r}")
    timing = resp.getheader("Server-Timing", "extender;dur=nan")
    return data, float(timing.split("dur=", 1)[1])


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> Any:
    return json.loads(_post_timed(conn, path, body)[0])


# --------------------------------------------------------------------------- 2. placement quality

# name -> (gpus, min MiB per GPU, precision, model, share of scale-up events)
DEPLOYMENTS: dict[str, tuple[int, int, str | None, str, float]] = {
    "chat-70b": (8, 70000, "bf16", "llama-70b", 0.10),
    "code-34b": (4, 40000, "bf16", "codellama-34b", 0.12),
    "chat-13b": (2, 30000, "fp16", "llama-13b", 0.18),
    "fp8-8b": (2, 40000, "fp8", "llama-8b", 0.10),
    "embed": (1, 8000, "int8", "minilm", 0.25),
    "rerank": (1, 12000, "fp16", "bge-reranker", 0.15),
    "vision": (1, 20000, "bf16", "clip-vit", 0.10),
}


def _events(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    names = list(DEPLOYMENTS)
    weights = [DEPLOYMENTS[n][4] for n in names]
    events = []
    for _ in range(count):
        kind = "down" if rng.random() < 0.3 else "up"
        events.append((kind, rng.choices(names, weights)[0]))
    return events


def _pod_for(dep: str, i: int) -> dict[str, Any]:
    gpus, mem, precision, model, _ = DEPLOYMENTS[dep]
    return make_pod(f"{dep}-{i}", gpus, min_memory_mib=mem, precision=precision, model=model, deployment=dep)


def _suitable(pod: PodRequirements, node: NodeState) -> bool:
    return GpuFit().filter(pod, node) is None and ShardTopology().filter(pod, node) is None


def _default_choice(
    pod: PodRequirements, nodes: list[NodeState], counts: dict[str, int], rng: random.Random
) -> str | None:
    """kube-scheduler's default profile for GPU-only pods: NodeResourcesFit counts GPUs; its
    scoring (LeastAllocated/BalancedAllocation over cpu and memory, with the non-zero default
    requests) spreads pods to the node with the fewest pods; ties are broken at random."""
    feasible = [n for n in nodes if n.shape.free_gpus >= pod.gpus]
    if not feasible:
        return None
    fewest = min(counts.get(n.name, 0) for n in feasible)
    return rng.choice([n.name for n in feasible if counts.get(n.name, 0) == fewest])


def _outrider_choice(
    pod: PodRequirements, nodes: list[NodeState], engine: Engine, rng: random.Random
) -> str | None:
    passed = engine.filter(pod, nodes).passed
    if not passed:
        return None
    scores = engine.prioritize(pod, passed).scores
    best = max(s for _, s in scores)
    return rng.choice([n for n, s in scores if s == best])


def placement_quality(node_count: int, event_count: int, seed: int = 11) -> dict[str, Any]:
    base_nodes = synthetic_nodes(
        node_count, seed=seed, cached_share=0.05, models=[d[3] for d in DEPLOYMENTS.values()]
    )
    events = _events(event_count, seed)
    engine = Engine(ExtenderConfig().build_strategies(), budget_s=10.0)
    results: dict[str, Any] = {}
    finals: dict[str, tuple[ClusterCache, list[str]]] = {}
    pending: set[str] = set()
    for scheduler in ("outrider", "default"):
        cache = ClusterCache()
        for n in base_nodes:
            cache.upsert_node(n)
        names = [n["metadata"]["name"] for n in base_nodes]
        rng = random.Random(seed)
        live: dict[str, list[tuple[dict[str, Any], str]]] = {d: [] for d in DEPLOYMENTS}
        counts: dict[str, int] = {}
        placed = unschedulable = unsuitable = hits = 0
        serial = 0
        for kind, dep in events:
            if kind == "down":
                if live[dep]:
                    pod, node = live[dep].pop(0)
                    cache.delete_pod(pod)
                    counts[node] -= 1
                continue
            serial += 1
            pod = _pod_for(dep, serial)
            req = PodRequirements.from_pod(pod)
            nodes, _ = cache.lookup(names)
            if scheduler == "outrider":
                choice = _outrider_choice(req, nodes, engine, rng)
            else:
                choice = _default_choice(req, nodes, counts, rng)
            if choice is None:
                unschedulable += 1
                pending.add(dep)
                continue
            state = cache.node(choice)
            assert state is not None
            placed += 1
            if not _suitable(req, state):
                unsuitable += 1
            if req.model in state.cached_models or state.standby_models.get(req.model or ""):
                hits += 1
            pod["spec"]["nodeName"] = choice
            pod["status"]["phase"] = "Running"
            cache.upsert_pod(pod)  # the weights are now cached on that node
            counts[choice] = counts.get(choice, 0) + 1
            live[dep].append((pod, choice))
        finals[scheduler] = (cache, names)
        results[scheduler] = {
            "scale_ups": placed + unschedulable,
            "placed": placed,
            "unschedulable": unschedulable,
            "placed_on_unsuitable_gpus": unsuitable,
            "placed_suitably": placed - unsuitable,
            "cache_hit_rate": round(hits / placed, 4) if placed else 0.0,
        }
    # Stranded GPUs: free at the end, yet unusable by every pending shard (the deployments that
    # went unschedulable in either run, judged by their real needs) - one yardstick for both.
    pending_specs = [PodRequirements.from_pod(_pod_for(d, 0)) for d in sorted(pending)]
    empty = ClusterCache()  # the same nodes with nothing running: what each could host at all
    for n in base_nodes:
        empty.upsert_node(n)
    for scheduler, (cache, names) in finals.items():
        free = unusable = stranded = 0
        for state in cache.lookup(names)[0]:
            f = state.shape.free_gpus
            if f <= 0 or not state.shape.has_inventory:
                continue
            blank = empty.node(state.name)
            assert blank is not None
            capable = [spec for spec in pending_specs if _suitable(spec, blank)]
            usable = 0
            for spec in capable:
                if spec.gpus <= f and _suitable(spec, state):
                    usable = max(usable, (f // spec.gpus) * spec.gpus)
            free += f
            if not capable:
                unusable += f  # the hardware can never host a pending shard: not a placement effect
            else:
                stranded += f - usable
        results[scheduler].update(
            free_gpus_at_end=free,
            free_gpus_on_incapable_nodes=unusable,
            stranded_gpus=stranded,
            stranded_ratio=round(stranded / (free - unusable), 4) if free - unusable else 0.0,
        )
        log(f"    {scheduler}: {results[scheduler]}")
    return {
        "nodes": node_count,
        "events": event_count,
        "deployments": {
            k: {"gpus": v[0], "minMemoryMiB": v[1], "precision": v[2]} for k, v in DEPLOYMENTS.items()
        },
        "default_model": "GPU-count fit; spread to the node with fewest pods; random ties",
        "pending_deployments": sorted(pending),
        "stranded_definition": "free GPUs at the end, on nodes whose hardware could host a pending shard "
        "(deployments left unschedulable in either run, with their GPU count, memory, precision and NVLink "
        "needs), that no pending shard can use because of how the node was filled; stranded_ratio divides "
        "by the free GPUs on such capable nodes. Free GPUs on nodes that could never host a pending shard "
        "are counted apart (free_gpus_on_incapable_nodes)",
        **results,
    }


# --------------------------------------------------------------------------- 3. kube-scheduler throughput


def scheduler_throughput(node_count: int, pods: int) -> dict[str, Any]:
    from kubernetes import client as k8s

    from outrider_devcluster import Cluster, ClusterSettings, DevClusterError, Ports, load_topology, locate
    from outrider_devcluster.binaries import ALL_BINARIES
    from outrider_devcluster.kube import api_client

    base = 32500
    ext_port = free_port()
    with tempfile.TemporaryDirectory(prefix="outrider-sched-bench-") as tmp:
        settings = ClusterSettings(
            cluster_dir=Path(tmp) / "cluster",
            ports=Ports.from_base(base),
            extender_url=f"http://127.0.0.1:{ext_port}/scheduler",
            ready_timeout_s=180,
        )  # fmt: skip
        try:
            missing = locate(settings).missing(ALL_BINARIES)
        except DevClusterError as exc:
            return {"skipped": f"cluster binaries unavailable: {exc}"}
        if missing:
            return {"skipped": f"cluster binaries missing: {', '.join(missing)} (run `make binaries`)"}
        cluster = Cluster(settings, say=lambda m: log(f"    {m}"))
        topology = load_topology(nodes=node_count)
        log(f"==> starting a local cluster with {topology.node_count} nodes")
        t0 = time.monotonic()
        cluster.up(topology, build=False)
        up_s = time.monotonic() - t0
        ext = None
        try:
            ext = subprocess.Popen(
                [*OUTRIDER, "extender", "serve", "--kubeconfig", str(settings.kubeconfig),
                 "--port", str(ext_port), "--log-level", "WARNING"],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            conn = _connect(ext_port, ext)
            conn.close()
            sched_ports = {"default-scheduler": base + 4, "outrider": base + 5}
            before = {p: _scheduler_metrics(port) for p, port in sched_ports.items()}
            with api_client(settings.kubeconfig) as api:
                core = k8s.CoreV1Api(api)
                runs: dict[str, list[dict[str, Any]]] = {}
                for profile in ("default-scheduler", "outrider", "default-scheduler", "outrider"):
                    runs.setdefault(profile, []).append(_bind_rate(core, profile, pods))
                    log(f"    {profile}: {runs[profile][-1]}")
            default_rate = statistics.median(r["pods_per_s"] for r in runs["default-scheduler"])
            outrider_rate = statistics.median(r["pods_per_s"] for r in runs["outrider"])
            after = {p: _scheduler_metrics(port) for p, port in sched_ports.items()}
            metrics = _scrape(ext_port)
        finally:
            if ext is not None:
                ext.terminate()
                ext.wait(timeout=20)
            cluster.down()
    ratio = outrider_rate / default_rate if default_rate else 0.0
    cycle: dict[str, Any] = {}
    for profile in ("default-scheduler", "outrider"):
        n = after[profile]["count"] - before[profile]["count"]
        total = after[profile]["sum"] - before[profile]["sum"]
        mean_ms = 1000 * total / n if n else 0.0
        cycle[profile] = {
            "cycles": int(n),
            "mean_cycle_ms": round(mean_ms, 3),
            "cycle_capacity_pods_per_s": round(1000 / mean_ms, 1) if mean_ms else None,
        }
    cap_d = cycle["default-scheduler"]["cycle_capacity_pods_per_s"]
    cap_o = cycle["outrider"]["cycle_capacity_pods_per_s"]
    return {
        "nodes": topology.node_count,
        "pods_per_run": pods,
        "cluster_up_s": round(up_s, 1),
        "runs": runs,
        "default_pods_per_s": round(default_rate, 2),
        "outrider_pods_per_s": round(outrider_rate, 2),
        "ratio": round(ratio, 3),
        "scheduling_cycle": cycle,
        "cycle_capacity_ratio": round(cap_o / cap_d, 3) if cap_d and cap_o else None,
        "extender_calls": metrics,
        "method": "create N one-GPU pods with 8 client threads, time from first create to all bound; "
        "profiles alternate (default, outrider, default, outrider) and the medians are compared. Pod "
        "creation through the apiserver bounds both end-to-end rates on this machine, so "
        "scheduling_cycle also reports kube-scheduler's own scheduling_algorithm_duration_seconds "
        "(the serial filter+score+extender part of each cycle) and the pods/s it would allow",
    }


def _bind_rate(core: Any, profile: str, count: int) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client as k8s

    ns = f"bench-{profile.split('-')[0]}-{random.randrange(10**6)}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    try:
        body = make_pod("x", 1)
        body["spec"]["schedulerName"] = profile
        body.pop("status")

        def create(i: int) -> None:
            pod = json.loads(json.dumps(body))
            pod["metadata"]["name"] = f"p-{i:05d}"
            pod["metadata"]["namespace"] = ns
            core.create_namespaced_pod(ns, pod)

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(count)))
        created_s = time.monotonic() - t0
        bound = 0
        deadline = t0 + 600
        while time.monotonic() < deadline:
            items = core.list_namespaced_pod(ns).items
            bound = sum(1 for p in items if p.spec.node_name)
            if bound >= count:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - t0
        return {
            "bound": bound,
            "create_s": round(created_s, 2),
            "all_bound_s": round(elapsed, 2),
            "pods_per_s": round(bound / elapsed, 2),
        }
    finally:
        core.delete_namespace(ns)


def _scheduler_metrics(port: int) -> dict[str, float]:
    """kube-scheduler's scheduling_algorithm_duration_seconds sum and count (one profile per process)."""
    import ssl
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the scheduler's self-signed serving certificate; /metrics is open
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=ctx, timeout=10) as resp:
        text = resp.read().decode()
    out = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for key in ("sum", "count"):
            if line.startswith(f"scheduler_scheduling_algorithm_duration_seconds_{key} "):
                out[key] = float(line.split()[-1])
    return out


def _scrape(port: int) -> dict[str, Any]:
    """Calls per verb and outcome, and the extender's own mean handling time per verb."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    calls: dict[str, float] = {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("outrider_extender_requests_total{"):
            calls[name.removeprefix("outrider_extender_requests_total")] = float(value)
        for verb in ("filter", "prioritize"):
            if name == f'outrider_extender_request_duration_seconds_sum{{verb="{verb}"}}':
                sums[verb] = float(value)
            if name == f'outrider_extender_request_duration_seconds_count{{verb="{verb}"}}':
                counts[verb] = float(value)
    handling = {v: round(1000 * sums[v] / counts[v], 3) for v in sums if counts.get(v)}
    return {"calls": calls, "server_side_mean_ms": handling}


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,5000", help="node counts for the HTTP latency runs")
    parser.add_argument("--calls", type=int, default=300, help="measured calls per verb and size")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls first")
    parser.add_argument("--quality-nodes", type=int, default=200, help="nodes of the placement replay")
    parser.add_argument(
        "--quality-events", type=int, default=1500, help="scale events of the placement replay"
    )
    parser.add_argument("--seeds", default="11,5,23", help="seeds of the placement replays")
    parser.add_argument("--skip-cluster", action="store_true", help="skip the kube-scheduler throughput run")
    parser.add_argument(
        "--cluster-nodes", type=int, default=1000, help="simulated nodes of the throughput run"
    )
    parser.add_argument("--cluster-pods", type=int, default=300, help="pods per throughput run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "extender.json")
    parser.add_argument(
        "--only", choices=["latency", "placement", "cluster"], help="run one part (the others are left out)"
    )
    args = parser.parse_args()

    load = os.getloadavg()
    result: dict[str, Any] = {
        "benchmark": "scheduler-extender",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_at_start": load},
        "target": {
            "p99_ms_at_5000_nodes": TARGET_P99_MS,
            "scheduler_throughput_ratio": TARGET_THROUGHPUT_RATIO,
        },
        "nodes": {},
    }
    sizes = [] if args.only not in (None, "latency") else [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        log(f"==> HTTP latency at {size} nodes")
        result["nodes"][str(size)] = latency_at(size, args.calls, args.warmup)
        log(f"    {result['nodes'][str(size)]}")
    if args.only in (None, "placement"):
        runs = []
        for seed in (int(x) for x in args.seeds.split(",")):
            log(
                f"==> placement replay: {args.quality_nodes} nodes, {args.quality_events} events, seed {seed}"
            )
            runs.append({"seed": seed, **placement_quality(args.quality_nodes, args.quality_events, seed)})
        keys = ("placed_suitably", "unschedulable", "placed_on_unsuitable_gpus", "stranded_gpus",
                "stranded_ratio", "cache_hit_rate")  # fmt: skip
        result["placement"] = {
            "median_over_seeds": {
                who: {k: statistics.median(r[who][k] for r in runs) for k in keys}
                for who in ("outrider", "default")
            },
            "runs": runs,
        }
    if args.skip_cluster or args.only not in (None, "cluster"):
        result["scheduler_throughput"] = {"skipped": "--skip-cluster or --only"}
    else:
        result["scheduler_throughput"] = scheduler_throughput(args.cluster_nodes, args.cluster_pods)
    tp = result["scheduler_throughput"]
    result["scheduler_throughput_ratio"] = tp.get("ratio")
    result["scheduler_cycle_capacity_ratio"] = tp.get("cycle_capacity_ratio")
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
