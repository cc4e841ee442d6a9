"""The work queue of passes: one entry per key, one more pass after a change mid-pass, backoff."""

from __future__ import annotations

import itertools
import threading
import time

from outrider_operator.workqueue import WorkQueue


def _wait(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_burst_of_adds_for_one_key_is_one_pass() -> None:
    calls: list[tuple[str, str]] = []
    queue = WorkQueue(lambda ns, name: calls.append((ns, name)), workers=2)
    for _ in range(50):
        queue.add("ns", "a", delay_s=0.05)  # all waiting: one entry
    queue.add("ns", "b", delay_s=0.05)
    assert len(queue) == 2
    queue.start()
    try:
        _wait(lambda: queue.processed == 2)
        time.sleep(0.1)
        assert sorted(calls) == [("ns", "a"), ("ns", "b")]
    finally:
        queue.stop()


def test_an_add_during_a_pass_runs_one_more_pass_after_it() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def handle(ns: str, name: str) -> None:
        calls.append(name)
        if len(calls) == 1:
            started.set()
            release.wait(5)

    queue = WorkQueue(handle, workers=3)
    queue.start()
    try:
        queue.add("ns", "a")
        assert started.wait(5)
        for _ in range(10):  # while the pass runs: never a second pass at the same time
            queue.add("ns", "a")
        time.sleep(0.05)
        assert calls == ["a"]
        release.set()
        _wait(lambda: queue.processed == 2)
        time.sleep(0.1)
        assert calls == ["a", "a"]
    finally:
        queue.stop()


def test_a_failing_pass_is_retried_with_a_growing_delay() -> None:
    times: list[float] = []

    def handle(ns: str, name: str) -> None:
        times.append(time.monotonic())
        if len(times) < 4:
            raise RuntimeError("apiserver unavailable")

    queue = WorkQueue(handle, workers=1, retry_delay_s=0.05)
    queue.start()
    try:
        queue.add("ns", "a")
        _wait(lambda: len(times) == 4)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[0] >= 0.04 and gaps[1] >= 0.09 and gaps[2] >= 0.19, gaps  # 0.05, 0.1, 0.2
        time.sleep(0.3)
        assert len(times) == 4  # succeeded: no more retries
    finally:
        queue.stop()


def test_urgent_keys_are_taken_before_other_due_keys() -> None:
    """A planner decision or a new spec is not kept waiting behind a resync of many objects."""
    order: list[str] = []
    gate = threading.Event()

    def handle(ns: str, name: str) -> None:
        if name == "blocker":
            gate.wait(5)
        order.append(name)

    queue = WorkQueue(handle, workers=1)
    queue.start()
    try:
        queue.add("ns", "blocker")
        _wait(lambda: len(queue) == 0)  # the one worker holds the blocker
        for i in range(20):
            queue.add("ns", f"resync-{i}")
        queue.add("ns", "surge", urgent=True)
        queue.add("ns", "resync-3", urgent=True)  # a pending key made urgent keeps one entry
        gate.set()
        _wait(lambda: queue.processed == 22)
        assert order[0] == "blocker" and set(order[1:3]) == {"surge", "resync-3"}, order[:5]
        assert sorted(order[3:]) == sorted(f"resync-{i}" for i in range(20) if i != 3)
    finally:
        queue.stop()
