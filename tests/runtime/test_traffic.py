"""The recent-latency window: pruned by time, bounded in memory, percentiles as numpy computes them."""

from __future__ import annotations

import numpy as np
import pytest

from outrider_runtime.traffic import RecentLatencies


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_forgets_requests_older_than_the_window() -> None:
    clock = FakeClock()
    window = RecentLatencies(2.0, clock=clock)
    assert window.summary().model_dump() == {
        "window_seconds": 2.0,
        "count": 0,
        "p50_ms": None,
        "p99_ms": None,
    }
    window.add(0.010)
    clock.now += 1.5
    window.add(0.030)
    assert window.summary().count == 2
    clock.now += 0.6  # the first sample is now 2.1 s old
    summary = window.summary()
    assert (summary.count, summary.p50_ms, summary.p99_ms) == (1, 30.0, 30.0)
    clock.now += 2.0
    assert window.summary().count == 0 and window.summary().p99_ms is None
    assert len(window) == 0


def test_percentiles_match_numpy() -> None:
    clock = FakeClock()
    window = RecentLatencies(2.0, clock=clock)
    values = np.random.default_rng(0).exponential(0.02, size=1000)
    for v in values:
        window.add(float(v))
    summary = window.summary()
    assert summary.count == 1000
    assert summary.p50_ms == pytest.approx(np.percentile(values, 50) * 1000, abs=1e-3)
    assert summary.p99_ms == pytest.approx(np.percentile(values, 99) * 1000, abs=1e-3)


def test_memory_is_bounded_under_any_load() -> None:
    clock = FakeClock()
    window = RecentLatencies(2.0, max_samples=100, clock=clock)
    for i in range(1000):  # all within the window: only the newest 100 are kept
        window.add(1.0 if i < 900 else 0.001)
    assert len(window) == 100
    summary = window.summary()
    assert summary.count == 100 and summary.p99_ms == pytest.approx(1.0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        RecentLatencies(0)
    with pytest.raises(ValueError, match="max_samples"):
        RecentLatencies(1.0, max_samples=0)
