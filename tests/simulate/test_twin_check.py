"""The twin check's minute-by-minute analysis (``bench/twin_check.py``): each minute's own service
times from the runtimes' cumulative statistics, and the variability fitted on measured minutes."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from outrider_scheduler.planner.profile import default_profile


@pytest.fixture(scope="module")
def twin_check(bench_module: Callable[[str], ModuleType]) -> ModuleType:
    return bench_module("twin_check")


def _seconds_at_16(mod: ModuleType, p: object) -> float:
    return float(mod.ServerModel(p, 1).service_s(16))


def test_a_minute_profile_holds_the_batches_of_that_minute_only(twin_check: ModuleType) -> None:
    base = default_profile()
    slow = 2.0 * _seconds_at_16(twin_check, base)
    before = {1: ("boot-a", {16: (100, 100 * 0.01)})}  # earlier batches, far faster: not this minute's
    after = {1: ("boot-a", {16: (110, 100 * 0.01 + 10 * slow)})}
    p = twin_check.minute_profile(base, before, after)
    assert p is not None
    assert _seconds_at_16(twin_check, p) == pytest.approx(slow, rel=1e-3)
    assert twin_check.minute_profile(base, after, after) is None  # no batch ran


def test_a_restart_between_two_minutes_counts_the_new_process_from_zero(twin_check: ModuleType) -> None:
    base = default_profile()
    slow = 1.5 * _seconds_at_16(twin_check, base)
    before = {1: ("boot-a", {16: (500, 500 * 0.2)})}
    after = {1: ("boot-b", {16: (8, 8 * slow)})}  # a new process: fewer batches than before
    p = twin_check.minute_profile(base, before, after)
    assert p is not None
    assert _seconds_at_16(twin_check, p) == pytest.approx(slow, rel=1e-3)


def test_the_fitted_variability_is_the_one_the_measurements_came_from(twin_check: ModuleType) -> None:
    base = default_profile()
    per_batch = _seconds_at_16(twin_check, base)
    rates = np.concatenate([np.full(60, 120.0), np.full(60, 140.0), np.full(60, 155.0)])
    taken = [{1: ("boot", {16: (1000 * m, 1000 * m * per_batch)})} for m in range(4)]
    profiles = twin_check.minute_profiles(base, taken)
    measured, _ = twin_check.same_minute_p99_ms(profiles, base, rates, 1, 1.2)
    assert twin_check.fit_variability(profiles, base, rates, 1, measured) == pytest.approx(1.2, abs=0.03)
    default, _ = twin_check.same_minute_p99_ms(profiles, base, rates, 1, 0.65)
    assert all(d < m for d, m in zip(default, measured, strict=True))  # a thinner tail reads lower
