"""``make profile-runtime``: measure a capacity profile (compute time per batch size) of a real runtime.

Starts ``outrider runtime serve`` with the builtin MiniLM model (one intra-op thread, one CPU's worth
of work per batch), sends requests of exactly ``b`` rows for each batch size ``b``
and reads the runtime's own per-size batch statistics (``batchStats`` of ``/v2/admin/load``), so
the figures are what the planner's capacity model later learns from the pods. Writes the profile
(JSON) to ``bench/results/capacity-minilm-cpu.json`` and, with ``--install``, to the planner's
shipped default (``scheduler/outrider_scheduler/planner/profiles/minilm-cpu.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from local_runtime import start_runtime, wait_ready

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "capacity-minilm-cpu.json"
INSTALLED = REPO / "scheduler" / "outrider_scheduler" / "planner" / "profiles" / "minilm-cpu.json"
SIZES = (1, 2, 4, 8, 16, 32, 64)
TEXT = (
    "Outrider warms standby pods before the surge arrives so that requests keep meeting their "
    "latency target while new capacity is placed on spare accelerators by the scheduler extender"
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sentence(i: int) -> str:
    n = (8, 12, 16, 10, 14, 20)[i % 6]
    words = TEXT.split()
    return " ".join(words[(i + k) % len(words)] for k in range(n)).capitalize() + "."


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def batch_stats(base: str) -> dict[int, tuple[int, float]]:
    load = get(f"{base}/v2/admin/load")
    return {s["batchSize"]: (s["count"], s["seconds"]) for s in load.get("batchStats", [])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="Requests per batch size (default 40).")
    ap.add_argument(
        "--install", action="store_true", help="Also write the planner's shipped default profile."
    )
    args = ap.parse_args()
    port = 18750
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_runtime(Path(tmp), "runtime", port, {"maxBatchSize": max(SIZES), "minBatchDelayMs": 0})
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(port, proc)
            points = []
            for b in SIZES:
                before = batch_stats(base)
                for r in range(args.requests):
                    rows = [sentence(r * b + k) for k in range(b)]
                    post(
                        f"{base}/v2/models/minilm/infer",
                        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [b], "data": rows}]},
                    )
                after = batch_stats(base)
                count = after.get(b, (0, 0.0))[0] - before.get(b, (0, 0.0))[0]
                seconds = after.get(b, (0, 0.0))[1] - before.get(b, (0, 0.0))[1]
                if count <= 0:
                    raise SystemExit(f"no batch of {b} rows was executed; the runtime split the requests")
                mean = seconds / count
                points.append({"batchSize": b, "seconds": round(mean, 6)})
                log(f"  batch {b:>3}: {count} batches, {mean * 1000:.2f} ms each, {b / mean:.0f} rows/s")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    profile = {
        "apiVersion": "outrider.dev/v1alpha1",
        "kind": "CapacityProfile",
        "model": "minilm",
        "uri": "builtin:all-minilm-l6-v2",
        "hardware": f"cpu ({platform.machine()}, 1 intra-op thread), measured {time.strftime('%Y-%m-%d')}",
        "workers": 1,
        "rowsPerRequest": 1.0,
        "points": points,
    }
    text = json.dumps(profile, indent=2) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    log(f"wrote {OUT}")
    if args.install:
        INSTALLED.write_text(text)
        log(f"wrote {INSTALLED}")
    per_row = [p["seconds"] / p["batchSize"] for p in points]
    print(
        json.dumps(
            {
                "profile": str(OUT),
                "per_row_ms": [round(x * 1000, 3) for x in per_row],
                "batch_gain_64_vs_1": round(float(np.divide(per_row[0], per_row[-1])), 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
