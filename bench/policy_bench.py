"""``make bench-policy``: ``outrider simulate`` on every shared trace, all policies, side by side.

Writes ``bench/results/policy/<trace>/simulate.json`` and ``simulate.png`` for each trace and a
summary ``bench/results/policy/summary.json`` (per trace, per policy: SLO minutes, GPU-hours, and
how Outrider fares against the issue's targets). The same settings for every trace.
``--variability V --out DIR`` runs the same with another random-arrival tail (a sensitivity check;
``bench/results/policy-v0.90/`` holds the one with the value ``make bench-twin`` fitted).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO.parent / "shared" / "traces"
OUT = REPO / "bench" / "results" / "policy"
FILES = (
    "azure_llm_2023_code_1s.csv",
    "azure_llm_2023_conv_1s.csv",
    "azure_functions_2019_sample1340_1min.csv",
    "azure_llm_2024_conv_10s.csv",
)


def targets(doc: dict[str, Any]) -> dict[str, Any]:
    """Outrider against the issue's targets on one trace."""
    p = doc["policies"]
    o, hpa = p.get("outrider"), p.get("hpa")
    out: dict[str, Any] = {}
    if o is None:
        return out
    out["slo_minutes_ge_99pct"] = o["slo_minutes_pct"] >= 99.0
    out["gpu_hours_le_0.6_static"] = (o["gpu_hours_vs_static_peak"] or 9) <= 0.6
    if "oracle" in p and p["oracle"]["gpu_hours"]:
        out["gpu_hours_vs_oracle"] = round(o["gpu_hours"] / p["oracle"]["gpu_hours"], 3)
        out["gpu_hours_le_1.3_oracle"] = out["gpu_hours_vs_oracle"] <= 1.3
    if hpa is not None:
        out["violating_le_fifth_of_hpa"] = o["violating_minutes"] * 5 <= max(hpa["violating_minutes"], 0)
        out["gpu_hours_le_hpa"] = o["gpu_hours"] <= hpa["gpu_hours"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Pass --quick to every run.")
    ap.add_argument(
        "--variability",
        type=float,
        default=None,
        help="Pass --variability to every run (default: the simulator's own, 0.65).",
    )
    ap.add_argument("--out", default=str(OUT), help=f"Output folder (default {OUT.relative_to(REPO)}).")
    args = ap.parse_args()
    root = Path(args.out)
    summary: dict[str, Any] = {"traces": {}}
    if args.variability is not None:
        summary["variability"] = args.variability
    started = time.time()
    for name in FILES:
        trace = TRACES / name
        out = root / trace.stem
        print(f"==> {name}", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "outrider_cli", "simulate", "--trace", str(trace), "--out", str(out)]
        if args.quick:
            cmd.append("--quick")
        if args.variability is not None:
            cmd += ["--variability", str(args.variability)]
        t0 = time.time()
        subprocess.run(cmd, check=True)
        doc = json.loads((out / "simulate.json").read_text())
        summary["traces"][name] = {
            "wall_seconds": round(time.time() - t0, 1),
            "policies": {
                k: {
                    m: v[m]
                    for m in (
                        "slo_minutes_pct",
                        "violating_minutes",
                        "gpu_hours",
                        "gpu_hours_vs_static_peak",
                        "gpu_hours_allocated",
                    )
                }
                for k, v in doc["policies"].items()
            },
            "outrider_targets": targets(doc),
        }
    summary["wall_seconds"] = round(time.time() - started, 1)
    (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
