"""The extender over real HTTP on 127.0.0.1: protocol shapes, bad input, budget, metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from outrider_scheduler.extender.cache import ClusterCache
from outrider_scheduler.extender.config import ExtenderConfig
from outrider_scheduler.extender.metrics import ExtenderMetrics
from outrider_scheduler.extender.server import ExtenderService, create_app
from outrider_scheduler.extender.simulation import make_node, make_pod


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, service: ExtenderService) -> None:
        self.session = session
        self.base = base
        self.service = service

    async def post(self, verb: str, body: Any, *, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.session.post(f"{self.base}/scheduler/{verb}", data=data) as resp:
            text = await resp.text()
            assert resp.content_type == "application/json", text
            assert resp.headers["Server-Timing"].startswith("extender;dur=")
            return resp.status, json.loads(text)

    async def metrics(self) -> str:
        async with self.session.get(f"{self.base}/metrics") as resp:
            assert resp.status == 200
            return await resp.text()


def _cluster() -> ClusterCache:
    cache = ClusterCache()
    cache.upsert_node(make_node("h100-a", "h100-sxm5-80gb-x8", cached_models=["llama-8b"]))
    cache.upsert_node(make_node("h100-b", "h100-sxm5-80gb-x8"))
    cache.upsert_node(make_node("l4-a", "l4-x4"))
    cache.upsert_node(make_node("t4-a", "t4-x1"))
    cache.upsert_node(make_node("bare", None))
    return cache


async def _serve(config: ExtenderConfig, cache: ClusterCache) -> AsyncIterator[Client]:
    service = ExtenderService(config, cache, ExtenderMetrics(CollectorRegistry()))
    server = TestServer(create_app(service), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Client(session, f"http://127.0.0.1:{server.port}", service)
    finally:
        await server.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async for c in _serve(ExtenderConfig(), _cluster()):
        yield c


ALL = ["h100-a", "h100-b", "l4-a", "t4-a", "bare"]


async def test_filter_returns_node_names_and_readable_reasons(client: Client) -> None:
    pod = make_pod("p", 2, min_memory_mib=40000, precision="fp8")
    status, body = await client.post("filter", {"Pod": pod, "NodeNames": ALL, "Nodes": None})
    assert status == 200
    assert body["Error"] == ""
    assert body["Nodes"] is None
    assert body["NodeNames"] == ["h100-a", "h100-b", "bare"]
    failed = {**body["FailedNodes"], **body["FailedAndUnresolvableNodes"]}
    assert set(failed) == {"l4-a", "t4-a"}
    assert "40000 MiB" in failed["l4-a"] and failed["l4-a"].startswith("outrider: ")
    assert "needs 2 free GPUs" in failed["t4-a"]


async def test_prioritize_prefers_warm_cache_and_floors_nodes_without_inventory(client: Client) -> None:
    pod = make_pod("p", 1, model="llama-8b")
    status, body = await client.post("prioritize", {"Pod": pod, "NodeNames": ALL})
    assert status == 200
    scores = {e["Host"]: e["Score"] for e in body}
    assert set(scores) == set(ALL)
    assert all(0 <= v <= 10 for v in scores.values())
    assert scores["bare"] == 0
    assert scores["h100-a"] > scores["h100-b"]
    assert max(scores.values()) == 10


async def test_whole_nodes_mode(client: Client) -> None:
    nodes = [make_node("h100-x", "h100-sxm5-80gb-x8"), make_node("t4-x", "t4-x1")]
    pod = make_pod("p", 1, min_memory_mib=20000, model="m")
    status, body = await client.post("filter", {"Pod": pod, "Nodes": {"items": nodes}})
    assert status == 200
    assert [n["metadata"]["name"] for n in body["Nodes"]["items"]] == ["h100-x"]
    assert body["NodeNames"] is None
    assert "t4-x" in body["FailedAndUnresolvableNodes"]
    status, prio = await client.post("prioritize", {"Pod": pod, "Nodes": {"items": nodes}})
    assert status == 200 and {e["Host"] for e in prio} == {"h100-x", "t4-x"}
    # The model cached on the node sent whole counts too (indexed from the request's nodes).
    warm = [make_node("l4-warm", "l4-x4", cached_models=["m"]), make_node("l4-cold", "l4-x4")]
    status, prio = await client.post("prioritize", {"Pod": pod, "Nodes": {"items": warm}})
    scores = {e["Host"]: e["Score"] for e in prio}
    assert scores["l4-warm"] == 10 and scores["l4-cold"] < 10


async def test_bound_pods_take_gpus_away(client: Client) -> None:
    client.service.cache.upsert_pod(make_pod("busy", 8, node_name="h100-a"))
    status, body = await client.post("filter", {"Pod": make_pod("p", 1), "NodeNames": ["h100-a", "h100-b"]})
    assert status == 200
    assert body["NodeNames"] == ["h100-b"]
    assert "0 of 8 free" in body["FailedNodes"]["h100-a"]


BAD = [
    (b"{not json", "not valid JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"NodeNames": ["h100-a"]}', "'Pod' is missing"),
    (b'{"Pod": {"metadata": {"name": "p"}, "spec": {"containers": []}}}', "one of 'NodeNames' or 'Nodes'"),
    (b'{"Pod": {"spec": {}}, "NodeNames": []}', "Pod.metadata.name"),
    (b'{"Pod": {"metadata": {"name": "p"}}, "NodeNames": []}', "Pod.spec"),
    (
        b'{"Pod": {"metadata": {"name": "p"}, "spec": {}}, "NodeNames": "h100-a"}',
        "'NodeNames' must be a list",
    ),
    (
        b'{"Pod": {"metadata": {"name": "p"}, "spec": {}}, "NodeNames": ["ghost-1", "h100-a"]}',
        "unknown nodes",
    ),
    (
        json.dumps({"Pod": make_pod("p", 1, precision="fp4"), "NodeNames": ["h100-a"]}).encode(),
        "outrider.dev/precision='fp4'",
    ),
    (
        json.dumps(
            {
                "Pod": {
                    "metadata": {"name": "p", "annotations": {"outrider.dev/shard-plan": "[{"}},
                    "spec": {"containers": []},
                },
                "NodeNames": ["h100-a"],
            }
        ).encode(),
        "shard-plan is not valid JSON",
    ),
    (
        json.dumps(
            {
                "Pod": {
                    "metadata": {"name": "p"},
                    "spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "two"}}}]},
                },
                "NodeNames": ["h100-a"],
            }
        ).encode(),
        "expected an integer quantity",
    ),
]


@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@pytest.mark.parametrize(("raw", "message"), BAD)
async def test_bad_input_is_a_400_naming_the_problem(
    client: Client, verb: str, raw: bytes, message: str
) -> None:
    status, body = await client.post(verb, None, raw=raw)
    assert status == 400
    assert message in body["Error"]
    assert "Traceback" not in body["Error"]


async def test_unknown_node_error_names_them(client: Client) -> None:
    status, body = await client.post("filter", {"Pod": make_pod("p", 1), "NodeNames": ["ghost-1", "ghost-2"]})
    assert status == 400
    assert "ghost-1" in body["Error"] and "ghost-2" in body["Error"]
    assert body["NodeNames"] == []


async def test_service_survives_bad_input_and_counts_it(client: Client) -> None:
    await client.post("filter", None, raw=b"\xff\xfe")
    status, _ = await client.post("filter", {"Pod": make_pod("p", 1), "NodeNames": ALL})
    assert status == 200
    text = await client.metrics()
    assert 'outrider_extender_requests_total{outcome="bad_request",verb="filter"} 1.0' in text
    assert 'outrider_extender_requests_total{outcome="ok",verb="filter"} 1.0' in text
    assert 'outrider_extender_request_duration_seconds_count{verb="filter"} 2.0' in text
    assert "outrider_extender_cache_nodes 5.0" in text


async def test_filtered_reasons_are_counted(client: Client) -> None:
    await client.post("filter", {"Pod": make_pod("p", 2, min_memory_mib=40000), "NodeNames": ALL})
    text = await client.metrics()
    assert 'outrider_extender_nodes_filtered_total{reason="insufficient_gpu_memory"} 1.0' in text
    assert 'outrider_extender_nodes_filtered_total{reason="insufficient_gpus"} 1.0' in text


async def test_budget_returns_best_answer_so_far() -> None:
    cache = ClusterCache()
    names = []
    for i in range(600):
        name = f"n{i}"
        # Distinct free-GPU counts so the per-shape memo cannot answer everything at once.
        cache.upsert_node(make_node(name, "h100-sxm5-80gb-x8"))
        cache.upsert_pod(make_pod(f"busy{i}", i % 8, node_name=name))
        names.append(name)
    config = ExtenderConfig(budget_ms=1e-6)
    async for c in _serve(config, cache):
        status, body = await c.post("filter", {"Pod": make_pod("p", 1), "NodeNames": names})
        assert status == 200
        assert len(body["NodeNames"]) < 600, "a 1 ns budget must stop early"
        assert body["NodeNames"], "nodes found before the deadline are kept"
        assert any("time budget" in r for r in body["FailedNodes"].values())
        status, prio = await c.post("prioritize", {"Pod": make_pod("p", 1), "NodeNames": names})
        assert status == 200 and len(prio) == 600
        text = await c.metrics()
        assert 'outrider_extender_budget_exhausted_total{verb="filter"} 1.0' in text
        assert 'outrider_extender_budget_exhausted_total{verb="prioritize"} 1.0' in text


async def test_healthz(client: Client) -> None:
    async with client.session.get(f"{client.base}/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["nodes"] == 5
    client.service.ready = lambda: False
    async with client.session.get(f"{client.base}/healthz") as resp:
        assert resp.status == 503


async def test_livez_answers_while_the_loop_runs_even_before_sync(client: Client) -> None:
    client.service.ready = lambda: False  # syncing: not ready, but alive (liveness must not kill it)
    async with client.session.get(f"{client.base}/livez") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "alive"


async def test_forecast_headroom_reads_inferencedeployment_status() -> None:
    from outrider_scheduler.extender.config import StrategySettings

    cache = ClusterCache()
    cache.upsert_node(make_node("roomy", "h100-sxm5-80gb-x8"))
    cache.upsert_node(make_node("tight", "h100-sxm5-80gb-x8"))
    cache.upsert_pod(make_pod("busy", 6, node_name="tight"))
    only_headroom = {name: StrategySettings(weight=0) for name in ExtenderConfig().strategies}
    only_headroom["forecastHeadroom"] = StrategySettings(weight=1)
    pod = make_pod("p", 2, deployment="chat", namespace="prod")
    body = {"Pod": pod, "NodeNames": ["roomy", "tight"]}
    async for c in _serve(ExtenderConfig(strategies=only_headroom), cache):
        _, prio = await c.post("prioritize", body)
        assert {e["Host"]: e["Score"] for e in prio} == {"roomy": 10, "tight": 10}, (
            "no forecast: no preference"
        )
        cache.upsert_deployment(
            {
                "apiVersion": "outrider.dev/v1alpha1",
                "kind": "InferenceDeployment",
                "metadata": {"name": "chat", "namespace": "prod"},
                "status": {"replicas": 2, "forecast": {"recommendedReplicas": 5}},
            }
        )
        _, prio = await c.post("prioritize", body)
        scores = {e["Host"]: e["Score"] for e in prio}
        assert scores["roomy"] == 10 and scores["tight"] < 10, "room for the 3 forecast replicas wins"
