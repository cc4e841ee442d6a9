"""Keep Python's cyclic garbage collector from pausing requests.

The node cache holds many long-lived objects (parsed inventories for thousands of nodes). A full
(generation 2) collection walks all of them: about 180 ms at 5,000 nodes, far beyond a request's
budget. Once the cache has synced, and then periodically when it has changed, the service runs one
collection and *freezes* the survivors (``gc.freeze``): later collections skip them, so pauses stay
proportional to what changed since the last freeze.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

__all__ = ["freeze_loop", "freeze_now"]

log = logging.getLogger(__name__)


def freeze_now() -> float:
    """Collect once and freeze the survivors; returns the seconds it took."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started


async def freeze_loop(
    ready: Callable[[], bool], generation: Callable[[], int], *, interval_s: float = 60.0
) -> None:
    """Freeze once ``ready()`` turns true, then every ``interval_s`` when ``generation()`` moved."""
    while not ready():
        await asyncio.sleep(0.5)
    seen = generation()
    took = freeze_now()
    log.info("froze %d objects after the cache synced (%.0f ms)", gc.get_freeze_count(), took * 1000)
    while True:
        await asyncio.sleep(interval_s)
        current = generation()
        if current != seen:
            seen = current
            freeze_now()
