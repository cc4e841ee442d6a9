"""Polling with a deadline, for scripts and the e2e tests that wait on the cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for"]


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout_s: float = 60.0,
    every_s: float = 0.3,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call ``probe`` until it returns something truthy and return that.

    Exceptions of the types in ``tolerate`` count as "not yet" (an object not created yet, a
    command failing while a component starts). After ``timeout_s`` it raises AssertionError
    naming ``what`` and the last result or exception.
    """
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except tolerate as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")
