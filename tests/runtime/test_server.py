"""The V2 / Triton HTTP server over real HTTP on 127.0.0.1, driven by tritonclient and aiohttp."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from outrider_runtime.builtin_models import ensure_builtin
from outrider_runtime.config import PrecisionPolicy
from outrider_runtime.pipeline import build_pipeline, pad_rows
from outrider_runtime.precision import AdaptivePolicy

Call = Callable[..., Any]


def ids_input(ids: np.ndarray, binary: bool = True) -> th.InferInput:
    t = th.InferInput("input_ids", list(ids.shape), "INT64")
    t.set_data_from_numpy(ids.astype(np.int64), binary_data=binary)
    return t


def text_input(texts: list[str]) -> th.InferInput:
    t = th.InferInput("text", [len(texts)], "BYTES")
    t.set_data_from_numpy(np.array([s.encode() for s in texts], dtype=np.object_))
    return t


async def test_tritonclient_end_to_end(tiny_config: Call, server_factory: Call, triton: Call) -> None:
    async with server_factory(tiny_config()) as srv:
        c = triton(srv.url)
        assert await c.is_server_live()
        assert await c.is_server_ready()
        assert await c.is_model_ready("tiny")
        meta = await c.get_server_metadata()
        assert "binary_tensor_data" in meta["extensions"]
        mmeta = await c.get_model_metadata("tiny")
        assert {i["name"] for i in mmeta["inputs"]} == {"text", "input_ids", "attention_mask"}
        assert mmeta["outputs"][0]["shape"] == [-1, 32]
        cfg = await c.get_model_config("tiny")
        assert cfg["max_batch_size"] == 8
        assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 5000

        # binary tensors in and out (tritonclient's default) must equal an in-process run
        ids = np.array([[101, 2023, 2003, 102, 0], [101, 7592, 102, 0, 0]], dtype=np.int64)
        mask = (ids != 0).astype(np.int64)
        m = th.InferInput("attention_mask", list(mask.shape), "INT64")
        m.set_data_from_numpy(mask)
        res = await c.infer("tiny", [ids_input(ids), m])
        got = res.as_numpy("embeddings")
        assert res.get_response()["outputs"][0]["parameters"]["binary_data_size"] == got.nbytes
        pipe = build_pipeline(ensure_builtin("tiny-bert") / "model.onnx", [], PrecisionPolicy.FP32)
        ref = pipe.run(pad_rows([ids[0, :4], ids[1, :3]]))
        pipe.close()
        np.testing.assert_allclose(got, ref, atol=1e-5)

        # JSON tensors in and out
        out = th.InferRequestedOutput("embeddings", binary_data=False)
        res = await c.infer("tiny", [ids_input(ids[:1, :4], binary=False)], outputs=[out])
        assert "binary_data_size" not in res.get_response()["outputs"][0].get("parameters", {})
        np.testing.assert_allclose(res.as_numpy("embeddings"), ref[:1], atol=1e-5)

        # text is tokenized server-side
        res = await c.infer("tiny", [text_input(["hello world", "a much longer sentence here"])])
        emb = res.as_numpy("embeddings")
        assert emb.shape == (2, 32)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

        stats = (await c.get_inference_statistics("tiny"))["model_stats"][0]
        assert stats["inference_stats"]["success"]["count"] == 3
        assert stats["inference_count"] == 5
        assert stats["batch_stats"]
        assert (await c.get_inference_statistics())["model_stats"][0]["name"] == "tiny"


async def test_repository_extension(tiny_config: Call, server_factory: Call, triton: Call) -> None:
    async with server_factory(tiny_config()) as srv:
        c = triton(srv.url)
        index = await c.get_model_repository_index()  # empty body
        assert index == [{"name": "tiny", "version": "1", "state": "READY", "reason": "serving"}]
        await c.unload_model("tiny")
        assert not await c.is_model_ready("tiny")
        assert not await c.is_server_ready()
        with pytest.raises(InferenceServerException) as err:
            await c.infer("tiny", [ids_input(np.array([[101, 102]]))])
        assert err.value.status() == "503"
        override = {
            "max_batch_size": 4,
            "dynamic_batching": {"max_queue_delay_microseconds": 2000},
            "parameters": {"precision": {"string_value": "int8"}},
        }
        await c.load_model("tiny", config=json.dumps(override))
        assert await c.is_model_ready("tiny")
        cfg = await c.get_model_config("tiny")
        assert cfg["max_batch_size"] == 4
        assert cfg["parameters"]["precision"]["string_value"] == "int8"
        res = await c.infer("tiny", [ids_input(np.array([[101, 2000, 102]]))])
        assert res.get_response()["parameters"]["precision"] == "int8"
        with pytest.raises(InferenceServerException, match="unsupported fields"):
            await c.load_model("tiny", config=json.dumps({"max_batch_sise": 3}))
        with pytest.raises(InferenceServerException) as err:
            await c.load_model("nope")
        assert err.value.status() == "404"


async def _post(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(url, data=data, headers=headers) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (
            {"inputs": [{"name": "input_idz", "datatype": "INT64", "shape": [1, 2], "data": [1, 2]}]},
            400,
            "input_idz",
        ),
        (
            {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 3], "data": [1, 2]}]},
            400,
            "shape",
        ),
        (
            {"inputs": [{"name": "input_ids", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]},
            400,
            "INT64",
        ),
        (
            {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [2], "data": [1, 2]}]},
            400,
            "[batch, seq]",
        ),
        ({"inputs": [{"name": "text", "datatype": "INT64", "shape": [1], "data": [1]}]}, 400, "BYTES"),
        (
            {"inputs": [{"name": "input_ids", "datatype": "INT65", "shape": [1], "data": [1]}]},
            400,
            "datatype",
        ),
        (
            {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 1], "data": [99999999]}]},
            400,
            "outside",
        ),
        ({"nothing": 1}, 400, "inputs"),
        (b"{not json", 400, "JSON"),
        (
            {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [9, 1], "data": [101] * 9}]},
            400,
            "maxBatchSize is 8",
        ),
        (
            {
                "inputs": [
                    {"name": "input_ids", "datatype": "INT64", "shape": [1, 3], "data": [101, 102, 103]},
                    {"name": "attention_mask", "datatype": "INT64", "shape": [1, 3], "data": [0, 1, 1]},
                ]
            },
            400,
            "right-padded",
        ),
        (
            {
                "inputs": [
                    {"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [101, 102]},
                    {"name": "attention_mask", "datatype": "INT64", "shape": [1, 2], "data": [2, 1]},
                ]
            },
            400,
            "only 0 and 1",
        ),
        (
            {
                "inputs": [
                    {"name": "input_ids", "datatype": "INT64", "shape": [4294967296, 4294967296], "data": []}
                ]
            },
            400,
            "maxBatchSize is 8",
        ),
        (
            {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 4294967296], "data": []}]},
            400,
            "tokens per row",
        ),
        (
            {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [2, 3], "data": [1, 2]}]},
            400,
            "needs",
        ),
        (
            {
                "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [101, 102]}],
                "outputs": [{"name": "logits"}],
            },
            400,
            "unknown output",
        ),
    ],
)
async def test_bad_requests_get_v2_errors(
    tiny_config: Call, server_factory: Call, body: Any, status: int, needle: str
) -> None:
    async with server_factory(tiny_config()) as srv, aiohttp.ClientSession() as s:
        code, _, payload = await _post(s, f"http://{srv.url}/v2/models/tiny/infer", body)
        assert code == status
        assert needle in payload["error"]


async def test_unknown_model_and_oversized_body(tiny_config: Call, server_factory: Call) -> None:
    cfg = tiny_config(server={"maxRequestBytes": 4096})
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        ok = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [101, 102]}]}
        code, _, payload = await _post(s, f"http://{srv.url}/v2/models/other/infer", ok)
        assert code == 404 and "other" in payload["error"]
        async with s.get(f"http://{srv.url}/v2/models/other") as r:
            assert r.status == 404
        big = {
            "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2000], "data": [101] * 2000}]
        }
        code, _, payload = await _post(s, f"http://{srv.url}/v2/models/tiny/infer", big)
        assert code == 400 and "exceeds" in payload["error"]
        # binary size mismatch
        head = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input_ids",
                        "datatype": "INT64",
                        "shape": [1, 4],
                        "parameters": {"binary_data_size": 16},
                    }
                ]
            }
        ).encode()
        code, _, payload = await _post(
            s,
            f"http://{srv.url}/v2/models/tiny/infer",
            head + b"\0" * 16,
            {"Inference-Header-Content-Length": str(len(head))},
        )
        assert code == 400 and "do not match" in payload["error"]


async def test_overload_answers_429_with_retry_after(tiny_config: Call, server_factory: Call) -> None:
    cfg = tiny_config(batching={"maxBatchSize": 64, "minBatchDelayMs": 400}, server={"maxQueueSize": 2})
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        ok = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [101, 102]}]}
        url = f"http://{srv.url}/v2/models/tiny/infer"
        results = await asyncio.gather(*(_post(s, url, ok) for _ in range(6)))
        codes = sorted(r[0] for r in results)
        assert codes.count(200) == 2 and codes.count(429) == 4
        rejected = [r for r in results if r[0] == 429]
        assert all(int(r[1]["Retry-After"]) >= 1 for r in rejected)
        assert "queue is full" in rejected[0][2]["error"]


async def test_warm_state_readiness_and_admin(tiny_config: Call, server_factory: Call, triton: Call) -> None:
    cfg = tiny_config(server={"startState": "warm"})
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        base = f"http://{srv.url}"
        async with s.get(f"{base}/v2/health/ready") as r:
            assert r.status == 503 and (await r.json())["models"] == {"tiny": "warm"}
        async with s.get(f"{base}/v2/health/live") as r:
            assert r.status == 200
        ok = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [101, 102]}]}
        code, headers, payload = await _post(s, f"{base}/v2/models/tiny/infer", ok)
        assert code == 503 and "warm" in payload["error"] and "Retry-After" in headers
        assert srv.server.models["tiny"].pipelines  # warm = sessions built already
        code, _, payload = await _post(s, f"{base}/v2/admin/state", {"state": "serving"})
        assert code == 200 and payload["state"] == "serving"
        async with s.get(f"{base}/v2/health/ready") as r:
            assert r.status == 200
        code, _, _ = await _post(s, f"{base}/v2/models/tiny/infer", ok)
        assert code == 200
        code, _, payload = await _post(s, f"{base}/v2/admin/state", {"state": "hot"})
        assert code == 400 and "state: Input should be 'cold', 'warm' or 'serving'" in payload["error"]
        code, _, payload = await _post(s, f"{base}/v2/admin/batching", {"maxBatchSise": 3})
        assert code == 400 and "maxBatchSise" in payload["error"]
        code, _, payload = await _post(s, f"{base}/v2/admin/state", {"state": "cold"})
        assert code == 200 and not srv.server.models["tiny"].pipelines
        async with s.get(f"{base}/metrics") as r:
            text = await r.text()
        assert 'outrider_runtime_model_state{model="tiny",state="cold"} 1.0' in text
        assert 'outrider_runtime_requests_total{model="tiny",outcome="success"} 1.0' in text
        assert 'outrider_runtime_request_failures_total{code="503",model="tiny"} 1.0' in text


async def test_live_resize_under_load_loses_nothing(tiny_config: Call, server_factory: Call) -> None:
    cfg = tiny_config(batching={"maxBatchSize": 2, "minBatchDelayMs": 2})
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        url = f"http://{srv.url}/v2/models/tiny/infer"
        errors: list[int] = []
        done = 0

        async def client(k: int) -> None:
            nonlocal done
            for i in range(25):
                n = 2 + (k + i) % 9
                body = {
                    "inputs": [
                        {
                            "name": "input_ids",
                            "datatype": "INT64",
                            "shape": [1, n],
                            "data": [101] + [2000 + k] * (n - 2) + [102],
                        }
                    ]
                }
                code, _, payload = await _post(s, url, body)
                if code != 200:
                    errors.append(code)
                else:
                    assert payload["outputs"][0]["shape"] == [1, 32]
                    done += 1

        async def resizer() -> None:
            for size in (16, 1, 32, 4, 8):
                await asyncio.sleep(0.1)
                code, _, payload = await _post(
                    s, f"http://{srv.url}/v2/admin/batching", {"maxBatchSize": size, "minBatchDelayMs": 3}
                )
                assert code == 200 and payload["maxBatchSize"] == size

        await asyncio.gather(resizer(), *(client(k) for k in range(12)))
        assert errors == [] and done == 300
        model = srv.server.models["tiny"]
        assert model.settings.max_batch_size == 8
        assert all(b.settings.max_batch_size == 8 for b in model.batchers.values())
        sizes = {size for size in model.stats.batches}
        assert max(sizes) > 2  # batches really grew past the starting limit


async def test_adaptive_sharded_model_over_http(
    tiny_config: Call, server_factory: Call, triton: Call
) -> None:
    cfg = tiny_config(
        precision={"policy": "adaptive", "accuracyFloor": "0.9"},
        shards=[
            {"name": "attn", "layers": ["embeddings", "attention"], "maxBatchSize": 2},
            {"name": "ffn", "layers": ["ffn", "head"], "maxBatchSize": 4},
        ],
    )
    async with server_factory(cfg) as srv:
        c = triton(srv.url)
        model = srv.server.models["tiny"]
        assert model.policy is not None and model.policy.low_buckets  # tiny int8 agrees well above 0.9
        assert model.agreement["int8"] >= 0.9
        # route deterministically: only requests of up to 16 tokens run int8
        model.policy = AdaptivePolicy(floor=0.9, low=PrecisionPolicy.INT8, low_buckets=frozenset({8, 16}))
        res = await c.infer("tiny", [text_input(["short one"])])
        assert res.get_response()["parameters"]["precision"] == "int8"
        res = await c.infer("tiny", [text_input([" ".join(["word"] * 40)])])
        assert res.get_response()["parameters"]["precision"] == "fp32"
        cfg_json = await c.get_model_config("tiny")
        assert [g["name"] for g in cfg_json["instance_group"]] == ["attn", "ffn"]
        from prometheus_client import generate_latest

        text = generate_latest(srv.registry).decode()
        assert 'outrider_runtime_precision_agreement_ratio{model="tiny",precision="int8"}' in text
        assert 'outrider_runtime_precision_requests_total{model="tiny",precision="fp32"} 1.0' in text


async def test_a_failed_reload_leaves_the_model_serving_as_before(
    tiny_config: Call, server_factory: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outrider_runtime import model_sessions as models_module

    ok = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [101, 102]}]}
    async with server_factory(tiny_config()) as srv, aiohttp.ClientSession() as s:
        url = f"http://{srv.url}/v2/models/tiny/infer"
        assert (await _post(s, url, ok))[0] == 200
        real = models_module.build_pipeline

        def failing(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("simulated build failure")

        monkeypatch.setattr(models_module, "build_pipeline", failing)
        override = {"parameters": {"config": json.dumps({"parameters": {"precision": "int8"}})}}
        code, _, payload = await _post(s, f"http://{srv.url}/v2/repository/models/tiny/load", override)
        assert code >= 400 and "simulated build failure" in payload["error"]
        # still fp32, still serving: requests succeed and readiness is true
        code, _, payload = await _post(s, url, ok)
        assert code == 200 and payload["parameters"]["precision"] == "fp32"
        async with s.get(f"http://{srv.url}/v2/health/ready") as r:
            assert r.status == 200
        monkeypatch.setattr(models_module, "build_pipeline", real)
        code, _, _ = await _post(s, f"http://{srv.url}/v2/repository/models/tiny/load", override)
        assert code == 200
        code, _, payload = await _post(s, url, ok)
        assert code == 200 and payload["parameters"]["precision"] == "int8"


async def test_shortening_the_delay_live_releases_a_waiting_request(
    tiny_config: Call, server_factory: Call
) -> None:
    cfg = tiny_config(batching={"maxBatchSize": 64, "minBatchDelayMs": 8000})
    ok = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [101, 102]}]}
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        started = asyncio.get_running_loop().time()
        pending = asyncio.ensure_future(_post(s, f"http://{srv.url}/v2/models/tiny/infer", ok))
        await asyncio.sleep(0.3)
        async with s.post(f"http://{srv.url}/v2/admin/batching", json={"minBatchDelayMs": 1}) as r:
            assert r.status == 200
        code, _, _ = await asyncio.wait_for(pending, 5)
        assert code == 200 and asyncio.get_running_loop().time() - started < 4
