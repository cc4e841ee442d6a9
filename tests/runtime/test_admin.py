"""The planner's admin contract over real HTTP and gRPC: /v2/admin/load, admin bodies, /v2/health/settled."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import numpy as np
import pytest
import tritonclient.grpc as tg

from outrider_operator.api.runtime import BatchingSettings, RuntimeLoad
from outrider_runtime import model_handle

Call = Callable[..., Any]

ONE_ROW = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [101, 102]}]}
TWO_ROWS = {
    "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [2, 3], "data": [101, 7, 102] * 2}]
}
BAD_INPUT = {"inputs": [{"name": "input_idz", "datatype": "INT64", "shape": [1, 2], "data": [1, 2]}]}


async def _post(s: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with s.post(url, data=json.dumps(body).encode()) as r:
        return r.status, await r.json(content_type=None)


async def _get(s: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with s.get(url) as r:
        return r.status, await r.json(content_type=None)


async def _load(s: aiohttp.ClientSession, base: str, model: str | None = None) -> dict[str, Any]:
    code, body = await _get(s, f"{base}/v2/admin/load" + (f"?model={model}" if model else ""))
    assert code == 200, body
    RuntimeLoad.model_validate(body)  # the planner parses it with the shared model
    return dict(body)


def _grpc_infer(url: str) -> None:
    c = tg.InferenceServerClient(url)
    try:
        a = tg.InferInput("input_ids", [1, 3], "INT64")
        a.set_data_from_numpy(np.array([[101, 2000, 102]], dtype=np.int64))
        c.infer("tiny", [a])
    finally:
        c.close()


async def test_load_counts_every_outcome_over_http_and_grpc(tiny_config: Call, server_factory: Call) -> None:
    # a long batch delay keeps requests queued long enough to be seen, and a queue of 2 makes 429s
    cfg = tiny_config(
        batching={"maxBatchSize": 64, "minBatchDelayMs": 400},
        server={"maxQueueSize": 2, "batchConcurrency": 3},
    )
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        base = f"http://{srv.url}"
        infer = f"{base}/v2/models/tiny/infer"
        first = await _load(s, base)
        assert first["model"] == "tiny" and first["state"] == first["requestedState"] == "serving"
        assert (first["loading"], first["draining"]) == (False, False)
        assert uuid.UUID(first["bootId"]).version == 4
        assert [first[k] for k in ("received", "completed", "failed", "rejected", "rowsCompleted")] == [0] * 5
        assert (first["inflight"], first["queueDepth"], first["queueLimit"], first["workers"]) == (0, 0, 2, 3)
        assert first["latency"] == {"windowSeconds": 2.0, "count": 0}  # no percentiles without requests
        assert first["batchStats"] == []

        # one request waiting for its batch is in flight and queued
        pending = asyncio.ensure_future(_post(s, infer, TWO_ROWS))
        for _ in range(100):
            now = await _load(s, base)
            if now["queueDepth"]:
                break
            await asyncio.sleep(0.01)
        assert (now["received"], now["inflight"], now["queueDepth"]) == (1, 1, 1)
        assert (now["completed"], now["failed"]) == (0, 0)
        # one more fills the queue of 2; four more are refused with 429
        results = await asyncio.gather(pending, *(_post(s, infer, ONE_ROW) for _ in range(5)))
        codes = sorted(code for code, _ in results)
        assert codes == [200, 200, 429, 429, 429, 429], codes
        assert (await _post(s, infer, BAD_INPUT))[0] == 400
        await asyncio.to_thread(_grpc_infer, srv.grpc_url)  # gRPC goes through the same books

        load = await _load(s, base)
        assert load["received"] == 8
        assert load["completed"] == 3
        assert load["failed"] == 5  # four 429s and one 400
        assert load["rejected"] == 4
        assert load["rowsCompleted"] == 2 + 1 + 1
        assert (load["inflight"], load["queueDepth"]) == (0, 0)
        assert load["received"] == load["completed"] + load["failed"] + load["inflight"]
        assert load["bootId"] == first["bootId"] and load["uptimeSeconds"] > first["uptimeSeconds"]
        # the latency window holds the three successes, each of which waited out the 400 ms delay
        lat = load["latency"]
        assert lat["count"] == 3
        assert 400 <= lat["p50Ms"] <= lat["p99Ms"] < 5000
        # batch stats: the two HTTP requests went in one batch of 3 rows, gRPC's in one of 1
        assert {b["batchSize"]: b["count"] for b in load["batchStats"]} == {3: 1, 1: 1}
        assert all(b["seconds"] > 0 for b in load["batchStats"])
        assert load["batching"] == {
            "model": "tiny",
            "maxBatchSize": 64,
            "minBatchDelayMs": 400.0,
            "lookaheadWindow": 2,
            "dynamic": "Enabled",
        }
        assert (await _get(s, f"{base}/v2/admin/load?model=tiny"))[1]["received"] == 8
        code, body = await _get(s, f"{base}/v2/admin/load?model=nope")
        assert code == 404 and "nope" in body["error"]


async def test_latency_window_empties_after_the_window(tiny_config: Call, server_factory: Call) -> None:
    cfg = tiny_config(batching={"minBatchDelayMs": 0}, server={"latencyWindowS": 0.5})
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        base = f"http://{srv.url}"
        for _ in range(5):
            assert (await _post(s, f"{base}/v2/models/tiny/infer", ONE_ROW))[0] == 200
        lat = (await _load(s, base))["latency"]
        assert lat["windowSeconds"] == 0.5 and lat["count"] == 5
        assert 0 < lat["p50Ms"] <= lat["p99Ms"]
        await asyncio.sleep(0.6)
        load = await _load(s, base)
        assert load["latency"] == {"windowSeconds": 0.5, "count": 0}
        assert load["completed"] == 5  # the counters are cumulative; only the window forgets


async def test_boot_id_differs_between_server_instances(tiny_config: Call, server_factory: Call) -> None:
    cfg = tiny_config(server={"startState": "cold"})  # nothing to build: both start at once
    async with (
        server_factory(cfg) as a,
        server_factory(cfg) as b,
        aiohttp.ClientSession() as s,
    ):
        first_a = await _load(s, f"http://{a.url}")
        first_b = await _load(s, f"http://{b.url}")
        assert first_a["bootId"] != first_b["bootId"]
        assert (await _load(s, f"http://{a.url}"))["bootId"] == first_a["bootId"]


@pytest.fixture
def build_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Model builds wait until the returned event is set (it is set at the latest on teardown)."""
    gate = threading.Event()
    real_build = model_handle.build_model

    def gated_build(config: Any, precision: Any) -> Any:
        assert gate.wait(30), "the test never opened the gate"
        return real_build(config, precision)

    monkeypatch.setattr(model_handle, "build_model", gated_build)
    yield gate
    gate.set()


