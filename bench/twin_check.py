"""``make bench-twin``: is the simulator's latency model the real runtime's? Ten minutes side by side.

Starts real ``outrider runtime serve`` processes (MiniLM, one intra-op thread each), replays a
slice of a shared trace against them (open loop, its per-second rates scaled to keep the replicas
busy, requests shaped like the capacity profile's),
and runs the twin's server model on exactly the same arrivals and replicas. Reported per minute:
the measured p99 (the client's, every request) beside the twin's, and their ratio; the target is
agreement within 25%. Writes ``bench/results/twin.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from capacity_profile import sentence
from local_runtime import start_runtime, wait_ready
from outrider_devcluster.traffic import FixedRouter, LoadGenerator
from outrider_scheduler.forecast.traces import load_trace
from outrider_scheduler.planner.profile import default_profile, load_profile
from outrider_scheduler.simulate.runner import minute_p99_ms, replay_rates
from outrider_scheduler.simulate.servers import ServerModel

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "twin.json"
TRACE = REPO.parent / "shared" / "traces" / "azure_llm_2023_conv_1s.csv"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=str(TRACE), help="Trace to take the slice from.")
    ap.add_argument(
        "--start", type=int, default=1200, help="Slice start, seconds into the trace (default 1200)."
    )
    ap.add_argument("--minutes", type=int, default=10, help="Slice length in minutes (default 10).")
    ap.add_argument("--replicas", type=int, default=1, help="Runtime processes (default 1).")
    ap.add_argument(
        "--load", type=float, default=0.75, help="Peak load over the replicas' throughput (default 0.75)."
    )
    ap.add_argument("--profile", default=None, help="Capacity profile (default: the shipped one).")
    ap.add_argument(
        "--arrivals",
        choices=("poisson", "even"),
        default="poisson",
        help="Gaps between requests: exponential, as independent clients make (default), or even.",
    )
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    profile = load_profile(args.profile) if args.profile else default_profile()
    batch, delay_ms = 16, 10.0
    model = ServerModel(profile, profile.workers, delay_ms / 1000)
    trace = load_trace(args.trace)
    seconds = 60 * args.minutes
    per_second = replay_rates(trace)[args.start : args.start + seconds]  # as the twin replays it
    if len(per_second) < seconds:
        raise SystemExit(f"the trace has no {args.minutes} minutes from second {args.start}")
    scale = args.load * args.replicas * model.replica_rps(batch) / float(per_second.max())
    rates = per_second * scale
    texts = [sentence(i) for i in range(64)]
    port0 = 18800
    with tempfile.TemporaryDirectory() as tmp:
        batching = {"maxBatchSize": batch, "minBatchDelayMs": delay_ms}
        procs = [
            start_runtime(Path(tmp), f"runtime-{i}", port0 + i, batching, Path(tmp) / f"runtime-{i}.log")
            for i in range(args.replicas)
        ]
        try:
            for i, p in enumerate(procs):
                wait_ready(port0 + i, p)
            router = FixedRouter({f"r{i}": f"127.0.0.1:{port0 + i}" for i in range(args.replicas)})
            gen = LoadGenerator(
                router, texts=texts, max_inflight=1024, poisson_seed=7 if args.arrivals == "poisson" else None
            )
            log(
                f"replaying {args.minutes} min of {Path(args.trace).name} from {args.start} s: "
                f"{rates.mean():.0f} req/s mean, {rates.max():.0f} peak, on {args.replicas} replica(s)"
            )
            started = router.clock()
            report = asyncio.run(gen.run(lambda t: float(rates[min(len(rates) - 1, int(t))]), float(seconds)))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
    sent = np.array([r.sent - started for r in report.records])
    lat = np.array([r.seconds for r in report.records])
    ok = np.array([r.status == 200 for r in report.records])
    measured = []
    for m in range(args.minutes):
        sel = (sent >= 60 * m) & (sent < 60 * m + 60) & ok
        measured.append(float(np.percentile(lat[sel], 99)) * 1000 if sel.any() else float("nan"))
    twin = minute_p99_ms(*model.static_seconds(rates, args.replicas, batch), rates)
    ratio = [t / m if m > 0 else float("nan") for t, m in zip(twin, measured, strict=True)]
    within = [abs(r - 1) <= 0.25 for r in ratio]
    doc: dict[str, Any] = {
        "trace": Path(args.trace).name,
        "slice_start_s": args.start,
        "minutes": args.minutes,
        "replicas": args.replicas,
        "arrivals": args.arrivals,
        "load": args.load,
        "mean_rps": round(float(rates.mean()), 1),
        "peak_rps": round(float(rates.max()), 1),
        "requests": len(report.records),
        "failed": int((~ok).sum()),
        "per_minute": [
            {
                "minute": m,
                "measured_p99_ms": round(measured[m], 1),
                "twin_p99_ms": round(float(twin[m]), 1),
                "ratio": round(ratio[m], 3),
            }
            for m in range(args.minutes)
        ],
        "median_ratio": round(float(np.nanmedian(ratio)), 3),
        "minutes_within_25pct": int(sum(within)),
        "target": "every minute within 25%",
        "met": all(within),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
