"""The KServe V2 / Triton HTTP server of the runtime (aiohttp)."""

from outrider_runtime.server.app import RuntimeServer, build_app

__all__ = ["RuntimeServer", "build_app"]
