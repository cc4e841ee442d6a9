"""``make demo``: Outrider end to end on the local cluster, explained step by step.

1. builds (once) or finds the control-plane binaries and starts the local cluster with
   simulated GPU nodes and a real node (or reuses a running one);
2. installs the Helm chart with every component as a pod on the real node, as in a user's
   cluster: the operator, the kube-scheduler with the extender beside it, the forecaster, the
   planner and the agent, all from the images built from the Dockerfile (``make image``);
3. applies the two sample InferenceDeployments (GPU pods on the simulated nodes, placed by the
   release's scheduler and extender) and waits until the first is Ready;
4. shows what happened: the objects, where pods were placed and why, status, Events, metrics;
5. places a CPU InferenceDeployment on the real node, shows its pod with ``kubectl get pods -o
   wide`` and its logs, and sends a real inference over the Triton protocol with tritonclient
   through ``kubectl port-forward``;
6. lets Prometheus (the one process on this machine, scraping the real node's pods) and the
   forecaster pod publish a live forecast into status;
7. sends a surge of real requests to a deployment on the real node and shows the planner pod
   answer it: batches resized, the warm pod promoted and serving within seconds, the pool refilled.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from outrider_devcluster import Cluster, ClusterSettings, ensure_binaries, load_topology
from outrider_devcluster.incluster import COMPONENTS, IN_CLUSTER_SCHEDULER, in_cluster_values
from outrider_devcluster.nodeconfig import REAL_NODE_LABEL
from outrider_devcluster.processes import ProcessTable
from outrider_devcluster.prometheus import prometheus_argv, prometheus_url, scrape_config
from outrider_devcluster.workloads import real_node_deployment

REPO = Path(__file__).resolve().parents[1]
NS = "default"
SYSTEM = "outrider-system"
SAMPLES = REPO / "manifests" / "samples"
VENV_BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


class Demo:
    """The demo's state: settings, binaries and the process table shared with the cluster."""

    def __init__(self) -> None:
        self.settings = ClusterSettings.from_env()
        self.binaries = ensure_binaries(self.settings)
        self.table = ProcessTable(self.settings.cluster_dir / "pids", self.settings.cluster_dir / "logs")

    def run(self, exe: str, *args: str, check: bool = True, show: bool = False) -> str:
        argv = [str(self.binaries[exe]), "--kubeconfig", str(self.settings.kubeconfig), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if check and proc.returncode != 0:
            raise SystemExit(f"{exe} {' '.join(args)} failed:\n{proc.stderr}")
        if show:
            print(proc.stdout.rstrip())
        return proc.stdout

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.run("kubectl", "get", *args, "-o", "json"))

    def start(self, component: str, argv: list[str], health_url: str | None, *, fresh: bool = False) -> None:
        """Start ``component`` (recorded for cluster-down) unless it runs; ``fresh`` restarts it."""
        for proc in self.table.recorded():
            if proc.component == component and proc.alive():
                if not fresh:
                    print(f"    {component} already running (pid {proc.pid})")
                    return
                proc.stop()
                self.table.forget(component)
        proc = self.table.start(component, argv)
        print(f"    started {component} (pid {proc.pid}, log {self.table.log_for(component)})")
        if health_url is None:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not proc.alive():
                raise SystemExit(f"{component} exited early; see {self.table.log_for(component)}")
            try:
                with urllib.request.urlopen(health_url, timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(
            f"{component} did not become healthy at {health_url}; see {self.table.log_for(component)}"
        )


def wait_ready(demo: Demo, name: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        obj = demo.kubectl_json("infd", name, "-n", NS)
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        ready = conds.get("Ready")
        line = f"    {name}: Ready={ready['status']} ({ready['reason']}: {ready['message']})" if ready else ""
        if line and line != last:
            print(line, flush=True)
            last = line
        if ready and ready["status"] == "True":
            return dict(obj)
        time.sleep(1)
    raise SystemExit(f"{name} did not become Ready within {timeout:.0f}s")


LIVE = "minilm-live"
"""The demo's deployment on the real node: one pod of the runtime image built from the Dockerfile."""


def serve_on_real_node(demo: Demo) -> str:
    """Place a CPU InferenceDeployment on the real node, show its pod and logs, infer through it.

    Returns the serving pod's address (its IP on the node's bridge, reachable from this machine).
    """
    import numpy as np
    import tritonclient.http as httpclient

    body = real_node_deployment(
        LIVE,
        NS,
        cpu="500m",
        replicas={"min": 1, "max": 1},
        standby={"warm": 0, "cold": 0},
        scaling={"forecastHorizonSeconds": 30},
    )
    path = demo.settings.cluster_dir / "demo-live.yaml"
    path.write_text(json.dumps(body))
    demo.run("kubectl", "apply", "-f", str(path), show=True)
    wait_ready(demo, LIVE)
    selector = f"outrider.dev/deployment={LIVE}"
    demo.run("kubectl", "get", "pods", "-n", NS, "-l", selector, "-o", "wide", show=True)
    pod = demo.kubectl_json("pods", "-n", NS, "-l", selector)["items"][0]
    image = pod["status"]["containerStatuses"][0]["image"]
    print(f"    container image: {image} (built from the Dockerfile by make image, imported into the node)")
    print(f"    kubectl logs {pod['metadata']['name']} (last lines):")
    for line in demo.run("kubectl", "logs", "-n", NS, pod["metadata"]["name"]).splitlines()[-4:]:
        print(f"      {line}")
    demo.start(
        "outrider-port-forward",
        [str(demo.binaries["kubectl"]), "--kubeconfig", str(demo.settings.kubeconfig), "-n", NS,
         "port-forward", f"svc/{LIVE}", "18000:8000"],
        "http://127.0.0.1:18000/v2/health/live",
        fresh=True,  # a previous run's forward pointed at a pod that is gone
    )  # fmt: skip
    client = httpclient.InferenceServerClient("127.0.0.1:18000")
    meta = client.get_model_metadata("minilm")
    print(
        f"    through kubectl port-forward svc/{LIVE}: model inputs {[i['name'] for i in meta['inputs']]}, "
        f"outputs {[o['name'] for o in meta['outputs']]}"
    )
    sentences = np.array([b"Outrider warms standby pods before the surge.", b"Hello, world"], dtype=object)
    inp = httpclient.InferInput("text", [len(sentences)], "BYTES")
    inp.set_data_from_numpy(sentences)
    started = time.perf_counter()
    out = client.infer("minilm", [inp]).as_numpy("embeddings")
    elapsed = (time.perf_counter() - started) * 1000
    print(f"    tritonclient infer: {len(sentences)} sentences -> embeddings {out.shape} in {elapsed:.1f} ms")
    return str(pod["status"]["podIP"])


def real_nodes(demo: Demo) -> list[str]:
    """Names of the cluster's real nodes."""
    items = demo.kubectl_json("nodes", "-l", f"{REAL_NODE_LABEL}=true").get("items", [])
    return sorted(str(n["metadata"]["name"]) for n in items)


def install_in_cluster(demo: Demo) -> None:
    """helm install with every component a pod on the real node; show the pods."""
    demo.run("kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    values = demo.settings.cluster_dir / "demo-values.yaml"
    values.write_text(
        json.dumps(in_cluster_values([NS], prometheus_url=prometheus_url()), indent=1)
    )  # JSON is YAML
    print(f"    values: {values} (placement on the real node, scheduler.name={IN_CLUSTER_SCHEDULER},")
    print(f"    forecaster.prometheusUrl={prometheus_url()}; the host scheduler keeps the name outrider)")
    started = time.monotonic()
    demo.run(
        "helm", "upgrade", "--install", "outrider", str(REPO / "charts" / "outrider"), "--namespace", SYSTEM,
        "--create-namespace", "-f", str(values), "--wait", "--timeout", "300s",
    )  # fmt: skip
    print(f"    helm install --wait: every component Ready in {time.monotonic() - started:.1f}s")
    demo.run("kubectl", "get", "pods", "-n", SYSTEM, "-o", "wide", show=True)


def component_pod(demo: Demo, component: str) -> str:
    """Name of the Ready pod of one chart component."""
    pods = demo.kubectl_json("pods", "-n", SYSTEM, "-l", f"app.kubernetes.io/component={component}")
    for pod in pods.get("items", []):
        conds = (pod.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            return str(pod["metadata"]["name"])
    raise SystemExit(f"no Ready {component} pod in {SYSTEM}; try: kubectl get pods -n {SYSTEM}")


def pod_metrics(demo: Demo, component: str, port: int, prefix: str) -> list[str]:
    """A component pod's counters, through the apiserver's pod proxy."""
    pod = component_pod(demo, component)
    text = demo.run("kubectl", "get", "--raw", f"/api/v1/namespaces/{SYSTEM}/pods/{pod}:{port}/proxy/metrics")
    return [ln for ln in text.splitlines() if ln.startswith(prefix) and "_total" in ln]


def _unix(stamp: object) -> float:
    """An RFC 3339 UTC time (``2026-12-05T15:50:27Z``) as Unix seconds; 0 when absent."""
    from datetime import datetime

    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() if stamp else 0.0


def forecast_live(demo: Demo) -> None:
    """Prometheus scrapes the real node's pods, load is sent, and the forecaster pod publishes."""
    import numpy as np
    import tritonclient.http as httpclient

    if shutil.which("prometheus") is None:
        raise SystemExit("prometheus not found: run `make setup-system` (Debian's prometheus package)")
    prom_dir = demo.settings.cluster_dir / "prometheus"
    prom_dir.mkdir(exist_ok=True)
    targets = prom_dir / "targets.json"
    demo.start(
        "outrider-prometheus-targets",
        [sys.executable, "-m", "outrider_devcluster", "prometheus-targets", "--out", str(targets)],
        None,
    )
    config = prom_dir / "prometheus.yml"
    config.write_text(json.dumps(scrape_config(targets), indent=1))
    print(f"    Prometheus (on this machine) scrapes the annotated pods of {', '.join(real_nodes(demo))}")
    print(f"    on the node's bridge; it answers at {prometheus_url()}, where the forecaster pod queries it")
    demo.start(
        "outrider-prometheus", prometheus_argv(config, prom_dir / "data"), f"{prometheus_url()}/-/ready"
    )
    client = httpclient.InferenceServerClient("127.0.0.1:18000")
    text = np.array([b"a surge of requests is coming"], dtype=object)
    inp = httpclient.InferInput("text", [1], "BYTES")
    inp.set_data_from_numpy(text)
    print("    sending load for up to 120 s until the forecaster has 30 s of history ...", flush=True)
    deadline = time.monotonic() + 120
    since = time.time()
    sent = 0
    conds: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for _ in range(20):
            client.infer("minilm", [inp])
            sent += 1
        obj = demo.kubectl_json("infd", LIVE, "-n", NS)
        forecast = (obj.get("status") or {}).get("forecast")
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        fc = conds.get("Forecasting", {})
        fresh = forecast and _unix(forecast.get("generatedAt")) >= since and float(forecast["p50Rps"]) > 0
        if fresh and fc.get("status") == "True":
            assert forecast is not None
            print(
                f"    {sent} requests sent; Forecasting={fc.get('status')} ({fc.get('reason')}): "
                f"next {forecast['horizonSeconds']} s p50 {forecast['p50Rps']} req/s, "
                f"p90 {forecast['p90Rps']}, peak p90 {forecast['p90PeakRps']}"
            )
            demo.run("kubectl", "get", "infd", "-n", NS, show=True)
            return
        time.sleep(0.5)
    fc = conds.get("Forecasting", {})
    raise SystemExit(
        f"no forecast published within 120 s; Forecasting={fc}; "
        f"see: kubectl logs -n {SYSTEM} deploy/outrider-forecaster"
    )


def surge(demo: Demo) -> None:
    """The planner pod answers a surge on a deployment whose pods run on the real node."""
    import asyncio

    from outrider_devcluster.kube import api_client
    from outrider_devcluster.traffic import LONG_TEXTS, LoadGenerator, ServiceRouter

    name = "minilm-surge"
    print(f"    deleting {LIVE} to leave the real node's two cores to this deployment's two pods")
    demo.run("kubectl", "delete", "infd", LIVE, "-n", NS, "--wait=true", "--timeout=60s", show=True)
    body = real_node_deployment(
        name,
        NS,
        cpu="900m",
        replicas={"min": 1, "max": 2},
        standby={"warm": 1, "cold": 0},
        batching={"maxBatchSize": 4},
    )
    path = demo.settings.cluster_dir / "demo-surge.yaml"
    path.write_text(json.dumps(body))
    # a fresh start on a reused cluster: a pool a previous run scaled up stays up for 5 minutes
    demo.run(
        "kubectl", "delete", "infd", name, "-n", NS, "--ignore-not-found", "--wait=true", "--timeout=60s"
    )
    demo.run("kubectl", "apply", "-f", str(path), show=True)
    print("    waiting for 1 serving and 1 warm pod on the real node (the planner pod reports them) ...")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = demo.kubectl_json("infd", name, "-n", NS).get("status") or {}
        plan = status.get("plan") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        if ready and plan.get("servingPods") == 1 and plan.get("warmPods") == 1:
            break
        time.sleep(1)
    else:
        raise SystemExit(
            f"{name} did not settle within 240 s; see: kubectl logs -n {SYSTEM} deploy/outrider-planner"
        )
    demo.run("kubectl", "get", "infd", name, "-n", NS, show=True)
    selector = f"outrider.dev/deployment={name}"
    demo.run("kubectl", "get", "pods", "-n", NS, "-l", selector, "-o", "wide", show=True)
    print("    10 req/s for 5 s, then a step to 120 req/s for 15 s (real MiniLM inferences) ...", flush=True)
    nodes = frozenset(real_nodes(demo))
    kubeconfig = demo.settings.kubeconfig
    with api_client(kubeconfig) as api, ServiceRouter(api, NS, name, real_nodes=nodes) as router:
        deadline = time.monotonic() + 30
        while not router.targets() and time.monotonic() < deadline:
            time.sleep(0.2)
        gen = LoadGenerator(router, texts=LONG_TEXTS)
        report = asyncio.run(gen.run(lambda t: 10.0 if t < 5 else 120.0, 20.0))
    print(f"    {report.sent} requests, {len(report.failed)} failed; served by pods: {report.by_pod()}")
    time.sleep(2)
    demo.run("kubectl", "get", "infd", name, "-n", NS, show=True)
    events = demo.kubectl_json("events", "-n", NS, "--field-selector", f"involvedObject.name={name}")
    for e in events.get("items", []):
        if e.get("source", {}).get("component") == "outrider-planner":
            print(f"    {e['reason']:<14} {e['message']}")
    last = (demo.kubectl_json("infd", name, "-n", NS).get("status") or {}).get("lastScalingAction") or {}
    print(f"    status.lastScalingAction: {json.dumps(last)}")


def main() -> int:
    say("control-plane binaries (built once from the Go module proxy, then cached)")
    demo = Demo()
    for name, path in sorted(demo.binaries.paths.items()):
        print(f"    {name:<24} {path}")
    say(
        "local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler x2, KWOK GPU nodes, "
        "a real node"
    )
    Cluster(demo.settings).up(load_topology(None, nodes=None), build=False)
    demo.run("kubectl", "get", "nodes", "-L", "outrider.dev/gpu-product", "-L", "nvidia.com/gpu", show=True)

    say(f"helm install: {', '.join(COMPONENTS)} as pods on the real node (images from the Dockerfile)")
    install_in_cluster(demo)

    # a reused cluster: what a previous run placed on the real node would hold its cores
    demo.run("kubectl", "delete", "infd", LIVE, "minilm-surge", "-n", NS, "--ignore-not-found", "--wait=true")

    say("apply the samples (seed config; two-shard partition)")
    demo.run("kubectl", "apply", "-k", str(SAMPLES), show=True)
    wait_ready(demo, "minilm")

    say("what the operator pod made of it")
    demo.run("kubectl", "get", "infd", "-n", NS, show=True)
    print(
        "    (ACTIVE/WARM/COLD are the planner pod's count of pods whose runtime it reached: the samples'\n"
        "    pods run on simulated KWOK nodes, so it counts them in status.plan.unreachablePods instead)"
    )
    demo.run("kubectl", "get", "deploy,svc,cm,pdb", "-n", NS, "-l", "outrider.dev/deployment", show=True)
    say(f"where the release's scheduler ({IN_CLUSTER_SCHEDULER} profile + extender) put the pods")
    demo.run(
        "kubectl",
        "get",
        "pods",
        "-n",
        NS,
        "-l",
        "outrider.dev/deployment",
        "-o",
        "custom-columns=POD:.metadata.name,POOL:.metadata.labels.outrider\\.dev/pool,"
        "NODE:.spec.nodeName,SCHEDULER:.spec.schedulerName,READY:.status.containerStatuses[0].ready",
        show=True,
    )
    say("status and Events")
    demo.run("kubectl", "describe", "infd", "minilm", "-n", NS, show=True)
    lines = pod_metrics(demo, "scheduler", 8766, "outrider_extender_")
    print("    extender metrics (the scheduler pod, through the apiserver's pod proxy):")
    print("      " + "\n      ".join(lines[:8]))

    say("serve on the real node: pods of the Dockerfile's runtime image under a real kubelet")
    serve_on_real_node(demo)

    say("forecast: Prometheus scrapes the real node's pods, the forecaster pod publishes status.forecast")
    forecast_live(demo)

    say("planner: an unforecast surge on real pods, answered by resizing batches and promoting a warm pod")
    surge(demo)

    say("done")
    kubeconfig = demo.settings.kubeconfig
    print(
        f"    kubeconfig: {kubeconfig}\n"
        f"    try:  {VENV_BIN}/python hack/tool.py kubectl get pods -A -o wide\n"
        f"          {VENV_BIN}/python hack/tool.py kubectl logs -n {SYSTEM} deploy/outrider-planner\n"
        f"    stop everything (cluster, real node, Prometheus, port-forward):  make cluster-down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
