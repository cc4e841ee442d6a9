"""``bench/policy_frontier.py``: each policy's own target moved, and Outrider compared at matched cost."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"


@pytest.fixture(scope="module")
def frontier(bench_module: Callable[[str], ModuleType]) -> ModuleType:
    return bench_module("policy_frontier")


def _point(policy: str, pct: int, violating: int, gpu: float) -> dict[str, Any]:
    return {
        "policy": policy,
        "target_pct": pct,
        "violating_minutes": violating,
        "gpu_hours": gpu,
        "gpu_hours_vs_static_peak": gpu / 10,
        "static_gpu_hours": 10.0,
    }


def test_outrider_is_compared_with_hpa_at_no_more_cost_and_no_more_violations(frontier: ModuleType) -> None:
    points = [
        _point("outrider", 80, 2, 7.0),
        _point("outrider", 100, 6, 5.0),
        _point("hpa", 50, 1, 9.0),
        _point("hpa", 70, 5, 6.5),
        _point("hpa", 90, 20, 4.0),
        _point("kpa", 70, 6, 5.0),  # the same on both numbers: not better on one
        _point("kpa", 90, 6, 4.5),
        _point("outrider-mean", 80, 2, 6.0),
    ]
    rows = {(r["policy"], r["outrider_target_pct"]): r for r in frontier.compare(points)}
    assert rows[("outrider-mean", 80)]["hpa_fewest_violating_minutes_at_no_more_gpu_hours"] == 20
    assert rows[("outrider-mean", 80)]["dominated_by"] == []
    rows = {pct: r for (policy, pct), r in rows.items() if policy == "outrider"}
    assert rows[80]["hpa_fewest_violating_minutes_at_no_more_gpu_hours"] == 5  # hpa@70 (6.5 <= 7)
    assert rows[80]["hpa_fewest_gpu_hours_vs_static_peak_at_no_more_violating_minutes"] == 0.9  # hpa@50
    assert rows[80]["dominated_by"] == ["outrider-mean@80%"]  # the other sizing counts too
    assert rows[100]["hpa_fewest_violating_minutes_at_no_more_gpu_hours"] == 20
    assert rows[100]["dominated_by"] == ["kpa@90%"]
    lone = frontier.compare([_point("outrider", 80, 0, 1.0), _point("hpa", 70, 3, 2.0)])[0]
    assert lone["hpa_fewest_violating_minutes_at_no_more_gpu_hours"] is None
    assert lone["hpa_fewest_gpu_hours_vs_static_peak_at_no_more_violating_minutes"] is None


def test_each_setting_gets_a_policy_of_its_own(frontier: ModuleType) -> None:
    from outrider_scheduler.forecast.traces import load_trace
    from outrider_scheduler.planner.profile import default_profile
    from outrider_scheduler.simulate.fleet import Timings
    from outrider_scheduler.simulate.runner import SimSettings, prepare

    trace = load_trace(TRACES / "azure_llm_2023_code_1s.csv")
    sim = prepare(trace, default_profile(), Timings(), SimSettings())
    made = frontier.policies(sim)
    assert [(n, p) for n, p, _ in made] == (
        [("outrider", p) for p in frontier.OUTRIDER_TARGETS]
        + [("outrider-mean", p) for p in frontier.OUTRIDER_MEAN_TARGETS]
        + [("hpa", p) for p in frontier.HPA_TARGETS]
        + [("kpa", p) for p in frontier.KPA_TARGETS]
    )
    outrider = [pol.spec.scaling.target_utilization_percent for n, _, pol in made if n == "outrider"]
    assert outrider == list(frontier.OUTRIDER_TARGETS)
    sizing = {n: {p.spec.scaling.forecast_sizing for m, _, p in made if m == n} for n in frontier.OUTRIDER}
    assert sizing == {"outrider": {"peak"}, "outrider-mean": {"mean"}}
    hpa = {p: pol.target_rps for n, p, pol in made if n == "hpa"}
    assert hpa[50] == pytest.approx(hpa[70] * 5 / 7)
    assert [pol.utilisation for n, _, pol in made if n == "kpa"] == [p / 100 for p in frontier.KPA_TARGETS]
    # no two share mutable state (a copy made with dataclasses.replace shares its original's)
    states = [id(pol._recs) for n, _, pol in made if n == "hpa"]
    assert len(set(states)) == len(states)
    for part in ("memory", "model"):
        owned = [id(getattr(pol, part)) for n, _, pol in made if n in frontier.OUTRIDER]
        assert len(set(owned)) == len(owned), part


def test_an_unknown_trace_is_refused_naming_the_known_ones(
    frontier: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f.json"
    with pytest.raises(SystemExit) as err:
        frontier.main(["--only", "nope", "--out", str(out)])
    assert err.value.code == 2
    assert "nope" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_the_frontier_of_one_hour_is_written(frontier: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    assert frontier.main(["--only", "azure_llm_2023_conv_1s", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    t = doc["traces"]["azure_llm_2023_conv_1s.csv"]
    ours = len(frontier.OUTRIDER_TARGETS) + len(frontier.OUTRIDER_MEAN_TARGETS)
    n = ours + len(frontier.HPA_TARGETS) + len(frontier.KPA_TARGETS)
    assert len(t["points"]) == n and len(t["outrider_against_the_others"]) == ours
    gpu = {(p["policy"], p["target_pct"]): p["gpu_hours"] for p in t["points"]}
    # a higher target holds fewer GPUs, for every policy
    assert gpu[("outrider", 100)] < gpu[("outrider", 70)]
    assert gpu[("outrider-mean", 80)] < gpu[("outrider", 80)]  # the p90 mean is under the p90 peak
    assert gpu[("hpa", 90)] < gpu[("hpa", 50)] and gpu[("kpa", 90)] < gpu[("kpa", 50)]
