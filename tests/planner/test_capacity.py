"""Capacity model, load signals and capacity profiles."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from outrider_operator.api.runtime import BatchStat
from outrider_scheduler.planner.capacity import CapacityModel
from outrider_scheduler.planner.errors import ProfileError
from outrider_scheduler.planner.profile import ProfileBook, default_profile, load_profile
from outrider_scheduler.planner.signals import PodSignals


def test_service_time_interpolates_and_extrapolates(mk: Any) -> None:
    m = CapacityModel.from_profile(mk.profile(per_row_ms=5.0, fixed_ms=5.0))
    assert m.service_seconds(8) == pytest.approx(0.045)
    assert m.service_seconds(12) == pytest.approx(0.065)  # between 8 and 16
    assert m.service_seconds(64) == pytest.approx(0.325, rel=0.01)  # the fitted line beyond 32
    assert m.capacity(8) == pytest.approx(0.8 * 8 / 0.045)
    assert math.isnan(CapacityModel.from_profile(None).capacity(8))


def test_best_batch_keeps_predicted_p99_under_the_target(mk: Any) -> None:
    m = CapacityModel.from_profile(mk.profile())
    assert m.best_batch(200, 10, 64) == 16  # 10 + 2 * 85 ms = 180 ms = 0.9 * 200
    assert m.best_batch(200, 10, 12) == 12  # never above the ceiling
    assert m.best_batch(20, 10, 64) == 1  # nothing fits: the floor


def test_pod_statistics_replace_the_profile_after_enough_batches(mk: Any) -> None:
    m = CapacityModel.from_profile(mk.profile())
    m.observe_batches(
        "p", [BatchStat(batch_size=8, count=100, seconds=1.0)], "boot1"
    )  # first sample: baseline
    assert m.service_seconds(8) == pytest.approx(0.045)
    m.observe_batches("p", [BatchStat(batch_size=8, count=102, seconds=1.12)], "boot1")  # 2 batches of 60 ms
    assert m.service_seconds(8) == pytest.approx(0.045)  # not enough yet
    m.observe_batches("p", [BatchStat(batch_size=8, count=106, seconds=1.36)], "boot1")  # 4 more
    assert m.service_seconds(8) == pytest.approx(0.06)
    assert m.source == "profile+observed"
    # a restarted pod (new boot id) starts from its own new baseline, never a negative delta
    m.observe_batches("p", [BatchStat(batch_size=8, count=1, seconds=5.0)], "boot2")
    assert m.service_seconds(8) == pytest.approx(0.06)


def test_a_pending_observation_keeps_the_smoothed_times_and_a_counted_one_renews_them(mk: Any) -> None:
    m = CapacityModel.from_profile(mk.profile())
    m.observe_batches("p", [BatchStat(batch_size=8, count=100, seconds=1.0)], "boot1")  # baseline
    assert m.service_seconds(8) == pytest.approx(0.045)
    smoothed = m._smooth
    assert smoothed is not None
    m.observe_batches("p", [BatchStat(batch_size=8, count=102, seconds=1.12)], "boot1")  # pending
    assert m._smooth is smoothed  # nothing changed: the per-batch-size answers stay cached
    m.observe_batches("p", [BatchStat(batch_size=8, count=106, seconds=1.36)], "boot1")  # counted
    assert m._smooth is None
    assert m.service_seconds(8) == pytest.approx(0.06)  # rebuilt from the new point


def observe(m: CapacityModel, size: int, batches: int, ms: float) -> None:
    """Fold ``batches`` batches of ``size`` rows taking ``ms`` each into ``m`` (after a baseline)."""
    m.observe_batches(f"p{size}", [BatchStat(batch_size=size, count=1, seconds=1.0)], "b")
    m.observe_batches(
        f"p{size}", [BatchStat(batch_size=size, count=1 + batches, seconds=1.0 + batches * ms / 1000)], "b"
    )


def test_a_few_slow_batches_do_not_cap_the_surge_batch(mk: Any) -> None:
    # five batches of 3 rows took 100 ms each (a pod starved of CPU for a moment); the profile says
    # 8 rows take 45 ms. Larger batches are never faster, so the two are pooled, not believed apart
    m = CapacityModel.from_profile(mk.profile())
    observe(m, 3, 5, 100.0)
    assert m.points()[3] == pytest.approx(0.1)  # what was measured stays visible
    sizes = sorted(m.points())
    smoothed = [m.service_seconds(b) for b in sizes]
    assert smoothed == sorted(smoothed), "service time must not fall as batches grow"
    assert m.service_seconds(3) < 0.08  # read apart, p99 at batch 3 would be 10 + 2 * 100 ms: over
    assert m.best_batch(200, 10, 64) >= 8


def test_many_slow_batches_outweigh_the_profile(mk: Any) -> None:
    m = CapacityModel.from_profile(mk.profile())
    observe(m, 8, 200, 120.0)  # well measured: this deployment's pods are slower than the profile
    assert m.service_seconds(8) > 0.11 and m.service_seconds(16) >= m.service_seconds(8)
    assert m.best_batch(200, 10, 64) < 8


def test_missed_p99_below_capacity_lowers_the_estimate_and_recovers(mk: Any) -> None:
    m = CapacityModel.from_profile(mk.profile())
    before = m.capacity(8)
    for _ in range(10):
        m.observe_latency(p99_ms=400, demand_per_replica=0.5 * before, batch=8, delay_ms=10, target_ms=200)
    lowered = m.capacity(8)
    m.observe_latency(
        p99_ms=400,
        demand_per_replica=0.5 * before,
        batch=8,
        delay_ms=10,
        target_ms=200,
        queue_per_replica=500,
    )
    assert (
        m.capacity(8) == lowered
    )  # a backlog (a burst's leftovers) explains the miss: no blame on the model
    assert m.capacity(8) < 0.7 * before
    low = m.capacity(8)
    for _ in range(20):
        m.observe_latency(
            p99_ms=50, demand_per_replica=0.95 * m.capacity(8), batch=8, delay_ms=10, target_ms=200
        )
    assert m.capacity(8) > low


def test_a_miss_counts_against_the_model_below_the_deployments_own_target(mk: Any) -> None:
    raw = CapacityModel.from_profile(mk.profile()).raw_capacity(8)
    kw: dict[str, Any] = {"p99_ms": 400, "demand_per_replica": 0.9 * raw, "batch": 8, "delay_ms": 10}
    at_default = CapacityModel.from_profile(mk.profile())
    at_default.observe_latency(**kw, target_ms=200)  # 90% busy is above the default 80%: explained
    assert at_default.correction == 1.0
    at_full = CapacityModel.from_profile(mk.profile())
    at_full.observe_latency(**kw, target_ms=200, utilisation=1.0)  # sized to run at 100%: unexplained
    assert at_full.correction < 1.0


def test_signals_give_rates_and_reset_on_restart(mk: Any) -> None:
    sig = PodSignals(window_seconds=1.0)
    assert sig.add(0.0, mk.load(received=100)).arrival_rps == 0.0
    r = sig.add(0.5, mk.load(received=150))
    assert r.arrival_rps == pytest.approx(100.0) and r.idle_seconds == 0.0
    r = sig.add(1.0, mk.load(received=150))
    assert r.idle_seconds == pytest.approx(0.5)
    r = sig.add(1.5, mk.load(received=10, boot="b2"))  # restarted: counters from zero
    assert r.arrival_rps == 0.0 and r.window_seconds == 0.0
    r = sig.add(2.0, mk.load(received=30, boot="b2"))
    assert r.arrival_rps == pytest.approx(40.0)


def test_the_shipped_profile_is_a_real_measurement() -> None:
    p = default_profile()
    assert p.uri == "builtin:all-minilm-l6-v2" and len(p.points) >= 5
    per_row = [pt.seconds / pt.batch_size for pt in p.points]
    assert all(0.0005 < x < 0.05 for x in per_row)


def test_bad_profiles_are_named_and_never_raised_from_the_book(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "m", "points": [{"batchSize": 0, "seconds": 0.01}]}))
    with pytest.raises(ProfileError, match=r"bad.json.*points.0.batchSize"):
        load_profile(bad)
    (tmp_path / "dup.yaml").write_text(
        "model: m\npoints:\n- {batchSize: 1, seconds: 0.1}\n- {batchSize: 1, seconds: 0.2}\n"
    )
    (tmp_path / "good.json").write_text(
        json.dumps({"model": "mine", "points": [{"batchSize": 1, "seconds": 0.1}]})
    )
    book = ProfileBook.load([tmp_path])
    assert len(book.errors) == 2 and any("must not repeat" in e for e in book.errors)
    assert book.find("builtin:x", "mine") is not None
    shipped = book.find("builtin:all-minilm-l6-v2", "whatever")
    assert shipped is not None and shipped.uri == "builtin:all-minilm-l6-v2"
    assert book.find("pvc://c/x", "unknown") is None
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.json")


def test_a_backlog_does_not_teach_the_latency_factor(mk: Any) -> None:
    # right after a step the p99 window holds requests that waited behind a queue; the p99 formula
    # has no queue in it, so those samples must not make every batch size look too slow
    m = CapacityModel.from_profile(mk.profile())
    best = m.best_batch(200, 10, 64)
    for _ in range(10):
        m.observe_latency(
            p99_ms=600, demand_per_replica=150, batch=4, delay_ms=10, target_ms=200, queue_per_replica=40
        )
    assert m.latency_factor == 1.0 and m.best_batch(200, 10, 64) == best
    for _ in range(10):  # without a backlog the same miss is the model's to learn
        m.observe_latency(p99_ms=600, demand_per_replica=150, batch=4, delay_ms=10, target_ms=200)
    assert m.latency_factor > 2 and m.best_batch(200, 10, 64) < best


def test_a_profile_from_faster_hardware_is_scaled_by_what_the_pods_measure(mk: Any) -> None:
    # the profile was measured on a whole core; the pods get 400m and run 2.5x slower. At a low load
    # they replace only the small batch sizes: the large ones must not keep the profile's speed
    m = CapacityModel.from_profile(mk.profile())
    before = m.capacity(8)
    observe(m, 1, 2000, 25.0)  # profile: 10 ms
    observe(m, 2, 500, 37.5)  # profile: 15 ms
    assert m.speed == pytest.approx(2.5, rel=0.05)
    assert m.capacity(8) == pytest.approx(before / 2.5, rel=0.05)
    assert m.points()[8] == pytest.approx(0.045 * m.speed)
    # a handful of slow batches barely moves it (the profile's scale weighs 50 batches)
    fresh = CapacityModel.from_profile(mk.profile())
    observe(fresh, 1, 5, 30.0)
    assert fresh.speed < 1.3


def test_what_the_pods_taught_the_model_can_be_written_as_a_profile(mk: Any) -> None:
    m = CapacityModel.from_profile(mk.profile())
    with pytest.raises(ValueError, match="knows no service time"):
        CapacityModel.from_profile(None).as_profile("m")
    observe(m, 1, 2000, 25.0)
    observe(m, 2, 500, 37.5)
    observe(m, 3, 6, 20.0)  # faster than size 2: pooled, a profile never runs faster with more rows
    learned = m.as_profile("minilm", "builtin:all-minilm-l6-v2", "pods")
    again = CapacityModel.from_profile(learned)
    for size in (1, 2, 3, 8, 12, 32, 64):
        assert again.service_seconds(size) == pytest.approx(m.service_seconds(size), rel=1e-9), size
    seconds = [p.seconds for p in learned.points]
    assert seconds == sorted(seconds)
    assert {p.batch_size for p in learned.points} >= {1, 2, 3}
    assert learned.model == "minilm" and learned.workers == m.workers


def test_a_pod_first_seen_idle_skips_its_first_batches_unless_counted_from_zero(mk: Any) -> None:
    # a fresh process's first batches run slow (cold caches): the planner does not learn from them
    m = CapacityModel.from_profile(mk.profile())
    m.observe_batches("p", [], "boot1")
    m.observe_batches("p", [BatchStat(batch_size=8, count=10, seconds=3.0)], "boot1")  # 300 ms each
    assert m.service_seconds(8) == pytest.approx(0.045)
    m.observe_batches("p", [BatchStat(batch_size=8, count=20, seconds=3.6)], "boot1")  # then 60 ms
    assert m.service_seconds(8) == pytest.approx(0.06)
    # a measurement that warmed the process up itself counts from its start
    n = CapacityModel.from_profile(mk.profile())
    n.count_from_zero("q", "boot1")
    n.observe_batches("q", [BatchStat(batch_size=8, count=10, seconds=0.6)], "boot1")
    assert n.service_seconds(8) == pytest.approx(0.06)


def test_a_profile_written_from_many_batch_sizes_stays_valid(mk: Any) -> None:
    # a runtime with a large batch limit reports every size it ran: more than a profile holds
    m = CapacityModel.from_profile(None)
    for size in range(1, 301):
        observe(m, size, 5, 2.0 + 0.5 * size)
    observe(m, 5000, 5, 2600.0)  # one request larger than the limit runs alone
    learned = m.as_profile("big")
    sizes = [p.batch_size for p in learned.points]
    assert len(sizes) <= 64 and sizes[0] == 1 and sizes[-1] == 300
    again = CapacityModel.from_profile(learned)
    for size in (1, 7, 50, 123, 300):
        assert again.service_seconds(size) == pytest.approx(m.service_seconds(size), rel=0.02), size
