"""Malformed requests get a 4xx naming what is wrong, never a 5xx (and the server keeps serving)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

Call = Callable[..., Any]
DEEP = b"[" * 100_000 + b"]" * 100_000
"""JSON nested deeper than any parser's recursion limit."""

CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("deep JSON on admin state", "/v2/admin/state", DEEP, {}),
    ("deep JSON on admin batching", "/v2/admin/batching", DEEP, {}),
    ("deep JSON on repository index", "/v2/repository/index", DEEP, {}),
    ("deep JSON on repository load", "/v2/repository/models/tiny/load", DEEP, {}),
    ("a list as the model name", "/v2/admin/state", b'{"state": "serving", "model": []}', {}),
    ("an object as the model name", "/v2/admin/batching", b'{"model": {"a": 1}, "maxBatchSize": 4}', {}),
    (
        "an object as the load config",
        "/v2/repository/models/tiny/load",
        b'{"parameters": {"config": {}}}',
        {},
    ),
    ("a list as the load parameters", "/v2/repository/models/tiny/load", b'{"parameters": ["config"]}', {}),
    ("a number as the load config", "/v2/repository/models/tiny/load", b'{"parameters": {"config": 5}}', {}),
    ("index ready of a list body", "/v2/repository/index", b"[1, 2]", {}),
    ("gzip that is not gzip", "/v2/admin/state", b'{"state": "serving"}', {"Content-Encoding": "gzip"}),
    (
        "non-string BYTES elements",
        "/v2/models/tiny/infer",
        b'{"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": [1, {"a": 2}]}]}',
        {},
    ),
    ("deep JSON on infer", "/v2/models/tiny/infer", DEEP, {}),
    (
        "gzip that is not gzip on infer",
        "/v2/models/tiny/infer",
        b'{"inputs": []}',
        {"Content-Encoding": "gzip"},
    ),
]


@pytest.mark.parametrize(("what", "path", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_malformed_request_is_a_4xx_with_a_message(
    server_factory: Call, tiny_config: Call, what: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    async with server_factory(tiny_config()) as srv, aiohttp.ClientSession() as s:
        async with s.post(f"http://{srv.url}{path}", data=body, headers=headers) as r:
            text = await r.text()
            assert 400 <= r.status < 500, f"{what}: {r.status} {text[:300]}"
            assert "error" in text and len(text) > 20, text
        async with s.get(f"http://{srv.url}/v2/health/live") as r:  # still serving
            assert r.status == 200


async def test_real_gzip_bodies_are_read(server_factory: Call, tiny_config: Call) -> None:
    async with server_factory(tiny_config()) as srv, aiohttp.ClientSession() as s:
        body = gzip.compress(b'{"state": "warm"}')
        async with s.post(
            f"http://{srv.url}/v2/admin/state", data=body, headers={"Content-Encoding": "gzip"}
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["state"] == "warm"
