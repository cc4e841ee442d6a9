"""Fixtures shared by every test folder: real in-process runtime servers (the tiny model), and
the benchmark scripts' modules (``bench/`` is a folder of scripts, not a package)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from outrider_runtime.config import RuntimeConfig, parse_config
from outrider_runtime.metrics import RuntimeMetrics
from outrider_runtime.server import ModelService, build_app
from outrider_runtime.server.grpc_transport import start_grpc

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="session")
def bench_module() -> Callable[[str], ModuleType]:
    """Import a script of ``bench/`` by its module name (``bench_module("twin_check")``)."""

    def load(name: str) -> ModuleType:
        sys.path.insert(0, str(BENCH))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(BENCH))

    return load


def _tiny_config(**overrides: Any) -> RuntimeConfig:
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
    def __init__(self, server: ModelService, url: str) -> None:
        self.server = server
        self.url = url
        self.registry = server.metrics.registry
        self.grpc_url = ""


@asynccontextmanager
async def run_server(config: RuntimeConfig) -> AsyncIterator[Running]:
    server = ModelService(config, RuntimeMetrics(CollectorRegistry()))
    runner = web.AppRunner(build_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    grpc_server, grpc_port = await start_grpc(server, "127.0.0.1", 0)
    try:
        await server.start_models()
        running = Running(server, f"127.0.0.1:{port}")
        running.grpc_url = f"127.0.0.1:{grpc_port}"
        yield running
    finally:
        await server.drain(timeout_s=5)
        await grpc_server.stop(grace=None)
        await runner.cleanup()
        server.close()
        for m in server.models.values():
            for p in m.pipelines.values():
                p.close()


@pytest.fixture
def tiny_config() -> Callable[..., RuntimeConfig]:
    """Build a RuntimeConfig for the tiny model: ``tiny_config(batching={...}, server={...})``."""
    return _tiny_config


@pytest.fixture
def server_factory() -> Callable[..., Any]:
    return run_server
