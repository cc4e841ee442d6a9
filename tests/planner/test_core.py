"""The pure decision core: surges, the forecast, scale-down steps, faults."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from outrider_operator.api import labels
from outrider_operator.api.status import ActionKind, ActionTrigger
from outrider_scheduler.planner.capacity import CapacityModel
from outrider_scheduler.planner.core import decide
from outrider_scheduler.planner.decisions import CoreSettings, Memory, OpKind, Plan
from outrider_scheduler.planner.observe import DeploymentView, ForecastView, PodView

S = CoreSettings()
W, C = labels.POOL_WARM, labels.POOL_COLD


def ops(plan: Plan, kind: OpKind) -> list[str]:
    return sorted(op.pod for op in plan.ops if op.kind is kind)


def kinds(plan: Plan) -> list[ActionKind]:
    return [a.kind for a in plan.actions]


def twice(v: DeploymentView, model: CapacityModel, memory: Memory | None = None) -> Plan:
    """The surge path acts on the second overloaded sample in a row."""
    memory = memory or Memory()
    first = decide(v, model, memory, S)
    if memory.overloaded_cycles == 1:
        assert not ops(first, OpKind.PROMOTE), "one overloaded sample must not be enough"
    return decide(DeploymentView(**{**v.__dict__, "now": v.now + 0.5}), model, memory, S)


def base_pods(mk: Any, rps_each: float) -> list[PodView]:
    return [
        mk.pod("a1", rps=rps_each, batch=8),
        mk.pod("a2", rps=rps_each, batch=8),
        mk.pod("w1", W, created=1),
        mk.pod("w2", W, created=2),
        mk.pod("c1", C),
    ]


def test_steady_load_changes_nothing(mk: Any, model: CapacityModel) -> None:
    memory = Memory()
    for i in range(4):
        plan = decide(mk.view(base_pods(mk, 60.0), now=1000 + i), model, memory, S)
        assert plan.ops == () and plan.actions == ()
        assert (plan.active_target, plan.warm_target, plan.cold_target) == (2, 2, 1)
    assert plan.numbers.serving == 2 and plan.numbers.warm == 2 and plan.numbers.cold == 1


def test_surge_raises_batches_promotes_warm_pods_and_refills(mk: Any, model: CapacityModel) -> None:
    # 2 pods at 300 req/s each = 600; capacity at batch 16 is ~150 per pod: 2 more pods wanted
    memory = Memory()
    first = decide(mk.view(base_pods(mk, 300.0)), model, memory, S)
    assert kinds(first) == [ActionKind.RESIZE_BATCH]  # batches grow at the first overloaded sample
    plan = twice(mk.view(base_pods(mk, 300.0), now=1000.5), model, memory)
    assert ops(plan, OpKind.PROMOTE) == ["w1", "w2"]
    assert ops(plan, OpKind.RESIZE) == ["a1", "a2"]
    assert all(op.batch_size == 16 for op in plan.ops if op.kind in (OpKind.RESIZE, OpKind.PROMOTE))
    assert kinds(plan)[0] == ActionKind.PROMOTE_WARM
    promote = plan.actions[0]
    assert promote.trigger is ActionTrigger.SURGE and promote.to_serving == 4
    assert "demand 600.0 req/s" in promote.message and promote.adds_capacity
    assert plan.warm_target == 4  # spec 2 + the 2 promoted: the pool is refilled
    assert ActionKind.REFILL_STANDBY in kinds(plan)
    assert plan.trigger_time == 1000.0  # the first overloaded sample, not the acting ones


def test_batches_grow_when_replicas_max_leaves_no_other_lever(mk: Any, model: CapacityModel) -> None:
    # one pod, replicas.max=1, no standby: 250 req/s is over its ~142 req/s at batch 8, and a bigger
    # batch is all the planner can give it (no pod can be added, so the pool is never "overloaded")
    s = mk.spec(replicas={"min": 1, "max": 1}, standby={"warm": 0, "cold": 0})
    plan = decide(mk.view([mk.pod("a1", rps=250.0, batch=8)], spec=s), model, Memory(), S)
    assert kinds(plan) == [ActionKind.RESIZE_BATCH]
    assert ops(plan, OpKind.RESIZE) == ["a1"] and plan.ops[0].batch_size == 16
    assert plan.active_target == 1 and any("replicas.max=1" in n for n in plan.notes)


def test_a_raised_batch_is_raised_again_only_by_a_real_step(mk: Any, model: CapacityModel) -> None:
    s = mk.spec(replicas={"min": 1, "max": 1}, standby={"warm": 0, "cold": 0})
    memory = Memory()
    first = decide(mk.view([mk.pod("a1", rps=250.0, batch=8)], spec=s), model, memory, S)
    assert ops(first, OpKind.RESIZE) == ["a1"] and memory.batch_target == 16
    model.latency_factor = 0.9  # the model now says 18 rows still fit: not worth another change
    again = decide(mk.view([mk.pod("a1", rps=250.0, batch=16)], now=1001, spec=s), model, memory, S)
    assert again.actions == () and again.ops == ()
    model.latency_factor = 0.8  # 20 rows fit: 1.25x the current 16, so it is raised
    third = decide(mk.view([mk.pod("a1", rps=250.0, batch=16)], now=1002, spec=s), model, memory, S)
    assert kinds(third) == [ActionKind.RESIZE_BATCH] and "16 -> 20" in third.actions[0].message


def test_beyond_the_warm_pool_cold_pods_load_then_new_replicas(mk: Any, model: CapacityModel) -> None:
    plan = twice(mk.view(base_pods(mk, 400.0)), model)  # 800 req/s: 6 pods at ~150
    assert ops(plan, OpKind.PROMOTE) == ["w1", "w2"]
    assert ops(plan, OpKind.LOAD) == ["c1"]
    add = next(a for a in plan.actions if a.kind is ActionKind.ADD_REPLICAS)
    assert add.count == 1 and plan.active_target == 3
    assert (plan.warm_target, plan.cold_target) == (4, 2)


def test_serving_never_exceeds_replicas_max(mk: Any, model: CapacityModel) -> None:
    v = mk.view(base_pods(mk, 2000.0), spec=mk.spec(replicas={"min": 1, "max": 3}))
    plan = twice(v, model)
    assert len(ops(plan, OpKind.PROMOTE)) == 1 and not ops(plan, OpKind.LOAD)
    assert plan.active_target == 2 and any("replicas.max=3" in n for n in plan.notes)


def test_add_replicas_is_reported_once_while_pods_are_created(mk: Any, model: CapacityModel) -> None:
    pods = [mk.pod("a1", rps=400.0, batch=16)]  # no standby at all
    s = mk.spec(standby={"warm": 0, "cold": 0})
    memory = Memory()
    plan = twice(mk.view(pods, spec=s), model, memory)
    assert plan.active_target == 3 and kinds(plan) == [ActionKind.ADD_REPLICAS]
    again = decide(mk.view(pods, now=1001, spec=s, recommended_active=3), model, memory, S)
    assert again.active_target == 3 and ActionKind.ADD_REPLICAS not in kinds(again)


def test_an_unreachable_warm_pod_is_skipped_and_another_promoted(mk: Any, model: CapacityModel) -> None:
    pods = [*base_pods(mk, 200.0)[:2], mk.pod("w1", W, unreachable=True), mk.pod("w2", W), mk.pod("w3", W)]
    plan = twice(mk.view(pods, spec=mk.spec(standby={"warm": 3})), model)
    assert ops(plan, OpKind.PROMOTE) == ["w2"]
    assert plan.numbers.unreachable == 1 and any("w1" in n for n in plan.notes)


def test_pods_the_planner_cannot_reach_are_not_replaced_again_and_again(
    mk: Any, model: CapacityModel
) -> None:
    # the planner cannot reach any pod (a NetworkPolicy, or simulated nodes): it must not read
    # "0 serving" as "2 missing" and add replicas every cycle up to replicas.max
    pods = [mk.pod("a1", unreachable=True), mk.pod("a2", unreachable=True), mk.pod("w1", W, unreachable=True)]
    memory = Memory()
    for i in range(4):
        plan = decide(mk.view(pods, now=1000 + i, recommended_active=2), model, memory, S)
        assert ActionKind.ADD_REPLICAS not in kinds(plan) and plan.active_target == 2, plan.actions
    assert plan.numbers.unreachable == 3 and any("did not answer" in n for n in plan.notes)


def test_latency_miss_without_capacity_data_adds_one_pod(mk: Any) -> None:
    empty = CapacityModel.from_profile(None)
    pods = [mk.pod("a1", rps=50.0, p99=450.0, count=200, queue=40), mk.pod("w1", W)]
    plan = twice(mk.view(pods), empty)
    assert ops(plan, OpKind.PROMOTE) == ["w1"]
    assert plan.actions[0].trigger is ActionTrigger.LATENCY
    assert any("capacity unknown" in n for n in plan.notes)


def test_forecast_gap_adds_new_replicas_and_keeps_the_warm_pool(mk: Any, model: CapacityModel) -> None:
    fc = ForecastView(peak_rps=560.0, horizon_seconds=300, generated_at=990.0)  # 4 pods at batch 8
    plan = decide(mk.view(base_pods(mk, 60.0), forecast=fc), model, Memory(), S)
    assert not ops(plan, OpKind.PROMOTE) and not ops(plan, OpKind.LOAD)
    add = next(a for a in plan.actions if a.kind is ActionKind.ADD_REPLICAS)
    assert add.trigger is ActionTrigger.FORECAST and plan.active_target == 4
    stale = ForecastView(peak_rps=560.0, horizon_seconds=300, generated_at=500.0)
    assert decide(mk.view(base_pods(mk, 60.0), forecast=stale), model, Memory(), S).active_target == 2


def test_the_specs_target_utilisation_sizes_the_forecast_and_the_reported_capacity(
    mk: Any, model: CapacityModel
) -> None:
    # batch 8 runs in 45 ms: 177.8 req/s per pod at full load; a forecast peak of 500 req/s
    fc = ForecastView(peak_rps=500.0, horizon_seconds=300, generated_at=990.0)
    targets = {}
    for pct in (None, 50, 80, 100):
        spec = mk.spec(scaling={"targetUtilizationPercent": pct} if pct else {})
        plan = decide(mk.view(base_pods(mk, 60.0), forecast=fc, spec=spec), model, Memory(), S)
        targets[pct] = (plan.active_target, plan.numbers.capacity_rps)
    assert targets[None] == targets[80]  # the default is 80%
    assert [targets[p][0] for p in (50, 80, 100)] == [6, 4, 3]  # ceil(500 / (177.8 * u))
    assert targets[50][1] == pytest.approx(targets[100][1] / 2)
    with pytest.raises(ValueError, match="targetUtilizationPercent"):
        mk.spec(scaling={"targetUtilizationPercent": 5})


def test_forecast_sizing_mean_sizes_for_the_horizons_mean_and_falls_back_to_its_peak(
    mk: Any, model: CapacityModel
) -> None:
    # 177.8 req/s per pod at batch 8, 142.2 at 80%: a p90 peak of 560 wants 4 pods, a p90 mean of 300 wants 3
    fc = ForecastView(peak_rps=560.0, horizon_seconds=300, generated_at=990.0, mean_rps=300.0)
    no_mean = ForecastView(peak_rps=560.0, horizon_seconds=300, generated_at=990.0)
    mean = mk.spec(scaling={"forecastSizing": "mean"})
    got = {}
    for name, spec, forecast in (
        ("default", None, fc),
        ("peak", mk.spec(scaling={"forecastSizing": "peak"}), fc),
        ("mean", mean, fc),
        ("mean, none known", mean, no_mean),
    ):
        view = mk.view(base_pods(mk, 60.0), forecast=forecast, **({"spec": spec} if spec else {}))
        plan = decide(view, model, Memory(), S)
        add = next(a for a in plan.actions if a.kind is ActionKind.ADD_REPLICAS)
        got[name] = (plan.active_target, add.message)
    assert [got[n][0] for n in ("default", "peak", "mean", "mean, none known")] == [4, 4, 3, 4]
    assert "forecast p90 peak 560.0" in got["default"][1] and "forecast p90 mean 300.0" in got["mean"][1]
    assert "forecast p90 peak 560.0" in got["mean, none known"][1]
    with pytest.raises(ValueError, match="forecastSizing"):
        mk.spec(scaling={"forecastSizing": "max"})


def test_the_cold_pool_absorbs_load_above_the_forecasts_peak_whatever_the_sizing(
    mk: Any, model: CapacityModel
) -> None:
    # demand of 400 req/s against a p90 mean of 100 and a p90 peak of 280: 120 req/s above the peak
    # (one pod at a batch-16 pod's full 222 req/s) under either sizing; sized for the mean, load
    # between the mean and the peak is foreseen load, not a miss the cold pool must hold pods for
    fc = ForecastView(peak_rps=280.0, horizon_seconds=300, generated_at=990.0, mean_rps=100.0)
    got = {}
    for sizing in ("peak", "mean"):
        spec = mk.spec(scaling={"forecastSizing": sizing}, replicas={"min": 1, "max": 16})
        memory = Memory()
        plan = decide(mk.view(base_pods(mk, 200.0), forecast=fc, spec=spec), model, memory, S)
        got[sizing] = (memory.misses[0][1], plan.cold_target)
    assert got["peak"] == got["mean"]
    assert got["peak"][0] == pytest.approx(120.0)
    quiet = decide(mk.view(base_pods(mk, 100.0), forecast=fc, spec=spec), model, Memory(), S)
    assert got["peak"][1] == quiet.cold_target + 1  # one more cold pod for the miss


def test_scale_down_waits_for_the_stabilisation_window_then_demotes_promoted_first(
    mk: Any,
    model: CapacityModel,
) -> None:
    pods = [
        mk.pod("a1", rps=10.0, batch=8, created=5),
        mk.pod("a2", rps=10.0, batch=8, created=9),
        mk.pod("w1", W, labels.ROLE_SERVING, "serving", rps=10.0, batch=8, created=7),
        mk.pod("w2", W),
    ]
    memory = Memory()
    for t in range(0, 60, 5):  # a 60-s window: nothing before it has passed
        plan = decide(mk.view(pods, now=1000 + t, disruptions_allowed=1), model, memory, S)
        assert not ops(plan, OpKind.DEMOTE), t
    plan = decide(mk.view(pods, now=1061, disruptions_allowed=1), model, memory, S)
    assert ops(plan, OpKind.DEMOTE) == ["w1"]  # one at a time (PDB), the promoted pod first
    assert plan.actions[0].kind is ActionKind.DEMOTE and plan.actions[0].trigger is ActionTrigger.LOAD_DROP
    # the PDB covers the active pool: it holds active victims, not the promoted standby pod
    active_only = [p for p in pods if p.pool == labels.POOL_ACTIVE or p.role != labels.ROLE_SERVING]
    held = decide(mk.view(active_only, now=1062, disruptions_allowed=0), model, memory, S)
    assert not ops(held, OpKind.DEMOTE) and any("PodDisruptionBudget" in n for n in held.notes)
    unready = [replace(p, ready=False) if p.name == "a1" else p for p in pods]
    held = decide(mk.view(unready, now=1063, disruptions_allowed=1), model, memory, S)
    assert not ops(held, OpKind.DEMOTE) and any("not ready" in n for n in held.notes)


def test_observed_load_is_held_for_the_window_but_a_lowered_forecast_is_not(
    mk: Any, model: CapacityModel
) -> None:
    # 4 pods serve 40 req/s each: the load alone wants 2 (~150 per pod), a forecast of 560 wants 4
    pods = [mk.pod(f"a{i}", rps=40.0, batch=8, created=i) for i in (1, 2, 3, 4)]
    memory = Memory()
    high = ForecastView(peak_rps=560.0, horizon_seconds=300, generated_at=1000.0)
    for t in range(0, 30, 5):
        plan = decide(mk.view(pods, now=1000 + t, forecast=high, disruptions_allowed=1), model, memory, S)
        assert not ops(plan, OpKind.DEMOTE), t
    # the forecast drops to 300 (2 pods) once the window began: it looks ahead already, so the
    # planner follows it down after the short forecast hold (60 s from its last high sample, at
    # 1025), not after the stabilisation window: that would count the forecast's peak twice
    low = replace(high, peak_rps=300.0, generated_at=1030.0)
    plan = decide(mk.view(pods, now=1061, forecast=low, disruptions_allowed=1), model, memory, S)
    assert not ops(plan, OpKind.DEMOTE)  # held: a forecast that flickers must not flap pods
    plan = decide(mk.view(pods, now=1086, forecast=low, disruptions_allowed=1), model, memory, S)
    assert ops(plan, OpKind.DEMOTE) == ["a4"]
    # observed load that wanted 4 pods 30 s ago is held for the whole 60-s window
    memory = Memory()
    busy = [mk.pod(f"a{i}", rps=140.0, batch=8, created=i) for i in (1, 2, 3, 4)]
    decide(mk.view(busy, now=1000, disruptions_allowed=1), model, memory, S)
    plan = decide(mk.view(pods, now=1030, forecast=low, disruptions_allowed=1), model, memory, S)
    assert not ops(plan, OpKind.DEMOTE)
    plan = decide(mk.view(pods, now=1061, forecast=low, disruptions_allowed=1), model, memory, S)
    assert ops(plan, OpKind.DEMOTE) == ["a4"]


def test_forecast_misses_are_absorbed_at_full_capacity(mk: Any, model: CapacityModel) -> None:
    # 170 req/s above the forecast: more than one pod's ~150 at the 80% target, less than its ~188
    # at full load; the cold pods absorb a peak that has already happened, so one is enough
    fc = ForecastView(peak_rps=130.0, horizon_seconds=300, generated_at=1000.0)
    plan = decide(mk.view(base_pods(mk, 150.0), forecast=fc), model, Memory(), S)
    assert (plan.warm_target, plan.cold_target) == (2, 1 + 1)


def test_a_restarted_planner_does_not_scale_down_at_once(mk: Any, model: CapacityModel) -> None:
    pods = [mk.pod(f"a{i}", rps=1.0, created=i) for i in (1, 2, 3)]
    memory = Memory()
    plan = decide(mk.view(pods, now=5000, disruptions_allowed=1), model, memory, S)
    assert not ops(plan, OpKind.DEMOTE)
    plan = decide(mk.view(pods, now=5061, disruptions_allowed=1), model, memory, S)
    assert ops(plan, OpKind.DEMOTE) == ["a3"]  # the newest active pod... after a full window


def test_a_demoted_pod_settles_to_warm_once_idle_then_steps_down(mk: Any, model: CapacityModel) -> None:
    draining = mk.pod("a2", role=labels.ROLE_STANDBY, state="serving", demoted_at=1000.0, idle=0.2, rps=3.0)
    plan = decide(mk.view([mk.pod("a1", rps=5.0), draining], now=1001), model, Memory(), S)
    assert not ops(plan, OpKind.SETTLE_WARM)  # requests still arrive
    idle = mk.pod("a2", role=labels.ROLE_STANDBY, state="serving", demoted_at=1000.0, idle=1.5)
    assert ops(
        decide(mk.view([mk.pod("a1", rps=5.0), idle], now=1002), model, Memory(), S), OpKind.SETTLE_WARM
    ) == ["a2"]
    warm = mk.pod("a2", role=labels.ROLE_STANDBY, state="warm", demoted_at=1000.0)
    assert not ops(decide(mk.view([mk.pod("a1"), warm], now=1030), model, Memory(), S), OpKind.UNLOAD)
    assert ops(decide(mk.view([mk.pod("a1"), warm], now=1061), model, Memory(), S), OpKind.UNLOAD) == ["a2"]
    cold = mk.pod("a2", role=labels.ROLE_STANDBY, state="cold", demoted_at=1100.0)
    plan = decide(mk.view([mk.pod("a1"), cold], now=1161), model, Memory(), S)
    assert ops(plan, OpKind.RELEASE) == ["a2"] and plan.active_target == 1
    unready = mk.pod("a3", ready=False)
    plan = decide(mk.view([mk.pod("a1"), cold, unready], now=1161), model, Memory(), S)
    assert not ops(plan, OpKind.RELEASE)  # the ReplicaSet would delete the unready pod instead


def test_a_surge_cancels_the_way_down_first(mk: Any, model: CapacityModel) -> None:
    pods = [
        mk.pod("a1", rps=200.0, batch=16),
        mk.pod("a2", role=labels.ROLE_STANDBY, state="warm", demoted_at=900.0, created=3),
        mk.pod("w1", W, created=1),
    ]
    plan = twice(mk.view(pods), model)
    assert ops(plan, OpKind.PROMOTE) == ["a2"]  # the demoted pod, not the fresh warm standby


def test_a_restarted_promoted_pod_is_promoted_again_and_unlabelled_ones_finished(
    mk: Any, model: CapacityModel
) -> None:
    restarted = mk.pod("w1", W, labels.ROLE_SERVING, "warm")
    loaded = mk.pod("c1", C, labels.ROLE_STANDBY, "serving")
    plan = decide(mk.view([mk.pod("a1", rps=5.0), restarted, loaded]), model, Memory(), S)
    assert ops(plan, OpKind.PROMOTE) == ["w1"]
    assert ops(plan, OpKind.LABEL_SERVING) == ["c1"]
    assert plan.cold_target == 2  # the cold pod serving counts as taken: its pool is refilled


def test_busy_pods_are_not_decided_on_twice(mk: Any, model: CapacityModel) -> None:
    memory = Memory()
    plan = twice(mk.view(base_pods(mk, 300.0)), model, memory)
    promoted = set(ops(plan, OpKind.PROMOTE))
    pods = [replace(p, busy="promote") if p.name in promoted else p for p in base_pods(mk, 300.0)]
    again = decide(mk.view(pods, now=1001), model, memory, S)
    assert not ops(again, OpKind.PROMOTE) and ActionKind.PROMOTE_WARM not in kinds(again)


def test_no_standby_pod_is_added_that_replicas_max_would_never_let_serve(
    mk: Any, model: CapacityModel
) -> None:
    fc = ForecastView(peak_rps=100.0, horizon_seconds=300, generated_at=1000.0)
    capped = mk.spec(replicas={"min": 1, "max": 3}, standby={"warm": 0, "cold": 0})
    pods = base_pods(mk, 150.0)[:2]  # 2 serving of max 3, 300 req/s against a forecast of 100
    plan = decide(mk.view(pods, forecast=fc, spec=capped), model, Memory(), S)
    assert plan.cold_target == 1  # 2 pods would absorb the miss; only 1 more may ever serve
    full = mk.spec(replicas={"min": 1, "max": 2}, standby={"warm": 0, "cold": 0})
    plan = decide(mk.view(pods, forecast=fc, spec=full), model, Memory(), S)
    assert plan.cold_target == 0 and ActionKind.REFILL_STANDBY not in kinds(plan)
    one_warm = mk.spec(replicas={"min": 1, "max": 3}, standby={"warm": 1, "cold": 0})
    plan = decide(mk.view([*pods, mk.pod("w1", W)], forecast=fc, spec=one_warm), model, Memory(), S)
    assert (plan.warm_target, plan.cold_target) == (1, 0)  # the spec's warm pod covers the one pod


def test_the_cold_pool_grows_to_absorb_what_the_forecast_missed(mk: Any, model: CapacityModel) -> None:
    memory = Memory()
    fc = ForecastView(peak_rps=100.0, horizon_seconds=300, generated_at=1000.0)
    plan = decide(mk.view(base_pods(mk, 150.0), forecast=fc), model, memory, S)  # 300 req/s vs 100 forecast
    # the spec's 1, plus 2 pods for the 200 req/s missed (~150 per pod); they hold no GPU until
    # loaded, and the warm pool, which a surge takes first, stays the spec's size
    assert (plan.warm_target, plan.cold_target) == (2, 1 + 2)
    grow = [
        a for a in plan.actions if a.kind is ActionKind.REFILL_STANDBY and a.trigger is ActionTrigger.FORECAST
    ]
    assert grow and "Cold pool grows to 3" in grow[0].message
    assert "200 req/s above the forecast" in grow[0].message
    calm = decide(mk.view(base_pods(mk, 20.0), forecast=fc, now=1500.0), model, memory, S)
    assert calm.cold_target == 3  # remembered for an hour
    later = decide(
        mk.view(base_pods(mk, 20.0), forecast=replace(fc, generated_at=5000.0), now=5000.0), model, memory, S
    )
    assert later.cold_target == 1  # an hour later the miss is forgotten


def test_a_pod_no_node_has_room_for_holds_no_scale_down(mk: Any, model: CapacityModel) -> None:
    # a replica added on a full node stays Pending: on its way to serving it would hold every
    # scale-down for its start grace; waiting for a node it is neither capacity nor on its way
    pods = [
        mk.pod("a1", rps=10.0, batch=8, created=5),
        mk.pod("a2", rps=10.0, batch=8, created=9),
        mk.pod("w1", W, labels.ROLE_SERVING, "serving", rps=10.0, batch=8, created=7),
        mk.pod("w2", W),
    ]
    pending = replace(mk.pod("a3", unreachable=True, ready=False, created=990), starting=True)
    results = {}
    for unplaced in (False, True):
        memory = Memory()
        held = [*pods, replace(pending, unplaced=unplaced)]
        for t in (*range(0, 60, 5), 61):
            plan = decide(mk.view(held, now=1000 + t, disruptions_allowed=1), model, memory, S)
        results[unplaced] = plan
    assert not ops(results[False], OpKind.DEMOTE)  # a pod really starting holds it
    plan = results[True]
    assert ops(plan, OpKind.DEMOTE) == ["w1"]
    assert plan.numbers.unplaced == 1 and plan.numbers.incoming == 0
    assert any("wait for a node with room" in n and "a3" in n for n in plan.notes)
    # and under load it is counted where it stands: no further replica is added beside it
    busy = [*base_pods(mk, 300.0), replace(pending, unplaced=True)]
    surge = twice(mk.view(busy, now=2000), model)
    assert surge.active_target <= 3


def test_a_refill_waiting_for_a_node_is_not_taken_and_asks_for_no_other(
    mk: Any, model: CapacityModel
) -> None:
    # w1 and w2 were promoted; their two refills wait for a node with room. Counted as taken from
    # the pool, each would ask for another refill, which would wait too, up to the operator's cap
    pods = [
        mk.pod("a1", rps=20.0, batch=8, created=5),
        mk.pod("w1", W, labels.ROLE_SERVING, "serving", rps=20.0, batch=8, created=1),
        mk.pod("w2", W, labels.ROLE_SERVING, "serving", rps=20.0, batch=8, created=2),
        mk.pod("c1", C),
    ]
    waiting = [
        replace(mk.pod(n, W, unreachable=True, ready=False, created=990), starting=True, unplaced=True)
        for n in ("w3", "w4")
    ]
    memory = Memory()
    for t in range(3):
        plan = decide(mk.view([*pods, *waiting], now=1000 + t), model, memory, S)
        assert plan.warm_target == 2 + 2, plan.warm_target  # the spec's 2 plus the 2 promoted
        assert ActionKind.REFILL_STANDBY not in kinds(plan)


def test_only_a_pod_the_scheduler_found_no_node_for_is_unplaced() -> None:
    from outrider_scheduler.planner.sampling import _unplaced

    said = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    assert _unplaced({"spec": {}, "status": {"phase": "Pending", "conditions": [said]}})
    # not yet looked at, bound, or scheduled and starting: none of these waits for room
    assert not _unplaced({"spec": {}, "status": {"phase": "Pending"}})
    assert not _unplaced({"spec": {"nodeName": "n1"}, "status": {"conditions": [said]}})
    ok = {"type": "PodScheduled", "status": "True"}
    assert not _unplaced({"spec": {"nodeName": "n1"}, "status": {"conditions": [ok]}})


def test_the_forecast_hold_does_not_hold_observed_load_beyond_its_window(
    mk: Any, model: CapacityModel
) -> None:
    # an 8-s stabilisation window and no forecast: a surge's pods step down 8 s after it, not after
    # the 60-s forecast hold, which holds only what the forecast wanted
    s = mk.spec(scaling={"targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": 8})
    busy = [mk.pod(f"a{i}", rps=140.0, batch=8, created=i) for i in (1, 2, 3, 4)]
    idle = [mk.pod(f"a{i}", rps=40.0, batch=8, created=i) for i in (1, 2, 3, 4)]
    memory = Memory()
    decide(mk.view(busy, now=1000, spec=s, disruptions_allowed=1), model, memory, S)
    plan = decide(mk.view(idle, now=1005, spec=s, disruptions_allowed=1), model, memory, S)
    assert not ops(plan, OpKind.DEMOTE)
    plan = decide(mk.view(idle, now=1010, spec=s, disruptions_allowed=1), model, memory, S)
    assert ops(plan, OpKind.DEMOTE) == ["a4"]


def test_a_drained_pod_unloads_at_once_when_the_warm_pool_is_full(mk: Any, model: CapacityModel) -> None:
    # a3 was demoted 10 s ago and has drained to warm; the warm pool has its 2 pods of its own, so
    # a3 holds a GPU for nothing: it unloads now, not after the 60-s window
    serving = [mk.pod("a1", rps=40.0, batch=8, created=1), mk.pod("a2", rps=40.0, batch=8, created=2)]
    a3 = mk.pod("a3", labels.POOL_ACTIVE, labels.ROLE_STANDBY, "warm", demoted_at=990.0, created=3)
    full = [*serving, a3, mk.pod("w1", W), mk.pod("w2", W), mk.pod("c1", C)]
    memory = Memory(started=900.0)
    plan = decide(mk.view(full, now=1000, disruptions_allowed=1), model, memory, S)
    assert ops(plan, OpKind.UNLOAD) == ["a3"]
    unload = next(a for a in plan.actions if a.kind is ActionKind.UNLOAD)
    assert "the warm pool has its 2" in unload.message
    # a refill of the warm pool is still starting: a3 stays warm, promotable at once, until then
    short = [*serving, a3, mk.pod("w1", W), mk.pod("c1", C)]
    plan = decide(mk.view(short, now=1000, disruptions_allowed=1), model, Memory(started=900.0), S)
    assert not ops(plan, OpKind.UNLOAD)
    plan = decide(mk.view(short, now=1051, disruptions_allowed=1), model, Memory(started=900.0), S)
    assert ops(plan, OpKind.UNLOAD) == ["a3"]  # the window is over


def test_a_short_surge_keeps_what_it_scaled_up_for_for_the_whole_window(
    mk: Any, model: CapacityModel
) -> None:
    # 600 req/s for two samples promotes w1 and w2; the burst ends at once. The window (60 s) must
    # still hold the 4 pods it wanted: a window of averaged load (a 14-s burst barely moves a minute's
    # mean) demoted them as soon as the load stopped, and the next burst promoted them again
    memory = Memory()
    for t in range(900, 1000, 5):  # calm before the burst
        decide(mk.view(base_pods(mk, 20.0), now=t), model, memory, S)
    twice(mk.view(base_pods(mk, 300.0)), model, memory)
    after = [
        mk.pod("a1", rps=5.0, batch=16, created=1),
        mk.pod("a2", rps=5.0, batch=16, created=2),
        mk.pod("w1", W, labels.ROLE_SERVING, "serving", rps=5.0, batch=16, created=3),
        mk.pod("w2", W, labels.ROLE_SERVING, "serving", rps=5.0, batch=16, created=4),
        mk.pod("c1", C),
    ]
    for t in (5, 20, 55):
        plan = decide(mk.view(after, now=1000 + t, disruptions_allowed=1), model, memory, S)
        assert not ops(plan, OpKind.DEMOTE), t
    plan = decide(mk.view(after, now=1062, disruptions_allowed=1), model, memory, S)
    assert ops(plan, OpKind.DEMOTE) == ["w2"]  # the window is over: promoted pods leave first
