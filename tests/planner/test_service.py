"""The planner loop against real runtime servers over HTTP (tiny model), with the cluster emulated.

The watch cache is fed by hand and pod patches land back in it (what the apiserver and the watch
would do); an EndpointSlice follows the pods' role labels (what the EndpointSlice controller
does). The e2e tests repeat this on the real control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from outrider_operator.api import labels
from outrider_operator.errors import KubeApiError
from outrider_scheduler.planner.actuator import Actuator
from outrider_scheduler.planner.capacity import CapacitySettings
from outrider_scheduler.planner.cluster import PlannerCache
from outrider_scheduler.planner.metrics import PlannerMetrics
from outrider_scheduler.planner.profile import CapacityProfile, ProfileBook, ProfilePoint
from outrider_scheduler.planner.publishing import FIELD_MANAGER, StatusWriter
from outrider_scheduler.planner.runtime_client import RuntimeClient
from outrider_scheduler.planner.service import PlannerService, PlannerSettings

NS, NAME = "ml", "m"
INFER = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 3], "data": [101, 7, 102]}]}


def merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = merge(out.get(k) or {}, v)
        else:
            out[k] = v
    return out


@dataclass
class FakeApi:
    """Stands in for the apiserver: pod patches go back into the cache; status and Events are kept."""

    cache: PlannerCache
    applies: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    """What happened, in order: ``apply:<lastScalingAction.action>`` or ``patch:<pod>``."""

    def request(
        self, method: str, path: str, *, body: Any = None, content_type: str | None = None, **_: Any
    ) -> Any:
        if method == "POST" and path.endswith("/events"):
            self.events.append(body)
            return body
        if method == "PATCH" and "/pods/" in path:
            name = path.rsplit("/", 1)[1]
            pod = next((p for p in self.cache.pods(NS, NAME) if p["metadata"]["name"] == name), None)
            if pod is None:
                raise KubeApiError(404, f"pod {name} not found")
            self.patches.append((name, body))
            self.order.append(f"patch:{name}")
            self.cache.upsert_pod(merge(pod, body))
            return pod
        raise AssertionError(f"unexpected {method} {path}")

    def apply(self, obj: dict[str, Any], *, subresource: str | None = None, field_manager: str = "") -> Any:
        assert subresource == "status" and field_manager == FIELD_MANAGER
        self.applies.append(obj)
        self.order.append(f"apply:{(obj['status'].get('lastScalingAction') or {}).get('action')}")
        return obj

    def last_status(self, name: str = NAME) -> dict[str, Any]:
        return dict([a for a in self.applies if a["metadata"]["name"] == name][-1]["status"])


def idf(mode: str = "predictive", name: str = NAME) -> dict[str, Any]:
    return {
        "apiVersion": "outrider.dev/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name, "namespace": NS, "uid": f"u-{name}", "generation": 1},
        "spec": {
            "model": {"name": "tiny", "uri": "builtin:tiny-bert"},
            "runtime": {"gpusPerReplica": 0},
            "replicas": {"min": 1, "max": 6},
            "standby": {"warm": 2, "cold": 1},
            "batching": {"maxBatchSize": 8, "minBatchDelayMs": 5},
            "scaling": {"mode": mode, "targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": 300},
        },
    }


def pod(name: str, pool: str, address: str, deployment: str = NAME) -> dict[str, Any]:
    role = labels.ROLE_SERVING if pool == labels.POOL_ACTIVE else labels.ROLE_STANDBY
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                labels.LABEL_MANAGED_BY: labels.MANAGED_BY,
                labels.LABEL_DEPLOYMENT: deployment,
                labels.LABEL_POOL: pool,
                labels.LABEL_ROLE: role,
            },
            "annotations": {"test/address": address},
        },
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def slow_profile() -> ProfileBook:
    """20 ms per row whatever the batch: one replica serves 40 req/s at 80% utilisation."""
    points = [ProfilePoint(batch_size=b, seconds=0.02 * b) for b in (1, 2, 4, 8, 16, 32)]
    return ProfileBook(profiles=[CapacityProfile(model="tiny", uri="builtin:tiny-bert", points=points)])


@dataclass
class Harness:
    cache: PlannerCache
    api: FakeApi
    service: PlannerService
    urls: dict[str, str]
    failed: list[int] = field(default_factory=list)
    sent: int = 0

    def serving(self) -> list[str]:
        return sorted(
            p["metadata"]["name"]
            for p in self.cache.pods(NS, NAME)
            if p["metadata"]["labels"][labels.LABEL_ROLE] == labels.ROLE_SERVING
        )

    def sync_endpoints(self) -> None:
        """The EndpointSlice controller's part: ready endpoints are the pods labelled serving."""
        endpoints = [
            {"targetRef": {"kind": "Pod", "name": n}, "conditions": {"ready": True}} for n in self.serving()
        ]
        self.cache.upsert_slice(
            {
                "metadata": {
                    "namespace": NS,
                    "name": f"{NAME}-x",
                    "labels": {"kubernetes.io/service-name": NAME},
                },
                "endpoints": endpoints,
            }
        )

    async def cycle(self) -> None:
        await self.service.cycle()
        self.sync_endpoints()

    async def load(self, rps: float, seconds: float) -> None:
        """Requests at ``rps`` spread over the serving pods (kube-proxy's part), each awaited."""
        async with aiohttp.ClientSession() as s:
            tasks = []
            i = 0
            loop = asyncio.get_running_loop()
            start = loop.time()
            while loop.time() - start < seconds:
                targets = self.serving()
                url = self.urls[targets[i % len(targets)]]
                tasks.append(asyncio.create_task(self._one(s, url)))
                i += 1
                await asyncio.sleep(1 / rps)
            await asyncio.gather(*tasks)

    async def _one(self, s: aiohttp.ClientSession, url: str) -> None:
        self.sent += 1
        async with s.post(f"http://{url}/v2/models/tiny/infer", data=json.dumps(INFER).encode()) as r:
            await r.read()
            if r.status != 200:
                self.failed.append(r.status)


