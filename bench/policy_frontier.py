"""``make bench-frontier``: SLO minutes against GPU-hours as each policy's own target moves.

`make bench-policy` compares the policies at one setting each (HPA and Knative at their 70%
targets, Outrider at its default 80%). A team choosing an autoscaler also asks what each one costs
at the SLO it needs, so this replays every shared trace through:

- Outrider at ``scaling.targetUtilizationPercent`` 70, 80, 90 and 100, sizing serving pods for the
  forecast's p90 peak (``scaling.forecastSizing: peak``, the default), and at 70, 80 and 90 sizing
  them for its p90 mean (``outrider-mean``);
- HPA with its per-pod request-rate target at 50-90% of a replica's throughput;
- Knative's KPA with its target utilisation at 50, 70 and 90%.

Everything else is `outrider simulate`'s (the same scaled arrivals, server model, timings and
forecast for every run of a trace: each trace is prepared once). For each Outrider point (either
sizing) it reports HPA's fewest violating minutes at no more GPU-hours, HPA's fewest GPU-hours at no
more violating minutes, and the points of other policies that are at least as good on both numbers
and better on one (``dominated_by``). Writes ``bench/results/policy-frontier.json``; ``--only STEM`` runs some
traces, ``--quick`` the first 6 hours of each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from outrider_scheduler.forecast.traces import load_trace
from outrider_scheduler.planner.profile import default_profile
from outrider_scheduler.simulate.fleet import Timings
from outrider_scheduler.simulate.policies import HpaPolicy, KpaPolicy, Policy
from outrider_scheduler.simulate.runner import SimSettings, Simulation, build_policy, prepare, run_policy
from policy_bench import FILES, REPO, TRACES  # the same traces as `make bench-policy`

OUT = REPO / "bench" / "results" / "policy-frontier.json"
OUTRIDER_TARGETS = (70, 80, 90, 100)
OUTRIDER_MEAN_TARGETS = (70, 80, 90)
OUTRIDER = {"outrider": "peak", "outrider-mean": "mean"}
"""The Outrider policies replayed, and the ``scaling.forecastSizing`` of each."""
HPA_TARGETS = (50, 60, 70, 80, 90)
KPA_TARGETS = (50, 70, 90)


def policies(sim: Simulation) -> list[tuple[str, int, Policy]]:
    """Every (policy, target %, policy object) replayed on ``sim``."""
    out: list[tuple[str, int, Policy]] = []
    for name, targets in (("outrider", OUTRIDER_TARGETS), ("outrider-mean", OUTRIDER_MEAN_TARGETS)):
        for pct in targets:
            moved = dataclasses.replace(
                sim,
                settings=dataclasses.replace(
                    sim.settings, target_utilization_percent=pct, forecast_sizing=OUTRIDER[name]
                ),
            )
            out.append((name, pct, build_policy("outrider", moved)))
    # each setting from a fresh policy: a copy shares the original's mutable state
    for pct in HPA_TARGETS:  # build_policy's HPA targets 70% of a replica's throughput
        hpa = build_policy("hpa", sim)
        assert isinstance(hpa, HpaPolicy)
        out.append(("hpa", pct, dataclasses.replace(hpa, target_rps=hpa.target_rps * pct / 70)))
    for pct in KPA_TARGETS:
        kpa = build_policy("kpa", sim)
        assert isinstance(kpa, KpaPolicy)
        out.append(("kpa", pct, dataclasses.replace(kpa, utilisation=pct / 100)))
    return out


def compare(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each Outrider point (either sizing): HPA at no more GPU-hours, at no more violating
    minutes, and the points of other policies (the other sizing's too) at least as good on both
    numbers and better on one."""
    hpa = [p for p in points if p["policy"] == "hpa"]
    rows = []
    for o in (p for p in points if p["policy"] in OUTRIDER):
        others = [p for p in points if p["policy"] != o["policy"]]
        cheaper = [h["violating_minutes"] for h in hpa if h["gpu_hours"] <= o["gpu_hours"]]
        safer = [
            h["gpu_hours_vs_static_peak"] for h in hpa if h["violating_minutes"] <= o["violating_minutes"]
        ]
        rows.append(
            {
                "policy": o["policy"],
                "outrider_target_pct": o["target_pct"],
                "violating_minutes": o["violating_minutes"],
                "gpu_hours_vs_static_peak": o["gpu_hours_vs_static_peak"],
                "hpa_fewest_violating_minutes_at_no_more_gpu_hours": min(cheaper) if cheaper else None,
                "hpa_fewest_gpu_hours_vs_static_peak_at_no_more_violating_minutes": (
                    min(safer) if safer else None
                ),
                "dominated_by": [
                    f"{p['policy']}@{p['target_pct']}%"
                    for p in others
                    if p["gpu_hours"] <= o["gpu_hours"]
                    and p["violating_minutes"] <= o["violating_minutes"]
                    and (p["gpu_hours"] < o["gpu_hours"] or p["violating_minutes"] < o["violating_minutes"])
                ],
            }
        )
    return rows


