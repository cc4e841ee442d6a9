"""The planner end to end on the real local control plane, with real runtimes behind the pods.

The chart is installed with helm; the operator and the planner run as local processes with tokens
of the chart's ServiceAccounts (so the chart's RBAC is what is tested). Pods land on stand-in
nodes, where a StandInHost runs a real ``outrider runtime serve`` (MiniLM) for each and plays the
kubelet's readiness prober; the real EndpointSlice controller turns readiness and the planner's
role labels into endpoints, and a kube-proxy stand-in routes real inferences to them. Traffic goes
only to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from outrider_devcluster import polling
from outrider_devcluster.stack import RELEASE_NAMESPACE as RELEASE_NS
from outrider_devcluster.stack import Component, Stack, stand_in_deployment
from outrider_devcluster.standins import StandInHost
from outrider_devcluster.traffic import LoadGenerator, ServiceRouter
from outrider_operator.api import labels

REPO = Path(__file__).resolve().parents[1]
NS = f"e2e-planner-{os.getpid()}"
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60.0, every_s: float = 0.2) -> Any:
    return polling.wait_for(
        what, check, timeout_s, every_s=every_s, tolerate=(KeyError, IndexError, TypeError)
    )


@pytest.fixture(scope="module")
def setup(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The chart, the namespace, the operator (as its ServiceAccount) and a stand-in host."""
    stack = Stack(cluster.kubeconfig, cluster.binaries, tmp_path_factory.mktemp("planner"))
    stack.install()
    cluster.kubectl("create", "namespace", NS, check=False)

    def planner(name: str, *extra: str) -> tuple[Component, int]:
        component = stack.planner(name, [NS], "--log-level", "debug", *extra)
        return component, component.ports["metrics"]

    stack.operator([NS])
    host = StandInHost(cluster.kubeconfig, stack.workdir / "stand-ins", namespaces=[NS]).start()
    try:
        yield {"planner": planner, "host": host}
    finally:
        for c in reversed(stack.components):
            c.stop()
            print(f"--- {c.log.name} ---\n{c.tail()}")
        stack.stop()
        host.stop()
        cluster.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)


def deployment(name: str, **spec: Any) -> str:
    return yaml.safe_dump(stand_in_deployment(name, NS, **spec))


@contextlib.contextmanager
def planned(cluster: Any, setup: dict[str, Any], name: str, **spec: Any) -> Iterator[int]:
    """Apply a stand-in InferenceDeployment and run a planner for it (yields its metrics port); both go."""
    cluster.kubectl("apply", "-f", "-", input=deployment(name, **spec))
    planner, metrics_port = setup["planner"](f"planner-{name}")
    try:
        yield metrics_port
    finally:
        planner.stop()
        cluster.kubectl("delete", "infd", name, "-n", NS, "--wait=true", check=False)


def get(cluster: Any, *args: str) -> Any:
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def status(cluster: Any, name: str) -> dict[str, Any]:
    return dict((get(cluster, "infd", name, "-n", NS) or {}).get("status") or {})


def pods(cluster: Any, name: str) -> list[dict[str, Any]]:
    items = (get(cluster, "pods", "-n", NS, "-l", f"{labels.LABEL_DEPLOYMENT}={name}") or {}).get("items", [])
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def role_of(p: dict[str, Any]) -> str:
    return str(p["metadata"]["labels"].get(labels.LABEL_ROLE))


