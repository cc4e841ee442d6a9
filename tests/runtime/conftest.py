from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest


class AsyncTriton:
    """tritonclient.http (gevent-based) pinned to one worker thread, awaited from the test's loop."""

    def __init__(self, url: str) -> None:
        import tritonclient.http as th

        self._pool = ThreadPoolExecutor(max_workers=1)
        self._client = self._pool.submit(th.InferenceServerClient, url, network_timeout=120.0).result()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.wrap_future(self._pool.submit(method, *args, **kwargs))

        return call

    def close(self) -> None:
        self._pool.submit(self._client.close).result()
        self._pool.shutdown()


@pytest.fixture
def triton() -> Iterator[Callable[[str], AsyncTriton]]:
    """Factory of thread-pinned tritonclient.http clients, closed after the test."""
    made: list[AsyncTriton] = []

    def make(url: str) -> AsyncTriton:
        made.append(AsyncTriton(url))
        return made[-1]

    yield make
    for c in made:
        c.close()
