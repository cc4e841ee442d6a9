"""``outrider simulate``: replay a trace through the planner and the alternatives (see docs/simulate.md).

Exit codes: 0 success, 2 bad input (a malformed trace names its line; an unusable profile names
its field; an unknown policy is listed with the known ones).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["register"]

REPO_SURGE = Path(__file__).resolve().parents[3] / "bench" / "results" / "surge.json"


def _run(args: argparse.Namespace) -> int:
    from outrider_scheduler.forecast.errors import ForecastError
    from outrider_scheduler.forecast.traces import load_trace
    from outrider_scheduler.planner.errors import ProfileError
    from outrider_scheduler.planner.profile import default_profile, load_profile

    from .fleet import Timings
    from .report import document, format_table, write_outputs
    from .runner import ALL_POLICIES, SimSettings, build_policy, prepare, run_policy

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    names = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in names if p not in ALL_POLICIES]
    if unknown or not names:
        print(
            f"error: unknown policies {unknown or names}; known: {', '.join(ALL_POLICIES)}", file=sys.stderr
        )
        return 2
    if args.slo_p99_ms <= 0 or args.peak_replicas < 1:
        print("error: --slo-p99-ms must be > 0 and --peak-replicas >= 1", file=sys.stderr)
        return 2
    ranges = (
        ("--warm-pods", args.warm_pods, 0, 64, "standby.warm"),
        ("--target-utilization", args.target_utilization, 10, 100, "scaling.targetUtilizationPercent"),
        ("--variability", args.variability, 0.05, 10, "(ca2 + cs2) / 2; Poisson arrivals alone give 0.5"),
    )
    for flag, value, lo, hi, what in ranges:
        if not lo <= value <= hi:
            print(f"error: {flag} must be {lo:g}-{hi:g} ({what}), got {value:g}", file=sys.stderr)
            return 2
    try:
        trace = load_trace(args.trace)
        profile = load_profile(args.profile) if args.profile else default_profile()
    except (ForecastError, ProfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    timings = Timings.from_surge_bench(Path(args.timings) if args.timings else REPO_SURGE)
    settings = SimSettings(
        slo_p99_ms=args.slo_p99_ms,
        peak_replicas=args.peak_replicas,
        quick=args.quick,
        warm_pods=args.warm_pods,
        target_utilization_percent=args.target_utilization,
        forecast_sizing=args.forecast_sizing,
        variability=args.variability,
    )
    started = time.perf_counter()
    try:
        sim = prepare(trace, profile, timings, settings, say)
    except (ForecastError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = {}
    for name in [n for n in ALL_POLICIES if n in names]:
        say(f"{name}: replaying {len(sim.rates)} s")
        results[name] = run_policy(sim, build_policy(name, sim), say)
    doc = document(sim, results)
    doc["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(format_table(doc))
    jpath, ppath = write_outputs(doc, sim, results, Path(args.out))
    print(f"wrote {jpath} and {ppath}")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` arguments to ``parser``."""
    from outrider_operator.api.scaling import ForecastSizing

    parser.add_argument("--trace", required=True, help="CSV with header t_seconds,requests (bins of 1-60 s).")
    parser.add_argument(
        "--policies", default="outrider,hpa,kpa,dynamo,static-peak,oracle", help="Comma-separated policies."
    )
    parser.add_argument("--slo-p99-ms", type=float, default=200.0, help="Latency SLO, p99 ms (default 200).")
    parser.add_argument(
        "--peak-replicas", type=int, default=16, help="Replicas static-peak needs (default 16)."
    )
    parser.add_argument(
        "--profile", default=None, help="Capacity profile (default: the shipped MiniLM CPU one)."
    )
    parser.add_argument(
        "--timings", default=None, help="surge.json with measured timings (default: the repo's)."
    )
    parser.add_argument(
        "--warm-pods",
        type=int,
        default=0,
        help="Outrider's warm standby pods, each holding a GPU (default 0, the API's default).",
    )
    parser.add_argument(
        "--target-utilization",
        type=int,
        default=80,
        help="Outrider's scaling.targetUtilizationPercent: how busy it lets a serving replica be "
        "(default 80, the API's default).",
    )
    parser.add_argument(
        "--forecast-sizing",
        choices=[s.value for s in ForecastSizing],
        default=ForecastSizing.PEAK.value,
        help="Outrider's scaling.forecastSizing: size serving pods for the forecast's p90 peak "
        "(default, the API's) or its p90 mean.",
    )
    parser.add_argument(
        "--variability",
        type=float,
        default=0.65,
        help="v = (ca2 + cs2) / 2 of the random-arrival wait (default 0.65: Poisson arrivals, service "
        "times with cs2 0.3; make bench-twin fits it on its machine).",
    )
    parser.add_argument("--out", default="simulate-out", help="Output folder (simulate.json, simulate.png).")
    parser.add_argument("--quick", action="store_true", help="The first 6 hours only, a lighter forecaster.")
    parser.set_defaults(func=_run)
