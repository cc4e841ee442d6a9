"""The V2 gRPC endpoint, driven by tritonclient.grpc over real gRPC on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

Call = Callable[..., Any]


async def test_tritonclient_grpc_end_to_end(server_factory: Call, tiny_config: Call, triton: Call) -> None:
    async with server_factory(tiny_config()) as srv:

        def drive() -> dict[str, Any]:
            c = tg.InferenceServerClient(srv.grpc_url)
            out: dict[str, Any] = {
                "live": c.is_server_live(),
                "ready": c.is_server_ready(),
                "model_ready": c.is_model_ready("tiny"),
                "meta": c.get_model_metadata("tiny", as_json=True),
                "config": c.get_model_config("tiny", as_json=True),
                "index": c.get_model_repository_index(as_json=True),
            }
            ids = np.array([[101, 2023, 2003, 102]], dtype=np.int64)
            a = tg.InferInput("input_ids", list(ids.shape), "INT64")
            a.set_data_from_numpy(ids)
            out["ids"] = c.infer("tiny", [a]).as_numpy("embeddings")
            t = tg.InferInput("text", [2], "BYTES")
            t.set_data_from_numpy(np.array([b"hello world", b"a man is eating food"], dtype=np.object_))
            out["text"] = c.infer("tiny", [t]).as_numpy("embeddings")
            c.load_model("tiny", config=json.dumps({"max_batch_size": 3}))
            out["mbs"] = c.get_model_config("tiny", as_json=True)["config"]["max_batch_size"]
            out["stats"] = c.get_inference_statistics("tiny", as_json=True)
            bad = tg.InferInput("input_idz", [1, 2], "INT64")
            bad.set_data_from_numpy(np.array([[101, 102]], dtype=np.int64))
            try:
                c.infer("tiny", [bad])
            except InferenceServerException as exc:
                out["bad"] = (exc.status(), exc.message())
            try:
                c.infer("nope", [a])
            except InferenceServerException as exc:
                out["missing"] = exc.status()
            c.unload_model("tiny")
            out["after_unload"] = c.is_model_ready("tiny")
            c.close()
            return out

        r = await asyncio.to_thread(drive)
        assert r["live"] and r["ready"] and r["model_ready"]
        assert {i["name"] for i in r["meta"]["inputs"]} == {"text", "input_ids", "attention_mask"}
        assert r["config"]["config"]["max_batch_size"] == 8
        assert r["index"]["models"][0]["state"] == "READY"
        assert r["ids"].shape == (1, 32) and r["text"].shape == (2, 32)
        np.testing.assert_allclose(np.linalg.norm(r["text"], axis=1), 1.0, atol=1e-5)
        assert int(r["mbs"]) == 3
        stats = r["stats"]["model_stats"][0]
        assert int(stats["inference_stats"]["success"]["count"]) == 2
        assert r["bad"][0] == "StatusCode.INVALID_ARGUMENT" and "input_idz" in r["bad"][1]
        assert r["missing"] == "StatusCode.NOT_FOUND"
        assert r["after_unload"] is False

        # HTTP and gRPC serve the same numbers
        import tritonclient.http as th

        ids = np.array([[101, 2023, 2003, 102]], dtype=np.int64)
        await asyncio.to_thread(lambda: tg.InferenceServerClient(srv.grpc_url).load_model("tiny"))
        h = triton(srv.url)
        x = th.InferInput("input_ids", list(ids.shape), "INT64")
        x.set_data_from_numpy(ids)
        via_http = (await h.infer("tiny", [x])).as_numpy("embeddings")
        np.testing.assert_allclose(via_http, r["ids"], atol=1e-6)


@pytest.mark.parametrize("state", ["warm"])
async def test_grpc_not_serving_is_unavailable(server_factory: Call, tiny_config: Call, state: str) -> None:
    async with server_factory(tiny_config(server={"startState": state})) as srv:

        def drive() -> tuple[bool, str]:
            c = tg.InferenceServerClient(srv.grpc_url)
            a = tg.InferInput("input_ids", [1, 2], "INT64")
            a.set_data_from_numpy(np.array([[101, 102]], dtype=np.int64))
            try:
                c.infer("tiny", [a])
                status = "OK"
            except InferenceServerException as exc:
                status = str(exc.status())
            ready = c.is_server_ready()
            c.close()
            return ready, status

        ready, status = await asyncio.to_thread(drive)
        assert ready is False and status == "StatusCode.UNAVAILABLE"


async def test_tritonclient_grpc_with_requested_outputs(server_factory: Call, tiny_config: Call) -> None:
    # Triton answers gRPC with raw_output_contents whatever the request asks; tritonclient.grpc reads
    # only those, so typed contents came back as an empty array ("cannot reshape array of size 0")
    async with server_factory(tiny_config()) as srv:

        def drive() -> dict[str, Any]:
            c = tg.InferenceServerClient(srv.grpc_url)
            t = tg.InferInput("text", [2], "BYTES")
            t.set_data_from_numpy(np.array([b"hello world", b"a man is eating food"], dtype=np.object_))
            out = {"plain": c.infer("tiny", [t]).as_numpy("embeddings")}
            asked = c.infer("tiny", [t], outputs=[tg.InferRequestedOutput("embeddings")])
            out["asked"] = asked.as_numpy("embeddings")
            try:
                c.infer("tiny", [t], outputs=[tg.InferRequestedOutput("logits")])
            except InferenceServerException as exc:
                out["unknown"] = (exc.status(), exc.message())
            out["count"] = int(
                c.get_inference_statistics("tiny", as_json=True)["model_stats"][0]["inference_stats"][
                    "success"
                ]["count"]
            )
            c.close()
            return out

        r = await asyncio.to_thread(drive)
        assert r["asked"].shape == (2, 32)
        np.testing.assert_allclose(r["asked"], r["plain"], atol=1e-6)
        assert r["unknown"][0] == "StatusCode.INVALID_ARGUMENT" and "logits" in r["unknown"][1]
        assert r["count"] == 2, "an unknown requested output must be refused before computing"