def admin_load(address: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{address}/v2/admin/load", timeout=5) as r:
        return dict(json.loads(r.read()))


def settled(cluster: Any, name: str, serving: int, warm: int = 0, cold: int = 0) -> None:
    """Wait until the planner reports the pool as asked (every pod loaded and idle)."""

    def check() -> bool:
        plan = status(cluster, name).get("plan") or {}
        return (plan.get("servingPods"), plan.get("warmPods"), plan.get("coldPods")) == (serving, warm, cold)

    wait_for(f"{name}: {serving} serving, {warm} warm, {cold} cold", check, timeout_s=240, every_s=1)


def surge(
    cluster: Any,
    name: str,
    base: float,
    peak: float,
    base_s: float,
    peak_s: float,
    until: Callable[[ServiceRouter], bool],
) -> tuple[Any, float, float | None, ServiceRouter]:
    """Base load, then a step to ``peak``; returns the report, the step time and when ``until`` held."""
    with cluster.api_client() as api:
        router = ServiceRouter(api, NS, name).start()
        try:
            wait_for(f"{name} has a ready endpoint", router.targets, 60)
            gen = LoadGenerator(router)
            step_at: dict[str, float] = {}
            seen: dict[str, float] = {}

            def rate(t: float) -> float:
                if t < base_s:
                    return base
                step_at.setdefault("t", router.clock())
                return peak

            async def watch() -> None:
                # ``until`` runs through the whole surge, not only until it first holds: checks that
                # also sample (batch sizes) see actions the planner takes after a promotion too
                while not gen.stop.is_set():  # in a thread: a slow check must not hold the traffic back
                    if "t" in step_at and await asyncio.to_thread(until, router):
                        seen.setdefault("t", router.clock())
                    await asyncio.sleep(0.05)

            async def main() -> Any:
                watcher = asyncio.create_task(watch())
                report = await gen.run(rate, base_s + peak_s)
                gen.stop.set()
                await watcher
                return report

            report = asyncio.run(main())
        finally:
            router.stop()
    return report, step_at.get("t", 0.0), seen.get("t"), router


def test_a_surge_on_a_capped_pool_raises_the_batch_size_live(cluster: Any, setup: dict[str, Any]) -> None:
    # replicas.max=1 and no standby: a bigger batch is the only lever the planner has
    name = "resize"
    with planned(
        cluster,
        setup,
        name,
        replicas={"min": 1, "max": 1},
        standby={"warm": 0, "cold": 0},
        batching={"maxBatchSize": 4, "minBatchDelayMs": 10},
        scaling={"targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": 600},
    ):
        settled(cluster, name, serving=1)
        (only,) = [p["metadata"]["name"] for p in pods(cluster, name)]
        batches: dict[str, int] = {}

        def raised(router: ServiceRouter) -> bool:
            for pod, address in router.targets():
                with contextlib.suppress(OSError, ValueError, KeyError):
                    size = int(admin_load(address)["batching"]["maxBatchSize"])
                    batches[pod] = max(batches.get(pod, 0), size)
            return batches.get(only, 0) > 4

        report, step_at, raised_at, _ = surge(
            cluster, name, base=40, peak=220, base_s=6, peak_s=10, until=raised
        )
        assert report.sent > 1500
        assert report.failed == [], f"{len(report.failed)} failed: {report.failed[:5]}"
        assert raised_at is not None, f"the batch was not raised live on {only}: {batches}"
        assert raised_at - step_at < 10.0, f"the batch was raised {raised_at - step_at:.1f} s after the step"
        print(f"resize: batch {batches[only]} in effect {raised_at - step_at:.2f} s after the step")
        events = get(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")["items"]
        resized = [e["message"] for e in events if e["reason"] == "ResizeBatch"]
        assert any(m.startswith("Resized batches 4 ->") for m in resized), [e["message"] for e in events]
        assert not [e for e in events if e["reason"] in ("PromoteWarm", "LoadCold")]
        assert get(cluster, "deployment", name, "-n", NS)["spec"]["replicas"] == 1  # max is max


def test_a_surge_promotes_warm_pods_within_the_deadline(cluster: Any, setup: dict[str, Any]) -> None:
    name = "surge"
    with planned(
        cluster,
        setup,
        name,
        replicas={"min": 1, "max": 4},
        standby={"warm": 2, "cold": 0},
        batching={"maxBatchSize": 4, "minBatchDelayMs": 10},
        scaling={"targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": 600},
    ) as metrics_port:
        settled(cluster, name, serving=1, warm=2)
        before = {p["metadata"]["name"]: role_of(p) for p in pods(cluster, name)}
        assert sorted(before.values()) == ["serving", "standby", "standby"]

        def promoted(router: ServiceRouter) -> bool:
            return len(router.ready_pods()) >= 2

        report, step_at, capacity_at, _ = surge(
            cluster, name, base=40, peak=220, base_s=6, peak_s=14, until=promoted
        )
        assert report.sent > 2000
        assert report.failed == [], f"{len(report.failed)} failed: {report.failed[:5]}"
        assert capacity_at is not None, "no warm pod became a ready endpoint during the surge"
        assert capacity_at - step_at < 10.0, (
            f"added capacity served {capacity_at - step_at:.1f} s after the step"
        )
        after = pods(cluster, name)
        serving = [p for p in after if role_of(p) == labels.ROLE_SERVING]
        assert any(p["metadata"]["labels"][labels.LABEL_POOL] == labels.POOL_WARM for p in serving)
        st = status(cluster, name)
        assert st["lastScalingAction"]["advisory"] is False and st["plan"]["mode"] == "predictive"
        print(f"surge: capacity served {capacity_at - step_at:.2f} s after the step; {report.sent} requests")
        events = get(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")["items"]
        promotes = [e for e in events if e["reason"] == "PromoteWarm"]
        assert promotes and "serving in" in promotes[0]["message"], [e["message"] for e in events]
        # the warm pool is refilled: its Deployment asks for one more pod per pod taken to serve
        warm = get(cluster, "deployment", f"{name}-warm", "-n", NS)
        taken = len([p for p in serving if p["metadata"]["labels"][labels.LABEL_POOL] == labels.POOL_WARM])
        assert warm["spec"]["replicas"] == 2 + taken
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'outrider_planner_actions_total{action="PromoteWarm"' in text.replace(
            f'namespace="{NS}",deployment="{name}",', ""
        )
        assert "outrider_planner_trigger_to_serving_seconds_count" in text


def test_advisory_mode_publishes_decisions_and_changes_nothing(cluster: Any, setup: dict[str, Any]) -> None:
    name = "advice"
    with planned(
        cluster,
        setup,
        name,
        replicas={"min": 1, "max": 4},
        standby={"warm": 1, "cold": 0},
        scaling={"mode": "advisory", "targetLatencyP99Ms": 200},
    ):
        settled(cluster, name, serving=1, warm=1)
        before = {
            p["metadata"]["name"]: (role_of(p), p["metadata"]["resourceVersion"]) for p in pods(cluster, name)
        }
        report, _, _, _ = surge(cluster, name, base=40, peak=220, base_s=3, peak_s=8, until=lambda r: False)
        assert report.failed == []
        after = {
            p["metadata"]["name"]: (role_of(p), p["metadata"]["resourceVersion"]) for p in pods(cluster, name)
        }
        assert after == before  # not a label, not an annotation: nothing was touched
        assert get(cluster, "deployment", f"{name}-warm", "-n", NS)["spec"]["replicas"] == 1
        st = status(cluster, name)
        assert st["plan"]["mode"] == "advisory"
        cond = next(c for c in st["conditions"] if c["type"] == "Planning")
        assert cond["reason"] == "Advisory"
        events = get(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")["items"]
        advisory = [e for e in events if e["message"].startswith("Advisory")]
        assert any(e["reason"] == "PromoteWarm" for e in advisory), [e["message"] for e in events]
        assert st["lastScalingAction"]["advisory"] is True


def test_two_planners_one_acts_and_the_other_takes_over(cluster: Any, setup: dict[str, Any]) -> None:
    a, port_a = setup["planner"]("planner-a")
    b, port_b = setup["planner"]("planner-b")

    def leaders() -> dict[str, float]:
        out = {}
        for who, port in (("planner-a", port_a), ("planner-b", port_b)):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    line = next(
                        ln
                        for ln in r.read().decode().splitlines()
                        if ln.startswith("outrider_planner_leader ")
                    )
                out[who] = float(line.split()[1])
            except OSError:
                out[who] = -1.0
        return out

    try:
        first = wait_for(
            "one planner leading",
            lambda: (lambda m: m if sorted(m.values()) == [0.0, 1.0] else None)(leaders()),
            60,
        )
        holder = next(w for w, v in first.items() if v == 1.0)
        lease = get(cluster, "lease", "outrider-planner", "-n", RELEASE_NS)
        assert lease["spec"]["holderIdentity"] == holder
        for _ in range(5):  # it stays that way
            time.sleep(1)
            assert sorted(leaders().values()) == [0.0, 1.0]
        other = "planner-b" if holder == "planner-a" else "planner-a"
        (a if holder == "planner-a" else b).stop(signal.SIGKILL)  # no clean release: the lease must expire
        wait_for(
            f"{other} takes the lease",
            lambda: (
                get(cluster, "lease", "outrider-planner", "-n", RELEASE_NS)["spec"]["holderIdentity"] == other
            ),
            45,
            1,
        )
        wait_for(f"{other} acts", lambda: leaders()[other] == 1.0, 20, 0.5)
    finally:
        a.stop()
        b.stop()


def test_a_cold_pod_loads_and_serves_when_no_warm_pod_is_left(cluster: Any, setup: dict[str, Any]) -> None:
    name = "cold"
    with planned(
        cluster,
        setup,
        name,
        replicas={"min": 1, "max": 2},
        standby={"warm": 0, "cold": 1},
        scaling={"targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": 600},
    ):
        settled(cluster, name, serving=1, cold=1)

        def two(router: ServiceRouter) -> bool:
            return len(router.ready_pods()) >= 2

        report, step_at, capacity_at, _ = surge(
            cluster, name, base=40, peak=200, base_s=4, peak_s=25, until=two
        )
        assert report.failed == [], f"{len(report.failed)} failed: {report.failed[:5]}"
        assert capacity_at is not None, "the cold pod never served"
        print(f"cold: capacity served {capacity_at - step_at:.2f} s after the step")
        cold_pod = next(
            p
            for p in pods(cluster, name)
            if p["metadata"]["labels"][labels.LABEL_POOL] == labels.POOL_COLD
            and role_of(p) == labels.ROLE_SERVING
        )
        assert (
            admin_load(cold_pod["metadata"]["annotations"][labels.ANNOTATION_STAND_IN_ENDPOINT])["state"]
            == "serving"
        )
        events = get(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")["items"]
        assert [e for e in events if e["reason"] == "LoadCold" and "serving in" in e["message"]]
        assert get(cluster, "deployment", f"{name}-cold", "-n", NS)["spec"]["replicas"] == 2  # refilled


def test_new_replicas_on_spare_gpus_when_no_standby_is_left(cluster: Any, setup: dict[str, Any]) -> None:
    name = "grow"
    with planned(
        cluster,
        setup,
        name,
        replicas={"min": 1, "max": 2},
        standby={"warm": 0, "cold": 0},
        scaling={"targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": 600},
    ):
        settled(cluster, name, serving=1)

        def two(router: ServiceRouter) -> bool:
            return len(router.ready_pods()) >= 2

        report, step_at, capacity_at, _ = surge(
            cluster, name, base=40, peak=200, base_s=4, peak_s=40, until=two
        )
        assert report.failed == [], f"{len(report.failed)} failed: {report.failed[:5]}"
        assert capacity_at is not None, "no new replica served"
        print(f"grow: a new pod served {capacity_at - step_at:.2f} s after the step")
        st = status(cluster, name)
        assert st["forecast"]["recommendedReplicas"] == 2
        active = get(cluster, "deployment", name, "-n", NS)
        assert active["spec"]["replicas"] == 2
        new = [
            p for p in pods(cluster, name) if p["metadata"]["labels"][labels.LABEL_POOL] == labels.POOL_ACTIVE
        ]
        assert len(new) == 2 and all(p["spec"]["nodeName"].startswith("stand-in-") for p in new)
        events = get(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")["items"]
        assert [e for e in events if e["reason"] == "AddReplicas" and "serving in" in e["message"]]


def test_scale_down_steps_serving_warm_cold_released_without_failed_requests(
    cluster: Any, setup: dict[str, Any]
) -> None:
    name = "shrink"
    window = 8
    with planned(
        cluster,
        setup,
        name,
        replicas={"min": 1, "max": 3},
        standby={"warm": 1, "cold": 0},
        scaling={"targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": window},
    ):
        settled(cluster, name, serving=1, warm=1)
        report, _, capacity_at, _ = surge(
            cluster, name, base=40, peak=200, base_s=3, peak_s=6, until=lambda r: len(r.ready_pods()) >= 2
        )
        assert capacity_at is not None and report.failed == []
        promoted = next(
            p["metadata"]["name"]
            for p in pods(cluster, name)
            if p["metadata"]["labels"][labels.LABEL_POOL] == labels.POOL_WARM
            and role_of(p) == labels.ROLE_SERVING
        )

        def state_of(pod: str) -> tuple[str, str, str | None] | None:
            """The pod's role, runtime state and deletion cost; None once it is gone or being deleted."""

            def current() -> dict[str, Any] | None:
                p = next((q for q in pods(cluster, name) if q["metadata"]["name"] == pod), None)
                return None if p is None or p["metadata"].get("deletionTimestamp") else p

            p = current()
            if p is None:
                return None
            ann = p["metadata"].get("annotations") or {}
            try:
                load = admin_load(ann[labels.ANNOTATION_STAND_IN_ENDPOINT])
            except urllib.error.URLError:
                if current() is None:  # deleted between the listing and the call: its runtime is gone
                    return None
                raise
            return role_of(p), load["state"], ann.get(labels.ANNOTATION_POD_DELETION_COST)

        # light load goes on while the pod steps down: every request must still be answered
        steps: list[tuple[str, str, str | None] | None] = []

        def follow(router: ServiceRouter) -> bool:
            s = state_of(promoted)
            if not steps or steps[-1] != s:
                steps.append(s)
            return s is None

        report, _, gone_at, _ = surge(
            cluster, name, base=15, peak=15, base_s=0.1, peak_s=6 * window, until=follow
        )
        assert report.failed == [], f"{len(report.failed)} failed during the scale-down: {report.failed[:5]}"
        seen = [s[:2] if s else None for s in steps]
        assert ("standby", "warm") in seen and ("standby", "cold") in seen, steps
        assert seen.index(("standby", "warm")) < seen.index(("standby", "cold")), steps
        assert gone_at is not None, f"the pod was never released and deleted: {steps}"
        events = {
            e["reason"]
            for e in get(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")[
                "items"
            ]
        }
        assert {"Demote", "Unload", "RemoveReplicas"} <= events, events
        assert get(cluster, "deployment", f"{name}-warm", "-n", NS)["spec"]["replicas"] == 1


def test_a_planner_killed_mid_action_is_replaced_without_repeating_or_losing_it(
    cluster: Any, setup: dict[str, Any]
) -> None:
    name = "restart"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=deployment(
            name,
            replicas={"min": 1, "max": 2},
            standby={"warm": 0, "cold": 1},
            scaling={"targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": 600},
        ),
    )
    first, _ = setup["planner"]("planner-first")
    second = None
    try:
        settled(cluster, name, serving=1, cold=1)
        cold = next(
            p for p in pods(cluster, name) if p["metadata"]["labels"][labels.LABEL_POOL] == labels.POOL_COLD
        )
        address = cold["metadata"]["annotations"][labels.ANNOTATION_STAND_IN_ENDPOINT]
        boot = admin_load(address)["bootId"]
        killed: dict[str, float] = {}

        def kill_when_loading(router: ServiceRouter) -> bool:
            nonlocal second
            if "t" not in killed and admin_load(address)["requestedState"] == "serving":
                first.stop(signal.SIGKILL)  # mid-action: the load runs, the label is not switched yet
                killed["t"] = time.monotonic()
                second, _ = setup["planner"]("planner-second")
            return "t" in killed and len(router.ready_pods()) >= 2

        report, _, done_at, _ = surge(
            cluster, name, base=40, peak=200, base_s=3, peak_s=40, until=kill_when_loading
        )
        assert killed, "the first planner never started loading the cold pod"
        assert done_at is not None, "the replacement did not finish the cold pod's way to serving"
        load = admin_load(address)
        assert load["bootId"] == boot and load["state"] == "serving"  # the same process, loaded once
        events = get(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")["items"]
        loads = [e for e in events if e["reason"] == "LoadCold"]
        assert len(loads) == 1 and "serving in" in loads[0]["message"], [e["message"] for e in events]
        assert report.failed == []
    finally:
        first.stop()
        if second is not None:
            second.stop()
        cluster.kubectl("delete", "infd", name, "-n", NS, "--wait=true", check=False)