def say(message: str) -> None:
    """Progress, on stderr."""
    print(message, file=sys.stderr, flush=True)


def run_trace(path: Path, quick: bool) -> dict[str, Any]:
    """Prepare ``path`` once and replay every policy setting on it."""
    timings = Timings.from_surge_bench(REPO / "bench" / "results" / "surge.json")
    sim = prepare(load_trace(path), default_profile(), timings, SimSettings(quick=quick), say)
    static = run_policy(sim, build_policy("static-peak", sim))
    static_hours = static.gpu_seconds / 3600
    points = []
    for name, pct, policy in policies(sim):
        say(f"{path.name}: {name} at {pct}%")
        res = run_policy(sim, policy)
        s = res.summary(static_hours)
        points.append(
            {
                "policy": name,
                "target_pct": pct,
                "violating_minutes": s["violating_minutes"],
                "slo_minutes_pct": s["slo_minutes_pct"],
                "gpu_hours": s["gpu_hours"],
                "gpu_hours_vs_static_peak": s["gpu_hours_vs_static_peak"],
                # with cold pods' GPU requests counted too (what they hold on a cluster today)
                "gpu_hours_allocated_vs_static_peak": round(s["gpu_hours_allocated"] / static_hours, 4),
                "static_gpu_hours": round(static_hours, 3),
                "seconds": s["seconds"],
            }
        )
        say(
            f"  {s['violating_minutes']} violating minutes, {s['gpu_hours_vs_static_peak']:.3f}x static "
            f"peak's GPU-hours, {points[-1]['gpu_hours_allocated_vs_static_peak']:.3f}x allocated "
            f"({s['seconds']:.0f} s)"
        )
    return {
        "minutes": len(static.minute_ok),
        "static_peak_violating_minutes": int((~static.minute_ok).sum()),
        "points": points,
        "outrider_against_the_others": compare(points),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="STEM", help="Trace stems to run (default: all).")
    ap.add_argument("--quick", action="store_true", help="The first 6 hours of each trace.")
    ap.add_argument("--out", default=str(OUT), help=f"Output file (default {OUT.relative_to(REPO)}).")
    args = ap.parse_args(argv)
    stems = {Path(f).stem: f for f in FILES}
    unknown = sorted(set(args.only or []) - set(stems))
    if unknown:
        ap.error(f"unknown traces {unknown}; known: {', '.join(stems)}")
    chosen = [stems[s] for s in args.only] if args.only else list(FILES)
    started = time.time()
    doc: dict[str, Any] = {
        "settings": {
            "outrider_target_utilization_pct": list(OUTRIDER_TARGETS),
            "outrider_mean_target_utilization_pct": list(OUTRIDER_MEAN_TARGETS),
            "hpa_target_pct_of_throughput": list(HPA_TARGETS),
            "kpa_target_utilization_pct": list(KPA_TARGETS),
            "quick": args.quick,
            # the rest of `outrider simulate`'s settings (the target and sizing moved above left out)
            "simulate": {
                k: v
                for k, v in dataclasses.asdict(SimSettings(quick=args.quick)).items()
                if k not in ("target_utilization_percent", "forecast_sizing")
            },
        },
        "traces": {},
    }
    for name in chosen:
        print(f"==> {name}", file=sys.stderr, flush=True)
        doc["traces"][name] = run_trace(TRACES / name, args.quick)
    doc["wall_seconds"] = round(time.time() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    for name, t in doc["traces"].items():
        print(f"\n{name} ({t['minutes']} minutes): violating minutes / GPU-hours vs static peak")
        for p in t["points"]:
            print(
                f"  {p['policy']:13s} {p['target_pct']:3d}%  {p['violating_minutes']:5d}  "
                f"{p['gpu_hours_vs_static_peak']:.3f}"
            )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
