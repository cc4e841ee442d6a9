"""The open-loop load generator against a real runtime server: even gaps, or Poisson arrivals."""

from collections.abc import Callable
from typing import Any

import numpy as np

from outrider_devcluster.traffic import FixedRouter, LoadGenerator

Call = Callable[..., Any]
RATE = 25.0


async def _gaps(url: str, seed: int | None) -> tuple[np.ndarray[Any, Any], int]:
    gen = LoadGenerator(FixedRouter({"pod": url}), model="tiny", poisson_seed=seed)
    # 25 req/s: gaps of 40 ms, long beside the server's work in the same event loop, so the even
    # schedule stays even on a busy machine (at 80 req/s a loaded CI machine lumped sends together)
    report = await gen.run(lambda _t: RATE, 5.0)
    sent = np.sort(np.array([r.sent for r in report.records]))
    return np.diff(sent), len(report.failed)


async def test_a_seed_gives_poisson_arrivals_and_none_gives_even_ones(
    tiny_config: Call, server_factory: Call
) -> None:
    async with server_factory(tiny_config()) as srv:
        even, even_failed = await _gaps(srv.url, None)
        poisson, poisson_failed = await _gaps(srv.url, 11)
    assert even_failed == 0 and poisson_failed == 0
    assert len(even) > 100 and len(poisson) > 100
    cv_even = float(even.std() / even.mean())
    cv_poisson = float(poisson.std() / poisson.mean())
    # exponential gaps have a coefficient of variation of 1; even ones (up to scheduling jitter) far less
    assert cv_even < 0.5, cv_even
    assert 0.7 < cv_poisson < 1.4, cv_poisson
    # both keep the asked rate on average
    assert abs(1.0 / float(poisson.mean()) - RATE) < 8.0
