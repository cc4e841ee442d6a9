"""One large request never stalls the server: bounds are checked before decoding, text is cut before
tokenizing, and large bodies are prepared off the event loop (liveness keeps answering in < 1 s)."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from outrider_runtime.errors import BadRequestError
from outrider_runtime.server.limits import InputLimits, cut_utf8

Call = Callable[..., Any]
MILLION = 1_000_000
LIVENESS_S = 1.0
"""A kubelet liveness probe's default timeout."""
RSS_GROWTH_MIB = 150
"""Today's bound is a few MiB; before the fix these requests grew the process by 250 to 630 MiB."""


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


class LivenessProbe:
    """Polls /v2/health/live from its own thread (the server's loop cannot hide its own stalls)."""

    def __init__(self, url: str) -> None:
        self.url = f"http://{url}/v2/health/live"
        self.worst = 0.0
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=60) as r:
                r.read()
            self.worst = max(self.worst, time.perf_counter() - t)
            self.count += 1
            time.sleep(0.02)

    async def __aenter__(self) -> LivenessProbe:
        self._thread.start()
        while not self.count:  # the server answers on this loop: wait without blocking it
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)


def _binary_text(count: int, declared: int) -> tuple[bytes, dict[str, str]]:
    blob = struct.pack("<I", 0) * count
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [declared],
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    )
    return head + blob, {"Inference-Header-Content-Length": str(len(head))}


def _binary_ids(shape: list[int]) -> tuple[bytes, dict[str, str]]:
    blob = np.ones(shape, dtype=np.int64).tobytes()
    spec = {
        "name": "input_ids",
        "datatype": "INT64",
        "shape": shape,
        "parameters": {"binary_data_size": len(blob)},
    }
    head = orjson.dumps({"inputs": [spec]})
    return head + blob, {"Inference-Header-Content-Length": str(len(head))}


def _json_text(texts: list[str], shape: list[int]) -> tuple[bytes, dict[str, str]]:
    return orjson.dumps(
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": shape, "data": texts}]}
    ), {}


BIG: list[tuple[str, Callable[[], tuple[bytes, dict[str, str]]], int, str]] = [
    ("a million empty BYTES elements", lambda: _binary_text(MILLION, MILLION), 400, "maxBatchSize"),
    ("a million elements under a shape of one", lambda: _binary_text(MILLION, 1), 400, "more were sent"),
    ("a million empty strings as JSON", lambda: _json_text([""] * MILLION, [MILLION]), 400, "maxBatchSize"),
    (
        "a million strings under a shape of one",
        lambda: _json_text([""] * MILLION, [1]),
        400,
        "needs 1 elements",
    ),
    ("an 8 MB text", lambda: _json_text([("lorem ipsum " * 700_000)[:8_000_000]], [1]), 200, "embeddings"),
    ("a 1M-token row", lambda: _binary_ids([1, MILLION]), 400, "tokens per row"),
]


@pytest.mark.parametrize(("what", "make", "status", "says"), BIG, ids=[b[0] for b in BIG])
async def test_one_large_request_never_stalls_liveness(
    server_factory: Call, tiny_config: Call, what: str, make: Callable[[], Any], status: int, says: str
) -> None:
    body, headers = make()
    async with server_factory(tiny_config()) as srv, aiohttp.ClientSession() as s:
        before = _rss_mib()
        async with LivenessProbe(srv.url) as probe:
            async with s.post(f"http://{srv.url}/v2/models/tiny/infer", data=body, headers=headers) as r:
                text = await r.text()
                assert r.status == status, f"{what}: {r.status} {text[:300]}"
                assert says in text, text[:300]
            await asyncio.sleep(0.1)  # a probe after the request, too
        grown = _rss_mib() - before
    assert probe.worst < LIVENESS_S, f"{what}: /v2/health/live took {probe.worst:.2f}s"
    assert grown < RSS_GROWTH_MIB, f"{what}: the process grew by {grown:.0f} MiB"