@contextlib.asynccontextmanager
async def harness(
    server_factory: Callable[..., Any], tiny_config: Callable[..., Any], mode: str
) -> AsyncIterator[Harness]:
    starts = {"a1": "serving", "w1": "warm", "w2": "warm", "c1": "cold", "other": "serving"}
    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        for name, state in starts.items():
            running = await stack.enter_async_context(
                server_factory(tiny_config(server={"startState": state}))
            )
            urls[name] = running.url
        cache = PlannerCache()
        cache.upsert_deployment(idf(mode))
        pools = {
            "a1": labels.POOL_ACTIVE,
            "w1": labels.POOL_WARM,
            "w2": labels.POOL_WARM,
            "c1": labels.POOL_COLD,
        }
        for name, pool in pools.items():
            cache.upsert_pod(pod(name, pool, urls[name]))
        # another deployment in the same namespace: the planner must keep the two apart
        cache.upsert_deployment(idf(mode, "neighbour"))
        cache.upsert_pod(pod("other", labels.POOL_ACTIVE, urls["other"], "neighbour"))
        api = FakeApi(cache)
        runtime = RuntimeClient()
        stack.push_async_callback(runtime.close)
        actuator = Actuator(api, runtime)  # type: ignore[arg-type]
        stack.push_async_callback(actuator.close)
        settings = PlannerSettings(
            poll_interval_s=0.25,
            pod_address=lambda p: p["metadata"]["annotations"]["test/address"],  # the local servers
            capacity=CapacitySettings(min_observed_batches=10**9),  # keep the slow profile: no learning here
        )
        service = PlannerService(
            cache, StatusWriter(api), actuator, runtime, slow_profile(), PlannerMetrics(), settings
        )  # type: ignore[arg-type]
        h = Harness(cache, api, service, urls)
        h.sync_endpoints()
        yield h


