"""``make bench-surge``: how fast the planner turns an unforecast surge into serving capacity.

On the local cluster (reused when healthy, else started and stopped again), with the chart's
operator, kube-scheduler (extender beside it) and planner running as pods of the Dockerfile's
image on the real node, and the InferenceDeployments' serving pods as CPU pods of the runtime image
(MiniLM) on the same node: a real kubelet starts and probes them. Real requests go to the Service's
ready endpoints at the pods' IPs on the real node's bridge, as kube-proxy routes them.

A trial is a step surge: ``--base`` req/s, then three times that within one second, held until the
added capacity serves, then calm until the planner has stepped back to one serving pod. Three
kinds of trials, each on its own InferenceDeployment:

* ``warm`` (``--trials``): one warm standby pod and a small batch limit: the planner raises the
  batch size and promotes the warm pod;
* ``cold`` (``--cold-trials``): one cold standby pod: it is loaded (cold -> warm -> serving);
* ``grow`` (``--grow-trials``): no standby: a new replica is placed (the release's scheduler binds
  it to the real node) and serves once its container has started and its runtime has loaded.

Reported (seconds; p50 and p99 over trials): ``surge_to_capacity`` (the step, as sent, to the
first added pod being a ready endpoint with a serving runtime), ``warm_promotion`` (the planner's
decision to that pod serving and routable), ``batch_resize`` (decision to every serving runtime
batching at the new size), ``cold_to_serving``, ``new_pod`` and ``spare_gpu_attach`` (decision to
the new pod bound to a node: control-plane time, on the CPU node here), and every failed request.
The deployments run one at a time: four 400m pods and the release fit the real node's two cores.
Decisions and readiness times come from the planner's ``/debug/actions``; the step and the
endpoints from the bench's own watch. Writes ``bench/results/surge.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from forecast_lead import DailyRamps, HistoryThenLive, lead_of, run_ramps
from outrider_devcluster import Cluster, ClusterSettings, ensure_binaries, load_topology
from outrider_devcluster.kube import api_client
from outrider_devcluster.release import LocalKube, Release, in_cluster_release, release_values
from outrider_devcluster.traffic import LONG_TEXTS as TEXTS
from outrider_devcluster.traffic import LoadGenerator, LoadReport, ServiceRouter
from outrider_devcluster.workloads import real_node_deployment
from outrider_operator.api import labels
from outrider_operator.kube.listwatch import ListWatch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "surge.json"
NS = "bench-surge"
SCHEDULER = "outrider-bench-surge"
"""The release's scheduler profile (the cluster's host scheduler keeps ``outrider``)."""
POD_CPU = "400m"
"""Each serving pod's CPU request and limit."""
PLANNER_HEALTH_PORT = 9405
"""Where the planner pod serves ``/debug/actions`` (the chart's health port)."""
TARGETS = {"warm_promotion_p99_s": 2.0, "surge_to_capacity_p99_s": 10.0, "batch_resize_p99_s": 1.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"p50_s": None, "p99_s": None, "n": 0}
    a = np.asarray(values, dtype=float)
    return {
        "p50_s": round(float(np.percentile(a, 50)), 3),
        "p99_s": round(float(np.percentile(a, 99)), 3),
        "max_s": round(float(a.max()), 3),
        "n": len(values),
    }


