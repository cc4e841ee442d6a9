"""The twin's server model, fleet and policies: each rule checked on a small case."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from outrider_scheduler.planner.profile import CapacityProfile, ProfilePoint
from outrider_scheduler.simulate.fleet import SERVING, WARM, Fleet, Timings
from outrider_scheduler.simulate.policies import HpaPolicy, KpaPolicy, Observation, OraclePolicy
from outrider_scheduler.simulate.runner import minute_p99_ms
from outrider_scheduler.simulate.servers import ServerModel, second_p99


def flat_profile(per_row_ms: float = 10.0) -> CapacityProfile:
    """Every row costs the same: one replica completes 100 requests/s whatever the batch."""
    return CapacityProfile(
        model="m",
        points=[ProfilePoint(batch_size=b, seconds=per_row_ms * b / 1000) for b in (1, 2, 4, 8, 16)],
    )


def test_a_fleet_serves_its_throughput_queues_the_rest_and_refuses_beyond_the_limit() -> None:
    m = ServerModel(flat_profile(), queue_limit=50)
    light = m.tick(50.0, 1, 16, 0.0)
    assert light.served == pytest.approx(50.0) and light.backlog == 0 and light.rejected == 0
    assert 0.01 < light.p99_s < 0.2
    over = m.tick(180.0, 1, 16, 0.0)  # 100/s throughput: 80 left, 50 fit in the queue
    assert over.served == pytest.approx(100.0)
    assert over.backlog == pytest.approx(50.0) and over.rejected == pytest.approx(30.0)
    assert over.p99_s > light.p99_s + 0.4  # the backlog takes half a second to drain
    nobody = m.tick(10.0, 0, 16, 0.0)
    assert nobody.rejected == 10.0 and math.isinf(nobody.p99_s)


def test_batches_grow_with_load_and_p99_follows_the_batch_time() -> None:
    profile = CapacityProfile(
        model="m", points=[ProfilePoint(batch_size=b, seconds=0.02 + 0.002 * b) for b in (1, 2, 4, 8, 16, 32)]
    )
    m = ServerModel(profile)
    assert m.formed_batch(5.0, 32) == pytest.approx(1.0, abs=0.2)
    heavy = m.formed_batch(400.0, 32)
    assert 8 < heavy <= 32
    assert m.tick(400.0, 1, 32, 0.0).batch == pytest.approx(heavy)


def test_the_vectorised_static_fleet_matches_tick_by_tick() -> None:
    m = ServerModel(flat_profile())
    rates = np.random.default_rng(1).poisson(350, 600).astype(float)
    backlog, loop = 0.0, []
    for r in rates:
        t = m.tick(float(r), 4, 16, backlog)
        backlog = t.backlog
        loop.append(t.p99_s)
    assert np.allclose(second_p99(*m.static_seconds(rates, 4, 16)), loop)


def test_minute_p99_is_arrival_weighted() -> None:
    p99 = np.array([0.05] * 59 + [5.0] + [0.05] * 60)
    quiet_spike = np.array([10.0] * 59 + [0.1] + [10.0] * 60)  # the slow second carries almost nothing
    busy_spike = np.array([10.0] * 59 + [100.0] + [10.0] * 60)
    calm, one = np.zeros(len(p99)), np.ones(len(p99))  # no random-arrival wait: the bases alone
    assert minute_p99_ms(p99, calm, one, quiet_spike)[0] == pytest.approx(50.0)
    assert minute_p99_ms(p99, calm, one, busy_spike)[0] == pytest.approx(5000.0)


def test_random_arrivals_cost_latency_near_full_throughput_even_without_a_backlog() -> None:
    m = ServerModel(flat_profile())  # 100 requests/s per replica
    calm, busy = m.tick(30.0, 1, 16, 0.0), m.tick(95.0, 1, 16, 0.0)
    assert busy.backlog == 0 and calm.backlog == 0
    # Kingman's tail: 0.95 * exp(-x * 0.05 * 100 / 0.65) = 1% at x = ln(95) / 7.69 s
    assert busy.p99_s - busy.base_s == pytest.approx(math.log(95) / (0.05 * 100 / 0.65), rel=1e-6)
    assert calm.p99_s - calm.base_s < 0.05 < busy.p99_s - busy.base_s
    # a fleet twice as big at the same load per replica waits as long (kube-proxy splits at random)
    assert m.tick(190.0, 2, 16, 0.0).p99_s == pytest.approx(busy.p99_s)


def test_a_minutes_p99_is_that_of_the_mixture_of_its_seconds() -> None:
    rates = np.full(60, 10.0)
    base = np.full(60, 0.05)
    none = minute_p99_ms(base, np.zeros(60), np.ones(60), rates)
    assert none[0] == pytest.approx(50.0, abs=0.01)
    # every second: half the requests wait, the wait's tail decays at 100/s: 1% slower than ln(50)/100
    half = minute_p99_ms(base, np.full(60, 0.5), np.full(60, 100.0), rates)
    assert half[0] == pytest.approx(50.0 + 1000 * math.log(50) / 100, abs=0.01)
    # one busy second among quiet ones: it holds 1/60 of the requests, so only its tail's top matters
    share = np.zeros(60)
    share[0] = 0.9
    one = minute_p99_ms(base, share, np.full(60, 10.0), rates)[0]
    assert 50.0 + 1000 * math.log(0.9 / 0.6) / 10 == pytest.approx(one, abs=0.01)
    # more than 1% of a minute's requests with no replica at all: the minute's p99 is infinite
    dead = base.copy()
    dead[:2] = np.inf
    assert math.isinf(minute_p99_ms(dead, np.zeros(60), np.ones(60), rates)[0])


def _obs(now: int, rates: np.ndarray, fleet: Fleet) -> Observation:
    return Observation(now, rates, fleet, 0.1, 0.1)


def test_hpa_scales_by_the_ratio_within_its_limits_and_waits_300_s_to_scale_down() -> None:
    fleet = Fleet(Timings(new_pod_s=30))
    hpa = HpaPolicy(target_rps=70.0)
    hpa.start(fleet)
    rates = np.full(2000, 700.0)  # 10 pods' worth
    hpa.act(_obs(60, rates, fleet))
    assert len([p for p in fleet.pods if p.target == SERVING]) == 5  # +4 pods or +100%: 1 -> 5
    fleet.advance(100)
    hpa.act(_obs(100, rates, fleet))
    assert len(fleet.pods) == 10
    fleet.advance(200)
    low = rates.copy()
    low[200:] = 70.0
    hpa.act(_obs(275, low, fleet))
    assert len(fleet.pods) == 10  # a recommendation of 10 is still inside the 300-s window
    for t in range(290, 700, 15):
        hpa.act(_obs(t, low, fleet))
    assert len(fleet.pods) == 1


def test_kpa_panics_on_a_burst_and_never_scales_down_while_panicking() -> None:
    fleet = Fleet(Timings(new_pod_s=0))
    kpa = KpaPolicy(target_rps=100.0)  # 70 per pod
    kpa.start(fleet)
    rates = np.full(400, 50.0)
    rates[100:110] = 700.0  # a 10-s burst: the 6-s panic window sees 10x a pod's target
    kpa.act(_obs(108, rates, fleet))
    assert kpa._panic_since == 108 and len(fleet.pods) == 10
    fleet.advance(108)
    kpa.act(_obs(140, rates, fleet))  # the stable window alone would want fewer: panic holds
    assert len(fleet.pods) == 10
    kpa.act(_obs(200, rates, fleet))  # over 60 s after the last trigger: stable again, at most halving
    assert kpa._panic_since is None and len(fleet.pods) == 5


def test_the_oracle_starts_pods_ahead_of_the_load_by_their_start_time() -> None:
    fleet = Fleet(Timings(new_pod_s=30))
    oracle = OraclePolicy(capacity_rps=100.0, lead_s=30)
    oracle.start(fleet)
    rates = np.full(600, 50.0)
    rates[300:] = 450.0
    oracle.act(_obs(200, rates, fleet))
    assert len(fleet.pods) == 1  # 100 s ahead: beyond its start time plus a minute
    oracle.act(_obs(250, rates, fleet))
    assert len(fleet.pods) == 5  # 50 s ahead: started now, serving 20 s before the load


def test_timings_come_from_the_surge_benchmark_or_defaults(tmp_path: Path) -> None:
    doc = tmp_path / "surge.json"
    doc.write_text(
        '{"trials": 20, "timings": {"warm_promotion_s": 0.1, "cold_to_serving_s": 2, "new_pod_s": 4}}'
    )
    t = Timings.from_surge_bench(doc)
    assert (t.warm_promotion_s, t.cold_to_serving_s, t.new_pod_s) == (
        0.1,
        2.0,
        4.0,
    ) and "20 trials" in t.source
    assert Timings.from_surge_bench(tmp_path / "missing.json").source == "defaults"


def test_warm_pods_hold_gpus_cold_ones_do_not() -> None:
    fleet = Fleet(Timings(), gpus_per_pod=2)
    fleet.add("active", SERVING, 0.0, 0.0)
    fleet.add("warm", WARM, 0.0, 0.0)
    fleet.add("cold", "cold", 0.0, 0.0)
    assert fleet.gpus() == 4


def test_the_twins_outrider_does_not_depend_on_the_runtime_counters_it_leaves_at_zero() -> None:
    """The twin's pods share one sample per state with the cumulative counters at zero (the loop
    turns those into rates; the decision core reads the rates). Filled with every pod's own
    counters instead, the replay must decide exactly the same."""
    import dataclasses
    import itertools

    from outrider_operator.api.runtime import RuntimeLoad
    from outrider_scheduler.forecast.traces import load_trace
    from outrider_scheduler.planner.profile import default_profile
    from outrider_scheduler.simulate.outrider_policy import OutriderPolicy
    from outrider_scheduler.simulate.runner import SimSettings, build_policy, prepare, run_policy

    trace = load_trace(
        Path(__file__).resolve().parents[3] / "shared" / "traces" / "azure_llm_2023_code_1s.csv"
    )
    trace = dataclasses.replace(trace, counts=trace.counts[:1200])  # 20 minutes: bursts, surges, scale-downs
    sim = prepare(trace, default_profile(), Timings(1.0, 4.0, 6.0), SimSettings(warm_pods=1))
    ticks = itertools.count(1)

    class Counted(OutriderPolicy):
        def _sample(self, *args: object, **kw: object) -> RuntimeLoad:
            n = next(ticks)
            return (
                super()
                ._sample(*args, **kw)
                .model_copy(  # type: ignore[arg-type]
                    update={
                        "received": 7 * n,
                        "completed": 5 * n,
                        "rows_completed": 9 * n,
                        "boot_id": f"b{n}",
                    }
                )
            )

    plain = build_policy("outrider", sim)
    assert isinstance(plain, OutriderPolicy)
    counted = Counted(plain.spec, plain.model.__class__.from_profile(sim.profile), sim.forecast_peak)
    a, b = run_policy(sim, plain), run_policy(sim, counted)
    assert next(ticks) > 1000  # the counters really were filled in
    assert a.actions > 5 and (a.actions, a.promotions, a.cold_starts) == (
        b.actions,
        b.promotions,
        b.cold_starts,
    )
    assert a.gpu_seconds == b.gpu_seconds and np.array_equal(a.minute_p99_ms, b.minute_p99_ms)


def test_the_twin_hands_the_planner_the_forecasts_mean_beside_its_peak() -> None:
    """Both forecasts hold from the same seconds, one step at a time; a mean the forecaster left
    NaN reaches the planner as no mean (the peak is then sized for), never as NaN."""
    from outrider_scheduler.forecast.traces import load_trace
    from outrider_scheduler.planner.profile import default_profile
    from outrider_scheduler.simulate.outrider_policy import OutriderPolicy
    from outrider_scheduler.simulate.runner import SimSettings, build_policy, prepare

    trace = load_trace(
        Path(__file__).resolve().parents[3] / "shared" / "traces" / "azure_llm_2023_code_1s.csv"
    )
    sim = prepare(trace, default_profile(), Timings(1.0, 4.0, 6.0), SimSettings(forecast_sizing="mean"))
    peak, mean = sim.forecast_peak, sim.forecast_mean
    assert peak is not None and mean is not None and len(peak) == len(mean) == len(sim.rates)
    # the first forecast comes once the one-hour trace holds enough history (at 17 min)
    assert np.array_equal(np.isnan(peak), np.isnan(mean)) and np.isfinite(peak).sum() > 1500
    made = np.isfinite(peak)
    assert (mean[made] < peak[made]).mean() > 0.9  # a 10-s bin's p90 peak over a 5-min mean's p90
    changes = np.flatnonzero(np.diff(peak[made]) != 0) + 1
    assert changes.size > 10 and np.all(np.diff(mean[made])[np.diff(peak[made]) != 0] != 0)
    policy = build_policy("outrider", sim)
    assert isinstance(policy, OutriderPolicy) and policy.spec.scaling.forecast_sizing == "mean"
    assert policy.forecast_mean is not None
    fleet = Fleet(sim.timings)
    policy.start(fleet, 2)
    now = int(np.argmax(made)) + 6  # the view at second `now` holds the forecast made at now - 1
    seen = policy._view(_obs(now, sim.rates, fleet)).forecast
    assert seen is not None and seen.mean_rps == mean[now - 1] and seen.peak_rps == peak[now - 1]
    policy.forecast_mean[now - 1] = np.nan
    seen = policy._view(_obs(now, sim.rates, fleet)).forecast
    assert seen is not None and seen.mean_rps is None and seen.sized_rps("mean") == peak[now - 1]