async def drive(h: Harness, rps: float, seconds: float, until: Callable[[], bool]) -> None:
    load = asyncio.create_task(h.load(rps, seconds))
    while not load.done():
        await h.cycle()
        if until():
            break
        await asyncio.sleep(0.25)
    await load


async def admin_state(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"http://{url}/v2/admin/load") as r:
        return str((await r.json())["state"])


@pytest.mark.slow
async def test_a_surge_promotes_warm_pods_with_zero_failed_requests(
    server_factory: Callable[..., Any], tiny_config: Callable[..., Any]
) -> None:
    async with harness(server_factory, tiny_config, "predictive") as h:
        for _ in range(3):  # steady: 1 pod, ~10 req/s: nothing to do
            await h.cycle()
        assert h.serving() == ["a1"] and not h.api.patches
        await drive(h, rps=120, seconds=6, until=lambda: len(h.serving()) >= 3)
        risen = [n for n in h.serving() if n != "a1"]
        assert risen and set(risen) <= {"w1", "w2"}, h.serving()  # warm pods first, not the cold one
        for name in risen:
            assert await admin_state(h.urls[name]) == "serving"
        assert h.failed == [] and h.sent > 100
        for _ in range(6):
            await h.cycle()  # the promotion is reported once its pods serve and are endpoints
        reasons = [e["reason"] for e in h.api.events]
        assert "PromoteWarm" in reasons
        promote = next(e for e in h.api.events if e["reason"] == "PromoteWarm")
        assert "serving in" in promote["message"] and "demand" in promote["message"]
        status = h.api.last_status()
        actions = [a["status"].get("lastScalingAction") or {} for a in h.api.applies]
        ahead = [a for a in actions if a.get("action") == "PromoteWarm" and "readySeconds" not in a]
        promoted = [a for a in actions if a.get("action") == "PromoteWarm" and "readySeconds" in a]
        assert ahead and promoted, actions  # in status before any pod was touched, then with its timing
        assert h.api.applies.index(
            next(x for x in h.api.applies if x["status"].get("lastScalingAction") == ahead[0])
        ) < min(i for i, x in enumerate(h.api.applies) if x["status"].get("lastScalingAction") in promoted)
        ready, decided = float(promoted[0]["readySeconds"]), float(promoted[0]["decisionSeconds"])
        assert (
            0 <= decided <= ready < 10 and promoted[0]["trigger"] == "Surge" and not promoted[0]["advisory"]
        )
        assert status["plan"]["warmReplicas"] == 2 + len(risen) and status["plan"]["servingPods"] >= 2
        demands = [
            float(a["status"]["plan"]["demandRps"]) for a in h.api.applies if a["metadata"]["name"] == NAME
        ]
        assert max(demands) > 60  # rates kept across cycles although a neighbour shares the namespace
        assert status["forecast"] == {"recommendedReplicas": status["forecast"]["recommendedReplicas"]}
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Planning"]["status"] == "True" and conditions["Planning"]["reason"] == "Acting"


@pytest.mark.slow
async def test_advisory_mode_publishes_the_same_decisions_and_changes_nothing(
    server_factory: Callable[..., Any], tiny_config: Callable[..., Any]
) -> None:
    async with harness(server_factory, tiny_config, "advisory") as h:
        await drive(h, rps=100, seconds=3, until=lambda: False)
        assert h.serving() == ["a1"] and not h.api.patches
        assert await admin_state(h.urls["w1"]) == "warm" and await admin_state(h.urls["c1"]) == "cold"
        advisory = [e for e in h.api.events if e["message"].startswith("Advisory")]
        assert any(e["reason"] == "PromoteWarm" for e in advisory)
        # reported when the decision changes, not once per cycle (about 12 cycles ran)
        assert 1 <= len([e for e in advisory if e["reason"] == "PromoteWarm"]) <= 3, [
            e["message"] for e in advisory
        ]
        status = h.api.last_status()
        assert status["lastScalingAction"]["advisory"] is True
        assert status["plan"]["mode"] == "advisory"
        assert max(a["status"]["plan"]["desiredServing"] for a in h.api.applies) >= 3
        assert {c["type"]: c["reason"] for c in status["conditions"]} == {"Planning": "Advisory"}