class Bench:
    """The release, the real nodes and the bench's own watches."""

    def __init__(
        self, settings: ClusterSettings, kube: LocalKube, release: Release, real_nodes: frozenset[str]
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.release = release
        self.real_nodes = real_nodes
        self.bound: dict[str, float] = {}
        """Pod name -> wall time the bench first saw it bound to a node."""
        self._api = api_client(settings.kubeconfig)
        from kubernetes import client

        core = client.CoreV1Api(self._api)
        self._pods = ListWatch(
            f"pods/{NS}", lambda **kw: core.list_namespaced_pod(NS, **kw), self._pod, lambda o: None
        )
        self._pods.start()

    def _pod(self, obj: Mapping[str, Any]) -> None:
        if (obj.get("spec") or {}).get("nodeName"):
            self.bound.setdefault(str(obj["metadata"]["name"]), time.time())

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.kube.kubectl(*args, input=input).stdout

    def status(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", "infd", name, "-n", NS, "-o", "json")).get("status") or {})

    def actions(self) -> list[dict[str, Any]]:
        raw = self.release.get_raw("planner", PLANNER_HEALTH_PORT, "/debug/actions")
        return list(json.loads(raw)["actions"])

    def wait(self, what: str, check: Callable[[], bool], timeout_s: float, every_s: float = 0.5) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (KeyError, ValueError, RuntimeError):
                pass
            time.sleep(every_s)
        raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")

    def plan_is(self, name: str, serving: int, warm: int, cold: int = 0) -> bool:
        """Back at the baseline: the planner reports exactly these pods and no other pod exists (none
        draining, loading, or released but not yet deleted)."""
        plan = self.status(name).get("plan") or {}
        found = (plan.get("servingPods"), plan.get("warmPods", 0), plan.get("coldPods", 0))
        if found != (serving, warm, cold) or plan.get("unreachablePods", 0):
            return False
        pods = json.loads(
            self.kubectl("get", "pods", "-n", NS, "-l", f"{labels.LABEL_DEPLOYMENT}={name}", "-o", "json")
        )
        alive = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        return len(alive) == serving + warm + cold

    def create(self, name: str, **spec: Any) -> None:
        body = real_node_deployment(name, NS, cpu=POD_CPU, **spec)
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def delete(self, name: str) -> None:
        """Delete the deployment and wait for its pods to go (they hold the real node's cores)."""
        self.kube.kubectl("delete", "infd", name, "-n", NS, "--wait=true", check=False)
        selector = f"{labels.LABEL_DEPLOYMENT}={name}"
        self.wait(
            f"{name}'s pods gone",
            lambda: (
                not json.loads(self.kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json"))["items"]
            ),
            120,
        )


def one_trial(bench: Bench, name: str, base: float, hold_s: float) -> dict[str, Any]:
    """Base load, a step to 3x within a second, held ``hold_s``; returns what the bench saw."""
    with (
        api_client(bench.settings.kubeconfig) as api,
        ServiceRouter(api, NS, name, real_nodes=bench.real_nodes) as router,
    ):
        deadline = time.monotonic() + 60
        while not router.targets() and time.monotonic() < deadline:
            time.sleep(0.2)
        before = set(router.ready_pods())
        gen = LoadGenerator(router, texts=TEXTS)
        marks: dict[str, float] = {}
        base_s = 5.0

        def rate(t: float) -> float:
            if t < base_s:
                return base
            if "step" not in marks:
                marks["step"], marks["step_wall"] = router.clock(), time.time()
            return base * min(3.0, 1.0 + 2.0 * (t - base_s))  # x3 within one second

        async def run() -> LoadReport:
            async def watch() -> None:
                while not gen.stop.is_set():
                    if "step" in marks and "served" not in marks:
                        step = marks["step"]  # pods routed before the step are not the surge's doing
                        new = {p: t for p, t in router.ready_pods().items() if p not in before and t >= step}
                        if new:
                            marks["served"] = min(new.values())
                    await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch())
            report = await gen.run(rate, base_s + hold_s)
            gen.stop.set()
            await watcher
            return report

        report = asyncio.run(run())
    served = marks.get("served")
    return {
        "step_wall": marks.get("step_wall", 0.0),
        "surge_to_capacity_s": (served - marks["step"]) if served is not None and "step" in marks else None,
        "requests": report.sent,
        "failed": len(report.failed),
        "failures": sorted({r.status for r in report.failed}),
    }


def calm(bench: Bench, name: str, until: Callable[[], bool], timeout_s: float) -> int:
    """Light load (so draining pods see real traffic end) until ``until()``; returns failed requests."""
    with (
        api_client(bench.settings.kubeconfig) as api,
        ServiceRouter(api, NS, name, real_nodes=bench.real_nodes) as router,
    ):
        gen = LoadGenerator(router, texts=TEXTS)
        loop = asyncio.new_event_loop()
        done: dict[str, LoadReport] = {}

        def send() -> None:
            done["report"] = loop.run_until_complete(gen.run(lambda t: 5.0, timeout_s + 5))

        sender = threading.Thread(target=send, name="calm-load")
        sender.start()
        deadline = time.monotonic() + timeout_s
        back = False
        while not back and time.monotonic() < deadline:
            try:
                back = until()
            except (KeyError, ValueError, RuntimeError):
                back = False
            if not back:
                time.sleep(1.0)
        loop.call_soon_threadsafe(gen.stop.set)
        sender.join()
        loop.close()
    if not back:
        status = bench.status(name)
        planning = next((c for c in status.get("conditions") or [] if c["type"] == "Planning"), {})
        pods = bench.kubectl("get", "pods", "-n", NS, "-l", f"{labels.LABEL_DEPLOYMENT}={name}", "-o", "wide")
        raise RuntimeError(
            f"{name} did not step back within {timeout_s:.0f}s: {status.get('plan')}\n"
            f"Planning: {planning.get('reason')}: {planning.get('message')}\n{pods}"
        )
    return len(done["report"].failed)


def actions_since(bench: Bench, name: str, since_wall: float) -> list[dict[str, Any]]:
    return [a for a in bench.actions() if a["deployment"] == name and a["decidedAt"] >= since_wall - 1.0]


def scenario(
    bench: Bench, name: str, trials: int, base: float, hold_s: float, kind: str, back: Callable[[], bool]
) -> dict[str, list[float] | int]:
    out: dict[str, Any] = {
        "surge_to_capacity": [],
        "action": [],
        "resize": [],
        "attach": [],
        "failed": 0,
        "requests": 0,
    }
    for i in range(trials):
        bench.wait(f"{name} back at its baseline", back, 180)
        trial = one_trial(bench, name, base, hold_s)
        out["requests"] += trial["requests"]
        out["failed"] += trial["failed"]
        time.sleep(1.0)  # the planner reports capacity actions on its next cycle
        acts = actions_since(bench, name, trial["step_wall"])
        capacity = [a for a in acts if a["action"] == kind and a["readyAt"] is not None]
        resize = [a for a in acts if a["action"] == "ResizeBatch" and a["readyAt"] is not None]
        if trial["surge_to_capacity_s"] is not None:
            out["surge_to_capacity"].append(trial["surge_to_capacity_s"])
        for a in capacity[:1]:
            out["action"].append(a["readyAt"] - a["decidedAt"])
            if kind == "AddReplicas":
                new = [t for p, t in bench.bound.items() if t >= a["decidedAt"] - 0.5]
                if new:
                    out["attach"].append(min(new) - a["decidedAt"])
        for a in resize[:1]:
            out["resize"].append(a["readyAt"] - a["decidedAt"])
        plan = bench.status(name).get("plan") or {}
        served = trial["surge_to_capacity_s"]
        took = [a["readyAt"] - a["decidedAt"] for a in capacity[:1]]
        log(
            f"  {name} trial {i + 1}/{trials}: capacity served "
            + (f"{served:.2f} s after the step" if served is not None else "never")
            + f"; {kind}: "
            + (f"{took[0]:.2f} s" if took else "none")
            + f"; {trial['requests']} requests, {trial['failed']} failed {trial['failures'] or ''}"
            + f"; capacity {plan.get('capacityRps')} req/s per pod, p99 {plan.get('p99Ms')} ms"
        )
        out["failed"] += calm(bench, name, back, 240)
    return out


def forecast_scenario(bench: Bench, trials: int, base: float) -> dict[str, Any]:
    """Ramps the forecaster has seen daily for eight days: capacity must serve before each arrives."""
    from outrider_operator.kube.rest import KubeRest
    from outrider_scheduler.forecast.publisher import ForecastPublisher, run_forever
    from outrider_scheduler.forecast.service import ForecasterService

    now = time.time()
    starts = tuple(now + 420 + 600 * i for i in range(trials))  # the first one 7 minutes from now
    pattern = DailyRamps(base=base, peak=3.5 * base, starts=starts)
    source = HistoryThenLive(pattern, live_from=float(np.floor(now / 10) * 10))
    service = ForecasterService(source)
    stop = threading.Event()
    with api_client(bench.settings.kubeconfig) as api:
        publisher = ForecastPublisher(KubeRest(api), service)
        forecaster = threading.Thread(target=run_forever, args=(publisher, 10.0, stop), daemon=True)
        ahead = {"forecastHorizonSeconds": 300, "scaleDownStabilizationSeconds": 120}
        bench.create("ahead", replicas={"min": 1, "max": 3}, scaling=ahead)
        forecaster.start()
        try:
            bench.wait("ahead at its baseline", lambda: bench.plan_is("ahead", 1, 0, 0), 180)
            log(
                f"  ramps to {3.5 * base:.0f} req/s at +{starts[0] - now:.0f} s"
                + (" and every 600 s" if trials > 1 else "")
            )
            with ServiceRouter(api, NS, "ahead", real_nodes=bench.real_nodes) as router:
                # the plan counts a pod serving once it is Ready; its EndpointSlice entry can reach
                # the router a moment later, and load sent before then has nowhere to go
                bench.wait("a ready endpoint of ahead", lambda: bool(router.targets()), 60)
                report = run_ramps(router, source, starts[-1] + 360)
                to_wall = time.time() - router.clock()
            time.sleep(1.0)
            actions = bench.actions()
        finally:
            stop.set()
            forecaster.join(timeout=30)
            service.close()
    leads = [lead_of(actions, "ahead", s) for s in starts]
    for i, lead in enumerate(leads):
        log(
            f"  ramp {i + 1}/{trials}: "
            + (
                f"capacity served {lead:.0f} s before the ramp"
                if lead is not None
                else "no forecast-driven capacity"
            )
        )
    fc = bench.status("ahead").get("forecast") or {}
    failed_at = [r.sent + to_wall for r in report.failed]
    for at in failed_at[:10]:  # what the planner did around each failure, to explain it
        near = [
            f"{a['action']} {a['decidedAt'] - at:+.1f} s"
            for a in actions
            if a["deployment"] == "ahead" and abs(a["decidedAt"] - at) <= 30
        ]
        log(f"  failed request at {at - starts[0]:+.1f} s from the first ramp; near: {near or 'none'}")
    return {
        "failed_at_s": [round(at - starts[0], 1) for at in failed_at[:50]],
        "leads": leads,
        "requests": report.sent,
        "failed": len(report.failed),
        "failures": sorted({r.status for r in report.failed}),
        "failed_by_pod": dict(sorted(Counter(r.pod for r in report.failed).items())),
        "last_forecast": fc,
    }


def run_scenarios(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """The warm, cold and grow trials (one deployment at a time), then the forecast ramps."""
    window = {"scaleDownStabilizationSeconds": 4, "targetLatencyP99Ms": 200}
    small_batches = {"maxBatchSize": 4, "minBatchDelayMs": 10}
    results: dict[str, Any] = {}
    log(f"==> warm promotion: {args.trials} trials")
    # max 2: promotion is the lever here (one more replica would not fit the real node's two cores:
    # it stays Pending, and a pod on its way to serving holds the scale-down for its 300-s start grace)
    bench.create(
        "warm", replicas={"min": 1, "max": 2}, standby={"warm": 1}, batching=small_batches, scaling=window
    )
    results["warm"] = scenario(
        bench, "warm", args.trials, args.base, 8.0, "PromoteWarm", lambda: bench.plan_is("warm", 1, 1)
    )
    bench.delete("warm")
    log(f"==> cold to serving: {args.cold_trials} trials")
    bench.create("cold", replicas={"min": 1, "max": 2}, standby={"cold": 1}, scaling=window)
    results["cold"] = scenario(
        bench, "cold", args.cold_trials, args.base, 20.0, "LoadCold", lambda: bench.plan_is("cold", 1, 0, 1)
    )
    bench.delete("cold")
    log(f"==> new replicas: {args.grow_trials} trials")
    bench.create("grow", replicas={"min": 1, "max": 2}, scaling=window)
    results["grow"] = scenario(
        bench,
        "grow",
        args.grow_trials,
        args.base,
        30.0,
        "AddReplicas",
        lambda: bench.plan_is("grow", 1, 0, 0),
    )
    bench.delete("grow")  # the forecaster below forecasts every deployment it lists
    results["forecast"] = {"leads": [], "requests": 0, "failed": 0}
    if args.forecast_trials:
        log(f"==> forecast lead: {args.forecast_trials} ramps the forecaster has seen before")
        results["forecast"] = forecast_scenario(bench, args.forecast_trials, args.base)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="Warm-promotion trials (default 20).")
    ap.add_argument("--cold-trials", type=int, default=5, help="Cold-load trials (default 5).")
    ap.add_argument("--grow-trials", type=int, default=5, help="New-replica trials (default 5).")
    ap.add_argument(
        "--forecast-trials", type=int, default=2, help="Forecastable ramps, 10 min apart (default 2)."
    )
    ap.add_argument("--base", type=float, default=20.0, help="Base load, req/s (the step is 3x; default 20).")
    ap.add_argument("--out", default=str(OUT), help="Where to write the JSON.")
    args = ap.parse_args()
    # SIGTERM (timeout, Ctrl-C from make) unwinds like an exception: the processes and the namespace go
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    started_at = time.time()
    settings = ClusterSettings.from_env()
    binaries = ensure_binaries(settings)
    cluster = Cluster(settings, say=lambda m: log(f"    {m}"))
    extras = sorted(p.stem for p in (settings.cluster_dir / "pids").glob("outrider-*.pid"))
    if extras:
        raise SystemExit(
            f"the local cluster runs demo processes ({', '.join(extras)}): run make cluster-down"
        )
    ours = not cluster.healthy()
    if ours:
        log("==> starting the local cluster")
        cluster.up(load_topology(), build=False)
    kube = LocalKube(binaries, settings.kubeconfig)
    nodes = kube.kubectl("get", "nodes", "-l", "outrider.dev/real-node=true", "-o", "name").stdout.split()
    if not nodes:
        raise SystemExit("the local cluster has no real node (OUTRIDER_REAL_NODES=0?): the bench needs one")
    real_nodes = frozenset(n.split("/", 1)[1] for n in nodes)
    workdir = settings.cluster_dir / "bench-surge"
    values = release_values([NS], SCHEDULER, "planner")
    try:
        log("==> helm install: operator, scheduler with the extender, planner as pods on the real node")
        kube.kubectl("create", "namespace", NS, check=False)
        with in_cluster_release(kube, workdir, values) as release:
            bench = Bench(settings, kube, release, real_nodes)
            results = run_scenarios(bench, args)
    finally:
        log("==> stopping")
        kube.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)
        if ours:
            cluster.down()
    w, c, g, f = results["warm"], results["cold"], results["grow"], results["forecast"]
    leads = [x for x in f["leads"] if x is not None]
    doc: dict[str, Any] = {
        "trials": args.trials,
        "cold_trials": args.cold_trials,
        "grow_trials": args.grow_trials,
        "base_rps": args.base,
        "surge": "step to 3x the base rate within 1 s, real MiniLM inferences",
        "pods": f"runtime image on the real node, {POD_CPU} CPU each; planner, operator, scheduler as pods",
        "warm_promotion": summary(w["action"]),
        "surge_to_capacity": summary(
            w["surge_to_capacity"] + c["surge_to_capacity"] + g["surge_to_capacity"]
        ),
        "surge_to_capacity_warm": summary(w["surge_to_capacity"]),
        "batch_resize": summary(w["resize"]),
        "cold_to_serving": summary(c["action"]),
        "new_pod": summary(g["action"]),
        "spare_gpu_attach": {**summary(g["attach"]), "note": "decision to the new pod bound (CPU node here)"},
        "forecast_lead_s": {
            "p50": round(float(np.median(leads)), 1) if leads else None,
            "min": round(min(leads), 1) if leads else None,
            "ramps": len(f["leads"]),
            "served_ahead": sum(1 for x in leads if x > 0),
            "requests": f["requests"],
            "failed": f["failed"],
            "failures": f.get("failures", []),
            "failed_by_pod": f.get("failed_by_pod", {}),
            "failed_at_s": f.get("failed_at_s", []),
            "note": "real forecaster fed eight days of synthetic daily ramps, then the live arrivals",
        },
        "failed_requests": w["failed"] + c["failed"] + g["failed"] + f["failed"],
        "requests": w["requests"] + c["requests"] + g["requests"] + f["requests"],
        "timings": {
            "warm_promotion_s": summary(w["action"])["p50_s"],
            "cold_to_serving_s": summary(c["action"])["p50_s"],
            "new_pod_s": summary(g["action"])["p50_s"],
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "wall_seconds": round(time.time() - started_at, 1),
    }
    doc["targets"] = {}
    for key, target in TARGETS.items():
        value = doc[key.removesuffix("_p99_s")]["p99_s"]
        doc["targets"][key] = {"target": target, "value": value, "met": value is not None and value <= target}
    lead_min = doc["forecast_lead_s"]["min"]
    doc["targets"]["forecast_lead_min_s"] = {
        "target": 60.0,
        "value": lead_min,
        "met": lead_min is not None and lead_min >= 60.0 and len(leads) == len(f["leads"]),
    }
    doc["targets"]["failed_requests"] = {
        "target": 0,
        "value": doc["failed_requests"],
        "met": doc["failed_requests"] == 0,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
