"""``make demo``: Outrider end to end on the local cluster, explained step by step.

1. builds (once) or finds the control-plane binaries and starts the local cluster with
   simulated GPU nodes (or reuses a running one);
2. installs the Helm chart (CRDs, RBAC) and runs the operator and the scheduler extender as
   local processes (recorded like the cluster's own, so ``make cluster-down`` stops them);
3. applies the two sample InferenceDeployments and waits until the first is Ready;
4. shows what happened: the objects, where pods were placed and why, status, Events, metrics;
5. places a CPU InferenceDeployment on the cluster's real node (kubelet + containerd, the runtime
   image built from the Dockerfile), shows its pod with ``kubectl get pods -o wide`` and its logs,
   and sends a real inference over the Triton protocol with tritonclient through
   ``kubectl port-forward``;
6. lets Prometheus (on this machine, scraping that pod) and the forecaster publish a live
   forecast into status;
7. runs the planner and the stand-in host (real runtimes behind pods on the stand-in nodes), sends
   a surge of real requests and shows the planner answer it: batches resized, a warm pod promoted
   and serving within seconds, the warm pool refilled.
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
from outrider_devcluster.processes import ProcessTable
from outrider_devcluster.stack import real_node_deployment

REPO = Path(__file__).resolve().parents[1]
NS = "default"
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

    def start(self, component: str, argv: list[str], health_url: str | None) -> None:
        for proc in self.table.recorded():
            if proc.component == component and proc.alive():
                print(f"    {component} already running (pid {proc.pid})")
                return
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
        cpu="1",
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


def forecast_live(demo: Demo, pod_ip: str) -> None:
    """Prometheus scrapes the real pod, load is sent, and the forecaster publishes into status."""
    import numpy as np
    import tritonclient.http as httpclient

    if shutil.which("prometheus") is None:
        raise SystemExit("prometheus not found: run `make setup-system` (Debian's prometheus package)")
    prom_dir = demo.settings.cluster_dir / "prometheus"
    prom_dir.mkdir(exist_ok=True)
    config = prom_dir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 2s\nscrape_configs:\n  - job_name: outrider-runtime\n"
        f"    static_configs:\n      - targets: ['{pod_ip}:8000']\n"
        f"        labels: {{namespace: {NS}, deployment: {LIVE}}}\n"
    )
    print(f"    Prometheus (on this machine) scrapes the pod at {pod_ip}:8000, on the real node's bridge,")
    print(f"    with labels namespace={NS}, deployment={LIVE}")
    demo.start(
        "outrider-prometheus",
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            "--web.listen-address=127.0.0.1:19090",
        ],
        "http://127.0.0.1:19090/-/ready",
    )
    demo.start(
        "outrider-forecaster",
        [
            str(VENV_BIN / "outrider"),
            "forecast",
            "serve",
            "--prometheus-url",
            "http://127.0.0.1:19090",
            "--kubeconfig",
            str(demo.settings.kubeconfig),
            "--interval",
            "5",
        ],
        None,
    )
    client = httpclient.InferenceServerClient("127.0.0.1:18000")
    text = np.array([b"a surge of requests is coming"], dtype=object)
    inp = httpclient.InferInput("text", [1], "BYTES")
    inp.set_data_from_numpy(text)
    print("    sending load for up to 90 s until the forecaster has 30 s of history ...", flush=True)
    deadline = time.monotonic() + 90
    sent = 0
    conds: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for _ in range(20):
            client.infer("minilm", [inp])
            sent += 1
        obj = demo.kubectl_json("infd", LIVE, "-n", NS)
        forecast = (obj.get("status") or {}).get("forecast")
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        if forecast:
            fc = conds.get("Forecasting", {})
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
        f"no forecast published within 90 s; Forecasting={fc}; see .cluster/logs/outrider-forecaster.log"
    )


def surge(demo: Demo) -> None:
    """The planner answers a surge on a deployment whose pods are real runtimes (stand-in nodes)."""
    import asyncio

    from outrider_devcluster.kube import api_client
    from outrider_devcluster.stack import stand_in_deployment
    from outrider_devcluster.traffic import LONG_TEXTS, LoadGenerator, ServiceRouter

    name = "minilm-surge"
    body = stand_in_deployment(
        name, NS, replicas={"min": 1, "max": 3}, standby={"warm": 1}, batching={"maxBatchSize": 4}
    )
    path = demo.settings.cluster_dir / "demo-surge.yaml"
    path.write_text(json.dumps(body))
    kubeconfig = str(demo.settings.kubeconfig)
    demo.start("outrider-stand-ins", [sys.executable, "-m", "outrider_devcluster", "stand-ins"], None)
    planner = [str(VENV_BIN / "outrider"), "planner", "serve", "--kubeconfig", kubeconfig, "--namespace", NS]
    planner += ["--pod-endpoint-annotation", "--metrics-port", "18090", "--health-port", "18091"]
    demo.start(
        "outrider-planner", [*planner, "--bind-address", "127.0.0.1"], "http://127.0.0.1:18091/healthz"
    )
    demo.run("kubectl", "apply", "-f", str(path), show=True)
    print("    waiting for 1 serving and 1 warm pod (real runtimes on 127.0.0.1 stand in for the pods) ...")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        plan = (demo.kubectl_json("infd", name, "-n", NS).get("status") or {}).get("plan") or {}
        if plan.get("servingPods") == 1 and plan.get("warmPods") == 1:
            break
        time.sleep(1)
    else:
        raise SystemExit(f"{name} did not settle within 240 s; see .cluster/logs/outrider-planner.log")
    demo.run("kubectl", "get", "infd", name, "-n", NS, show=True)
    print("    50 req/s for 5 s, then a step to 150 req/s for 10 s (real MiniLM inferences) ...", flush=True)
    with api_client(demo.settings.kubeconfig) as api, ServiceRouter(api, NS, name) as router:
        gen = LoadGenerator(router, texts=LONG_TEXTS)
        report = asyncio.run(gen.run(lambda t: 50.0 if t < 5 else 150.0, 15.0))
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

    say("install the Helm chart (CRDs, least-privilege RBAC); run operator and extender locally")
    demo.run("kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    demo.run(
        "helm",
        "upgrade",
        "--install",
        "outrider",
        str(REPO / "charts" / "outrider"),
        "--namespace",
        "outrider-system",
        "--create-namespace",
        "--set",
        "operator.replicas=0",
        "--wait",
    )
    kubeconfig = str(demo.settings.kubeconfig)
    demo.start(
        "outrider-extender",
        [str(VENV_BIN / "outrider"), "extender", "serve", "--kubeconfig", kubeconfig],
        "http://127.0.0.1:8765/healthz",
    )
    demo.start(
        "outrider-operator",
        [
            str(VENV_BIN / "outrider-operator"),
            "--kubeconfig",
            kubeconfig,
            "--metrics-port",
            "18080",
            "--health-port",
            "18081",
            "--resync-seconds",
            "10",
        ],
        "http://127.0.0.1:18080/metrics",
    )

    say("apply the samples (seed config; two-shard partition)")
    demo.run("kubectl", "apply", "-k", str(SAMPLES), show=True)
    wait_ready(demo, "minilm")

    say("what the operator made of it")
    demo.run("kubectl", "get", "infd", "-n", NS, show=True)
    demo.run("kubectl", "get", "deploy,svc,cm,pdb", "-n", NS, "-l", "outrider.dev/deployment", show=True)
    say("where the scheduler (outrider profile + extender) put the pods")
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
    with urllib.request.urlopen("http://127.0.0.1:8765/metrics", timeout=5) as resp:
        lines = [
            ln
            for ln in resp.read().decode().splitlines()
            if ln.startswith("outrider_extender_") and "_total" in ln and not ln.startswith("#")
        ]
    print("    extender metrics:\n      " + "\n      ".join(lines[:8]))

    say("serve on the real node: pods of the Dockerfile's runtime image under a real kubelet")
    pod_ip = serve_on_real_node(demo)

    say("forecast: Prometheus scrapes the real pod, the forecaster publishes status.forecast")
    forecast_live(demo, pod_ip)

    say("planner: an unforecast surge, answered by resizing batches and promoting a warm pod")
    surge(demo)

    say("done")
    print(
        f"    kubeconfig: {kubeconfig}\n"
        f"    try:  {VENV_BIN}/python hack/tool.py kubectl get infd -w\n"
        f"    stop everything (cluster, operator, extender, runtime, Prometheus, forecaster, planner,\n"
        f"    stand-ins):  make cluster-down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