async def _until_loading(s: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    for _ in range(300):
        load = await _load(s, base)
        if load["loading"]:
            return load
        await asyncio.sleep(0.01)
    return load


async def test_requested_state_and_settled_follow_admin_state(
    tiny_config: Call, server_factory: Call, monkeypatch: pytest.MonkeyPatch, build_gate: threading.Event
) -> None:
    async with (
        server_factory(tiny_config(server={"startState": "cold"})) as srv,
        aiohttp.ClientSession() as s,
    ):
        base = f"http://{srv.url}"

        async def settled() -> tuple[int, dict[str, Any]]:
            return await _get(s, f"{base}/v2/health/settled")

        # a cold pod asked to be cold is settled (Ready), though not V2-ready
        code, body = await settled()
        assert code == 200 and body["settled"] is True and body["reasons"] == []
        assert body["models"] == {"tiny": {"state": "cold", "requestedState": "cold", "loading": False}}
        assert (await _get(s, f"{base}/v2/health/ready"))[0] == 503

        # cold -> serving: requestedState moves at once, settled is 503 while the build runs
        move = asyncio.ensure_future(_post(s, f"{base}/v2/admin/state", {"state": "serving"}))
        try:
            load = await _until_loading(s, base)
            assert (load["state"], load["requestedState"], load["loading"]) == ("cold", "serving", True)
            code, body = await settled()
            assert code == 503 and body["settled"] is False
            assert "model tiny is loading" in body["reasons"]
            assert "model tiny is cold, serving was requested" in body["reasons"]
        finally:
            build_gate.set()
            answer = await move
        assert answer == (200, {"model": "tiny", "state": "serving"})
        load = await _load(s, base)
        assert (load["state"], load["requestedState"], load["loading"]) == ("serving", "serving", False)
        assert (await settled())[0] == 200
        assert (await _get(s, f"{base}/v2/health/ready"))[0] == 200

        # serving -> warm: settled (a warm pod is Ready once loaded), V2 readiness is not
        assert (await _post(s, f"{base}/v2/admin/state", {"state": "warm"}))[0] == 200
        assert (await _load(s, base))["requestedState"] == "warm"
        assert (await settled())[0] == 200
        assert (await _get(s, f"{base}/v2/health/ready"))[0] == 503

        # the repository extension asks too: unload -> cold, load -> serving
        assert (await _post(s, f"{base}/v2/repository/models/tiny/unload", {}))[0] == 200
        load = await _load(s, base)
        assert (load["state"], load["requestedState"]) == ("cold", "cold")
        assert (await settled())[0] == 200
        assert (await _post(s, f"{base}/v2/repository/models/tiny/load", {}))[0] == 200
        assert (await _load(s, base))["requestedState"] == "serving"
        assert (await settled())[0] == 200

        # a failed load leaves the model short of what was asked: not settled, and it says why
        assert (await _post(s, f"{base}/v2/admin/state", {"state": "cold"}))[0] == 200

        def failing_build(config: Any, precision: Any) -> Any:
            raise RuntimeError("simulated build failure")

        monkeypatch.setattr(model_handle, "build_model", failing_build)
        code, body = await _post(s, f"{base}/v2/admin/state", {"state": "warm"})
        assert code == 500 and "simulated build failure" in body["error"]
        code, body = await settled()
        assert code == 503 and not (await _load(s, base))["loading"]
        assert "model tiny is cold, warm was requested" in body["reasons"][0]
        assert "simulated build failure" in body["reasons"][0]

        # a draining server is never settled
        assert (await _post(s, f"{base}/v2/admin/state", {"state": "cold"}))[0] == 200
        assert (await settled())[0] == 200
        await srv.server.drain(timeout_s=1)
        code, body = await settled()
        assert code == 503 and body["draining"] is True and body["reasons"] == ["the server is draining"]
        assert (await _load(s, base))["draining"] is True


async def test_a_state_asked_for_during_a_load_is_the_one_reached(
    tiny_config: Call, server_factory: Call, build_gate: threading.Event
) -> None:
    async with (
        server_factory(tiny_config(server={"startState": "cold"})) as srv,
        aiohttp.ClientSession() as s,
    ):
        base = f"http://{srv.url}"
        to_serving = asyncio.ensure_future(_post(s, f"{base}/v2/admin/state", {"state": "serving"}))
        try:
            assert (await _until_loading(s, base))["loading"]
            # the model is still cold, but cold is not where it will be once the load ends: it unloads
            to_cold = asyncio.ensure_future(_post(s, f"{base}/v2/admin/state", {"state": "cold"}))
            await asyncio.sleep(0.05)
            assert (await _load(s, base))["requestedState"] == "cold"
        finally:
            build_gate.set()
            first = await to_serving
        assert first[0] == 200
        assert await to_cold == (200, {"model": "tiny", "state": "cold"})
        load = await _load(s, base)
        assert (load["state"], load["requestedState"]) == ("cold", "cold")
        assert (await _get(s, f"{base}/v2/health/settled"))[0] == 200


@pytest.mark.parametrize(
    ("route", "body", "needles"),
    [
        ("state", {"state": "hot"}, ["state:", "'cold', 'warm' or 'serving'", '"hot"']),
        ("state", {}, ["state: Field required"]),
        ("state", {"state": "warm", "modle": "tiny"}, ["modle: Extra inputs are not permitted"]),
        ("batching", {"maxBatchSize": 0}, ["maxBatchSize: Input should be greater than or equal to 1"]),
        ("batching", {"maxBatchSize": 5000}, ["maxBatchSize:", "4096"]),
        ("batching", {"maxBatchSize": True}, ["maxBatchSize: Input should be a valid integer"]),
        ("batching", {"maxBatchSize": "8"}, ["maxBatchSize: Input should be a valid integer"]),
        ("batching", {"maxBatchSize": 2.5}, ["maxBatchSize:"]),
        ("batching", {"minBatchDelayMs": -1}, ["minBatchDelayMs:"]),
        ("batching", {"lookaheadWindow": 65}, ["lookaheadWindow:"]),
        ("batching", {"dynamic": "enabled"}, ["dynamic:", "'Enabled' or 'Disabled'"]),
        ("batching", {"maxBatchSise": 3}, ["maxBatchSise: Extra inputs are not permitted", "maxBatchSize"]),
    ],
)
async def test_bad_admin_bodies_are_400_naming_the_field(
    tiny_config: Call, server_factory: Call, route: str, body: Any, needles: list[str]
) -> None:
    async with (
        server_factory(tiny_config(server={"startState": "cold"})) as srv,
        aiohttp.ClientSession() as s,
    ):
        base = f"http://{srv.url}"
        before = await _load(s, base)
        code, answer = await _post(s, f"{base}/v2/admin/{route}", body)
        assert code == 400, answer
        assert answer["error"].startswith(f"invalid body of POST /v2/admin/{route}: ")
        for needle in needles:
            assert needle in answer["error"]
        after = await _load(s, base)
        assert (after["batching"], after["requestedState"]) == (before["batching"], before["requestedState"])


async def test_non_object_admin_bodies_are_400(tiny_config: Call, server_factory: Call) -> None:
    async with (
        server_factory(tiny_config(server={"startState": "cold"})) as srv,
        aiohttp.ClientSession() as s,
    ):
        for route in ("state", "batching"):
            code, answer = await _post(s, f"http://{srv.url}/v2/admin/{route}", [1, 2])
            assert code == 400 and "JSON object" in answer["error"]


async def test_batching_answer_is_what_load_then_reports(tiny_config: Call, server_factory: Call) -> None:
    async with server_factory(tiny_config()) as srv, aiohttp.ClientSession() as s:
        base = f"http://{srv.url}"
        update = {"maxBatchSize": 4, "minBatchDelayMs": 1, "lookaheadWindow": 0, "dynamic": "Disabled"}
        code, answer = await _post(s, f"{base}/v2/admin/batching", update)
        assert code == 200
        assert answer == {"model": "tiny", **update, "minBatchDelayMs": 1.0}
        BatchingSettings.model_validate(answer)
        assert (await _load(s, base))["batching"] == answer
        # a subset changes only what it names
        code, answer = await _post(s, f"{base}/v2/admin/batching", {"model": "tiny", "dynamic": "Enabled"})
        assert code == 200 and answer == {
            "model": "tiny",
            **update,
            "minBatchDelayMs": 1.0,
            "dynamic": "Enabled",
        }
        assert (await _load(s, base))["batching"] == answer
        model = srv.server.models["tiny"]
        assert all(b.settings.max_batch_size == 4 and b.settings.dynamic for b in model.batchers.values())
        code, answer = await _post(s, f"{base}/v2/admin/batching", {"model": "other", "maxBatchSize": 2})
        assert code == 404 and "other" in answer["error"]


@pytest.mark.slow
async def test_load_over_real_minilm_traffic(tiny_config: Call, server_factory: Call) -> None:
    """The real all-MiniLM-L6-v2 under 8 concurrent text clients: the books add up."""
    cfg = tiny_config(
        model={"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
        batching={"maxBatchSize": 16, "minBatchDelayMs": 5},
        server={"intraOpThreads": 0},
    )
    sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        base = f"http://{srv.url}"

        async def client(k: int) -> None:
            for i in range(10):
                n = 1 + (k + i) % 3
                body = {
                    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [n], "data": sentences[:n]}]
                }
                code, answer = await _post(s, f"{base}/v2/models/minilm/infer", body)
                assert code == 200 and answer["outputs"][0]["shape"] == [n, 384]

        await asyncio.gather(*(client(k) for k in range(8)))
        load = await _load(s, base, "minilm")
        rows = sum(1 + (k + i) % 3 for k in range(8) for i in range(10))
        assert (load["received"], load["completed"], load["failed"], load["rowsCompleted"]) == (
            80,
            80,
            0,
            rows,
        )
        assert sum(b["batchSize"] * b["count"] for b in load["batchStats"]) == rows
        assert max(b["batchSize"] for b in load["batchStats"]) > 3  # concurrent requests were batched
        assert load["latency"]["count"] == 80 and 0 < load["latency"]["p50Ms"] <= load["latency"]["p99Ms"]