async def test_grpc_refuses_a_million_rows_before_decoding(server_factory: Call, tiny_config: Call) -> None:
    import tritonclient.grpc as tg

    async with server_factory(tiny_config()) as srv:
        client = tg.InferenceServerClient(srv.grpc_url)
        inp = tg.InferInput("text", [MILLION], "BYTES")
        inp.set_data_from_numpy(np.full(MILLION, b"", dtype=np.object_))
        async with LivenessProbe(srv.url) as probe:
            with pytest.raises(Exception, match="maxBatchSize") as info:
                await asyncio.to_thread(client.infer, "tiny", [inp])
        client.close()
    assert "INVALID_ARGUMENT" in str(info.value) or "StatusCode.INVALID_ARGUMENT" in repr(info.value)
    assert probe.worst < LIVENESS_S


async def test_a_long_text_embeds_as_its_tokenizer_truncates_it(
    server_factory: Call, tiny_config: Call
) -> None:
    """Cutting text before tokenizing changes no answer: the embedding equals that of the tokens a
    tokenizer truncating the whole text would give."""
    from tokenizers import Tokenizer

    words = " ".join(f"word{i % 97} is number {i}," for i in range(20_000))  # ~460 KB
    async with server_factory(tiny_config()) as srv, aiohttp.ClientSession() as s:
        m = srv.server.models["tiny"]
        assert len(words) > 4 * srv.server.limits(m).max_text_chars
        url = f"http://{srv.url}/v2/models/tiny/infer"
        body, _ = _json_text([words], [1])
        async with s.post(url, data=body) as r:
            assert r.status == 200, await r.text()
            by_text = np.asarray((await r.json())["outputs"][0]["data"], dtype=np.float32)
        assert m.tokenizer is not None
        tok = Tokenizer.from_str(m.tokenizer._tok.to_str())
        tok.no_padding()
        tok.enable_truncation(m.max_len)
        ids = tok.encode(words).ids
        assert len(ids) == m.max_len
        ids_body = {
            "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, len(ids)], "data": ids}]
        }
        async with s.post(url, data=orjson.dumps(ids_body)) as r:
            assert r.status == 200, await r.text()
            by_ids = np.asarray((await r.json())["outputs"][0]["data"], dtype=np.float32)
    np.testing.assert_allclose(by_text, by_ids, atol=1e-6)


def test_cut_utf8_drops_only_a_character_the_cut_splits() -> None:
    text = "é" * 10  # two bytes each
    assert cut_utf8(text.encode(), 3) == "ééé"
    assert cut_utf8("a€".encode() * 2, 1) == "a"  # the 4 bytes read end on a character boundary
    assert cut_utf8(("ab" + "€" * 5).encode(), 2) == "ab"
    assert cut_utf8(b"x" * 7 + "€".encode(), 2) == "xx"
    with pytest.raises(BadRequestError, match="not valid UTF-8"):
        cut_utf8(b"\xff" + b"a" * 100, 10)
    with pytest.raises(BadRequestError, match="not valid UTF-8"):
        cut_utf8(b"ab" + b"\xe2\x82", 100)  # truncated at the element's own end: invalid


def test_limits_name_what_is_out_of_bounds() -> None:
    limits = InputLimits(max_rows=8, max_len=128)
    limits.check("text", "BYTES", [8])
    limits.check("text", "BYTES", [8, 1])
    limits.check("input_ids", "INT64", [8, 512])
    with pytest.raises(BadRequestError, match="9 rows; this model's maxBatchSize is 8"):
        limits.check("text", "BYTES", [9])
    with pytest.raises(BadRequestError, match=r"shape \[N\] or \[N, 1\]"):
        limits.check("text", "BYTES", [2, 3])
    with pytest.raises(BadRequestError, match="513 elements; this model takes at most 128 tokens"):
        limits.check("attention_mask", "INT64", [1, 513])
    with pytest.raises(BadRequestError, match="unknown input 'pixels'"):
        limits.check("pixels", "FP32", [1, 3, 224, 224])