@pytest.mark.slow
async def test_a_warm_pod_that_refuses_the_admin_call_is_skipped_and_reported(
    server_factory: Callable[..., Any], tiny_config: Callable[..., Any]
) -> None:
    async with harness(server_factory, tiny_config, "predictive") as h:
        # w1 answers /v2/admin/load like a warm runtime but fails every state change
        async with aiohttp.ClientSession() as s, s.get(f"http://{h.urls['w1']}/v2/admin/load") as r:
            sample = await r.json()

        async def load(_: web.Request) -> web.Response:
            return web.json_response(sample)

        async def refuse(_: web.Request) -> web.Response:
            return web.json_response({"error": "injected fault"}, status=500)

        app = web.Application()
        app.router.add_get("/v2/admin/load", load)
        app.router.add_post("/v2/admin/state", refuse)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            broken = f"127.0.0.1:{runner.addresses[0][1]}"
            h.cache.upsert_pod(pod("w1", labels.POOL_WARM, broken))
            await drive(h, rps=70, seconds=6, until=lambda: "w2" in h.serving())
            assert "w2" in h.serving() and "w1" not in h.serving()
            assert h.failed == []
            failures = h.service.metrics.pod_call_failures.labels(NS, NAME, "promote")._value.get()
            assert failures >= 1
        finally:
            await runner.cleanup()


@pytest.mark.slow
async def test_steady_load_does_not_rewrite_status_every_poll(
    server_factory: Callable[..., Any], tiny_config: Callable[..., Any]
) -> None:
    # demand moves a little with every sample; a status write per poll would make every poll a
    # reconcile of the operator (and, at fleet scale, a flood of writes)
    async with harness(server_factory, tiny_config, "predictive") as h:
        await drive(h, rps=8, seconds=1.5, until=lambda: False)  # settle: first writes
        before = len([a for a in h.api.applies if a["metadata"]["name"] == NAME])
        await drive(h, rps=8, seconds=3.0, until=lambda: False)  # about a dozen polls
        writes = len([a for a in h.api.applies if a["metadata"]["name"] == NAME]) - before
        assert writes <= 2, [a["status"]["conditions"][0]["message"] for a in h.api.applies[-4:]]
        assert h.failed == []


@pytest.mark.slow
@pytest.mark.parametrize(("sizing", "wanted", "said"), [("peak", 4, "peak 150.0"), ("mean", 2, "mean 50.0")])
async def test_a_published_forecast_is_sized_for_its_peak_or_its_mean(
    server_factory: Callable[..., Any], tiny_config: Callable[..., Any], sizing: str, wanted: int, said: str
) -> None:
    # the slow profile's replica serves 40 req/s at 80%: a p90 peak of 150 wants 4, a p90 mean of 50 wants 2
    async with harness(server_factory, tiny_config, "predictive") as h:
        body = idf()
        body["spec"]["scaling"]["forecastSizing"] = sizing
        made = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["status"] = {
            "forecast": {
                "horizonSeconds": 300,
                "p50Rps": "40.000",
                "p90Rps": "50.000",
                "p90PeakRps": "150.000",
                "generatedAt": made,
            }
        }
        h.cache.upsert_deployment(body)
        for _ in range(3):
            await h.cycle()
        assert h.api.last_status()["forecast"]["recommendedReplicas"] == wanted
        actions = [a["status"].get("lastScalingAction") or {} for a in h.api.applies]
        added = [a for a in actions if a.get("action") == "AddReplicas"]
        assert added and added[0]["trigger"] == "Forecast" and added[0]["toReplicas"] == wanted, actions
        assert f"forecast p90 {said} req/s" in added[0]["reason"]
