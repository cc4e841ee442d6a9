from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from outrider_runtime.config import RuntimeConfig, parse_config
from outrider_runtime.metrics import RuntimeMetrics
from outrider_runtime.server import RuntimeServer, build_app


def tiny_config(**overrides: Any) -> RuntimeConfig:
    """A RuntimeConfig for the tiny generated model, deep-merged with ``overrides`` (camelCase)."""
    data: dict[str, Any] = {
        "model": {"name": "tiny", "uri": "builtin:tiny-bert"},
        "precision": {"policy": "fp32"},
        "batching": {"maxBatchSize": 8, "minBatchDelayMs": 5, "lookaheadWindow": 2},
        "server": {"httpPort": 0, "host": "127.0.0.1", "intraOpThreads": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data)


class Running:
    def __init__(self, server: RuntimeServer, url: str) -> None:
        self.server = server
        self.url = url
        self.registry = server.metrics.registry


@asynccontextmanager
async def run_server(config: RuntimeConfig) -> AsyncIterator[Running]:
    server = RuntimeServer(config, RuntimeMetrics(CollectorRegistry()))
    runner = web.AppRunner(build_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await server.start_models()
        yield Running(server, f"127.0.0.1:{port}")
    finally:
        await server.drain(timeout_s=5)
        await runner.cleanup()
        for m in server.models.values():
            for p in m.pipelines.values():
                p.close()


@pytest.fixture
def server_factory() -> Callable[..., Any]:
    return run_server


@pytest.fixture
def in_thread() -> Callable[..., Any]:
    """Run a blocking (tritonclient) call off the event loop."""

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    return call