async def test_a_precision_change_under_load_fails_no_request(
    tiny_config: Call, server_factory: Call
) -> None:
    """8 clients keep inferring while the precision is switched and back: every answer is 200."""
    cfg = tiny_config(
        model={"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
        batching={"maxBatchSize": 16, "minBatchDelayMs": 5},
    )
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        base = f"http://{srv.url}"
        text = ["requests keep coming while the model changes precision"] * 4
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [4], "data": text}]}
        stop = asyncio.Event()
        codes: list[int] = []
        seen: set[str] = set()

        async def client() -> None:
            while not stop.is_set():
                code, answer = await _post(s, f"{base}/v2/models/minilm/infer", body)
                codes.append(code)
                if code == 200:
                    seen.add(answer["parameters"]["precision"])

        clients = [asyncio.create_task(client()) for _ in range(8)]
        await asyncio.sleep(0.3)
        for precision in ("fp16", "fp32"):
            config = json.dumps({"parameters": {"precision": {"string_value": precision}}})
            load_url = f"{base}/v2/repository/models/minilm/load"
            code, answer = await _post(s, load_url, {"parameters": {"config": config}})
            assert code == 200, answer
            await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
        failed = [c for c in codes if c != 200]
        assert not failed, (
            f"{len(failed)} of {len(codes)} requests failed across precision changes: {set(failed)}"
        )
        assert len(codes) > 50 and {"fp16", "fp32"} <= seen, seen
