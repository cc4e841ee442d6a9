"""Calls to one pod's runtime admin API (``/v2/admin/*``), typed with the shared contract models.

Every call has a deadline; any failure (refused, timed out, non-2xx, a body that does not parse)
becomes :class:`~.errors.PodCallError` naming the pod, so the caller can skip that pod and go on.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from pydantic import ValidationError

from outrider_operator.api.runtime import (
    BatchingSettings,
    BatchingUpdate,
    ModelState,
    RuntimeLoad,
    StateChange,
)

from .errors import PodCallError

__all__ = ["RuntimeClient"]


class RuntimeClient:
    """A shared aiohttp session for the admin calls of every pod."""

    def __init__(
        self, poll_timeout_s: float = 0.4, call_timeout_s: float = 3.0, load_timeout_s: float = 600.0
    ):
        self.poll_timeout_s = poll_timeout_s
        self.call_timeout_s = call_timeout_s
        self.load_timeout_s = load_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RuntimeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()

    async def _call(self, pod: str, method: str, url: str, timeout: float, body: Any = None) -> Any:
        try:
            async with self._http().request(
                method, url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    text = raw.decode(errors="replace")[:300]
                    raise PodCallError(pod, f"{method} {url} answered {resp.status}: {text}")
                return json.loads(raw) if raw else None
        except PodCallError:
            raise
        except TimeoutError as exc:
            raise PodCallError(pod, f"{method} {url} timed out after {timeout:.1f}s") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise PodCallError(pod, f"{method} {url} failed: {exc}") from exc

    async def load(self, pod: str, address: str) -> RuntimeLoad:
        """``GET /v2/admin/load``."""
        body = await self._call(pod, "GET", f"http://{address}/v2/admin/load", self.poll_timeout_s)
        try:
            return RuntimeLoad.model_validate(body)
        except ValidationError as exc:
            raise PodCallError(pod, f"/v2/admin/load answered an unexpected body: {exc}") from exc

    async def set_state(self, pod: str, address: str, state: ModelState) -> None:
        """``POST /v2/admin/state``; a load from cold may take long, so its deadline is long too."""
        timeout = self.load_timeout_s if state == ModelState.SERVING else self.call_timeout_s
        await self._call(
            pod, "POST", f"http://{address}/v2/admin/state", timeout, StateChange(state=state).to_wire()
        )

    async def set_batching(self, pod: str, address: str, update: BatchingUpdate) -> BatchingSettings:
        """``POST /v2/admin/batching``."""
        body = await self._call(
            pod, "POST", f"http://{address}/v2/admin/batching", self.call_timeout_s, update.to_wire()
        )
        try:
            return BatchingSettings.model_validate(body)
        except ValidationError as exc:
            raise PodCallError(pod, f"/v2/admin/batching answered an unexpected body: {exc}") from exc

    async def load_many(self, targets: dict[str, str]) -> dict[str, RuntimeLoad | PodCallError]:
        """Poll several pods at once (pod -> address); each answer or its error."""
        names = list(targets)
        results = await asyncio.gather(*(self.load(n, targets[n]) for n in names), return_exceptions=True)
        out: dict[str, RuntimeLoad | PodCallError] = {}
        for name, res in zip(names, results, strict=True):
            if isinstance(res, RuntimeLoad | PodCallError):
                out[name] = res
            else:
                out[name] = PodCallError(name, f"poll failed: {res!r}")
        return out
