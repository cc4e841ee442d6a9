"""``make bench-twin``: is the simulator's latency model the real runtime's? Ten minutes side by side.

Starts real ``outrider runtime serve`` processes (MiniLM, one intra-op thread each) and, as the
planner does with its pods, learns their service time per batch size from their own statistics
(``batchStats`` of ``/v2/admin/load``) before it predicts anything: a 30-s probe at half the shipped
profile's throughput (how fast is this machine today?), then a calibration slice of the trace.
Then it replays the held-out slice (open loop, per-second rates scaled to a share of the learned
throughput, requests shaped like the capacity profile's) and runs the twin's server model on
exactly the same arrivals and replicas, with the learned service times and, beside them, with the
shipped profile's. Reported per minute: the measured p99 (the client's, every request) beside the
twin's, and their ratio; the target is agreement within 25%. Writes ``bench/results/twin.json``.

The runtimes' statistics are also read at every minute boundary of the calibration and held-out
replays, and the twin is run again on each held-out minute with that minute's own service times:
once with the default variability ``v`` of the random-arrival tail, once with ``v`` fitted the same
way on the calibration minutes. Those two columns take most of the machine's drift out (each
minute's times are still folded onto the shipped profile by the planner's rules), and the fitted
``v`` absorbs whatever else widens the tail; what is left is mostly the queueing model's own error.

The shipped profile was measured on another day, perhaps on another machine, and this machine's
speed drifts by the hour (on 2026-12-07 it ran the same batches 1.4-1.6x slower than the profile
says); the calibration, run just before the held-out slice on the same processes, takes in that
drift and the load generator's own share of the CPU. Learning from the runtimes first is what the
planner does live. The probe and the calibration draw their Poisson arrivals with seed 7, the
held-out slice with seed 8.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from capacity_profile import sentence
from local_runtime import start_runtime, wait_ready
from outrider_devcluster.traffic import FixedRouter, LoadGenerator
from outrider_operator.api.runtime import RuntimeLoad
from outrider_scheduler.forecast.traces import load_trace
from outrider_scheduler.planner.capacity import CapacityModel
from outrider_scheduler.planner.learn_profile import Stats, add_stats, fold_totals, stats_since
from outrider_scheduler.planner.profile import CapacityProfile, default_profile, load_profile
from outrider_scheduler.simulate.runner import minute_p99_ms, replay_rates
from outrider_scheduler.simulate.servers import ServerModel

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "twin.json"
TRACE = REPO.parent / "shared" / "traces" / "azure_llm_2023_conv_1s.csv"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


BATCH, DELAY_MS, PORT0 = 16, 10.0, 18800
PROBE_SECONDS = 30


def runtime_load(port: int) -> RuntimeLoad:
    """One runtime's ``/v2/admin/load`` answer."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/admin/load", timeout=10) as resp:
        return RuntimeLoad.model_validate_json(resp.read())


def learn(model: CapacityModel, ports: list[int]) -> None:
    """Fold every runtime's batch statistics since its previous sample into ``model``."""
    for port in ports:
        load = runtime_load(port)
        model.observe_workers(load.workers, None)
        model.observe_batches(f"runtime-{port}", load.batch_stats, load.boot_id)


Snapshot = dict[int, tuple[str, Stats]]
"""Per runtime port: its boot id and, per batch size, batches run and their summed seconds."""


def snapshot(ports: list[int]) -> Snapshot:
    """Every runtime's cumulative batch statistics now."""
    out: Snapshot = {}
    for port in ports:
        load = runtime_load(port)
        out[port] = (load.boot_id, {s.batch_size: (s.count, s.seconds) for s in load.batch_stats})
    return out


class MinuteSnapshots(threading.Thread):
    """Takes a :func:`snapshot` at every minute boundary of a replay that starts at ``started``
    (``time.monotonic``), the last one at its end: the runtimes' own service times minute by minute.
    A snapshot that fails or comes more than 2 s late is None (its minutes are not scored), and
    ``late`` records how late each one was taken."""

    def __init__(self, ports: list[int], started: float, minutes: int) -> None:
        super().__init__(daemon=True)
        self.ports, self.started, self.minutes = ports, started, minutes
        self.taken: list[Snapshot | None] = []
        self.late: list[float | None] = []

    def run(self) -> None:
        for m in range(self.minutes + 1):
            due = self.started + 60 * m
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                got: Snapshot | None = snapshot(self.ports)
                late: float | None = round(time.monotonic() - due, 3)
            except OSError as exc:
                log(f"snapshot at minute {m} failed: {exc}")
                got, late = None, None
            if late is not None and late > 2.0:
                log(f"snapshot at minute {m} came {late:.1f} s late: that minute is not scored")
                got = None
            self.taken.append(got)
            self.late.append(late)


def minute_profiles(base: CapacityProfile, taken: list[Snapshot | None]) -> list[CapacityProfile | None]:
    """Each minute's :func:`minute_profile` between consecutive snapshots (None for a minute
    without a snapshot at both ends, or without a batch)."""
    return [
        minute_profile(base, before, after) if before is not None and after is not None else None
        for before, after in itertools.pairwise(taken)
    ]


def same_minute_p99_ms(
    profiles: list[CapacityProfile | None],
    base: CapacityProfile,
    rates: np.ndarray,
    replicas: int,
    variability: float,
) -> tuple[list[float], list[float | None]]:
    """The twin's p99 (ms) of each minute of ``rates``, each with the service times the runtimes
    measured in that same minute (``profiles``, from :func:`minute_profiles`); and those times at
    the benchmark's batch size over ``base``'s. NaN and None for a minute without a profile."""
    p99: list[float] = []
    slow: list[float | None] = []
    for m in range(len(rates) // 60):
        p_m = profiles[m] if m < len(profiles) else None
        if p_m is None:
            p99.append(float("nan"))
            slow.append(None)
            continue
        p99.append(float(twin_p99_ms(p_m, rates[60 * m : 60 * m + 60], replicas, variability)[0]))
        slow.append(round(service_ratio(p_m, base), 3))
    return p99, slow


def fit_variability(
    profiles: list[CapacityProfile | None],
    base: CapacityProfile,
    rates: np.ndarray,
    replicas: int,
    measured: list[float],
) -> float | None:
    """The random-arrival tail's variability ``v`` under which the twin, with each minute's own
    service times, best matches the ``measured`` minute p99s (least squares on log ratios over a
    grid of 0.3-4.0); None without a usable minute."""
    best: tuple[float, float] | None = None
    for v in np.arange(0.30, 4.001, 0.05):
        twin, _ = same_minute_p99_ms(profiles, base, rates, replicas, float(v))
        pairs = [(t, m) for t, m in zip(twin, measured, strict=False) if t > 0 and m > 0]
        if not pairs:
            return None
        cost = sum(float(np.log(t / m)) ** 2 for t, m in pairs)
        if best is None or cost < best[0]:
            best = (cost, float(v))
    return None if best is None else round(best[1], 2)


def minute_profile(base: CapacityProfile, before: Snapshot, after: Snapshot) -> CapacityProfile | None:
    """The service times of the batches run between two snapshots, by the planner's rules: summed
    over the runtimes and folded into a model seeded with ``base`` as ``outrider planner profile``
    does (a size with 5 batches or more replaces the base's point, the others are scaled by the
    speed factor). None when no batch ran."""
    totals: Stats = {}
    for port, (boot, stats) in after.items():
        old_boot, old_stats = before.get(port, (boot, {}))
        if old_boot != boot:
            old_stats = {}  # restarted in between: its counters began again
        totals = add_stats(totals, stats_since(old_stats, stats))
    return learned(fold_totals(totals, base)) if totals else None


def per_second(trace_path: str, start: int, minutes: int) -> np.ndarray:
    """The slice's requests per second, as the twin replays them."""
    rates = replay_rates(load_trace(trace_path))[start : start + 60 * minutes]
    if len(rates) < 60 * minutes:
        raise SystemExit(f"the trace has no {minutes} minutes from second {start}")
    return rates


def replay(router: FixedRouter, texts: list[str], rates: np.ndarray, seed: int | None) -> Any:
    """Send ``rates`` (one value per second), open loop; the load generator's report."""
    gen = LoadGenerator(router, texts=texts, max_inflight=1024, poisson_seed=seed)
    rate: Callable[[float], float] = lambda t: float(rates[min(len(rates) - 1, int(t))])  # noqa: E731
    return asyncio.run(gen.run(rate, float(len(rates))))


def measured_p99_ms(report: Any, started: float, minutes: int) -> list[float]:
    """The client's p99 (ms) of each minute's successful requests, by send time."""
    sent = np.array([r.sent - started for r in report.records])
    lat = np.array([r.seconds for r in report.records])
    ok = np.array([r.status == 200 for r in report.records])
    out = []
    for m in range(minutes):
        sel = (sent >= 60 * m) & (sent < 60 * m + 60) & ok
        out.append(float(np.percentile(lat[sel], 99)) * 1000 if sel.any() else float("nan"))
    return out


def twin_p99_ms(
    p: CapacityProfile, rates: np.ndarray, replicas: int, variability: float = ServerModel.variability
) -> np.ndarray:
    """The twin's p99 (ms) of each minute of ``rates`` on a fixed fleet of ``replicas``."""
    model = ServerModel(p, p.workers, DELAY_MS / 1000, variability=variability)
    return np.asarray(minute_p99_ms(*model.static_seconds(rates, replicas, BATCH), rates), dtype=float)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=str(TRACE), help="Trace to take the slices from.")
    ap.add_argument(
        "--start", type=int, default=2400, help="Held-out slice start, seconds into the trace (default 2400)."
    )
    ap.add_argument("--minutes", type=int, default=10, help="Held-out slice length in minutes (default 10).")
    ap.add_argument(
        "--calibrate-start", type=int, default=1200, help="Calibration slice start, seconds (default 1200)."
    )
    ap.add_argument(
        "--calibrate-minutes",
        type=int,
        default=3,
        help="Calibration slice length in minutes (default 3; 0: no calibration, the profile as is).",
    )
    ap.add_argument("--replicas", type=int, default=1, help="Runtime processes (default 1).")
    ap.add_argument(
        "--load", type=float, default=0.85, help="Peak load over the replicas' throughput (default 0.85)."
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
    if args.minutes < 1 or args.calibrate_minutes < 0 or not 0 < args.load <= 2:
        raise SystemExit("--minutes must be >= 1, --calibrate-minutes >= 0 and --load in (0, 2]")
    shipped = load_profile(args.profile) if args.profile else default_profile()
    seed = 7 if args.arrivals == "poisson" else None
    held_out = per_second(args.trace, args.start, args.minutes)
    calibration = None
    if args.calibrate_minutes:
        calibration = per_second(args.trace, args.calibrate_start, args.calibrate_minutes)
    learned_model = CapacityModel.from_profile(shipped)
    texts = [sentence(i) for i in range(64)]
    ports = [PORT0 + i for i in range(args.replicas)]

    def throughput(profile: CapacityProfile) -> float:
        server = ServerModel(profile, profile.workers, DELAY_MS / 1000)
        return float(args.replicas * server.replica_rps(BATCH))

    with tempfile.TemporaryDirectory() as tmp:
        batching = {"maxBatchSize": BATCH, "minBatchDelayMs": DELAY_MS}
        logs = Path(tmp)
        procs: list[Any] = []
        try:
            for p in ports:
                procs.append(start_runtime(logs, f"r{p}", p, batching, logs / f"r{p}.log"))
            for p, proc in zip(ports, procs, strict=True):
                wait_ready(p, proc)
            router = FixedRouter({f"r{p}": f"127.0.0.1:{p}" for p in ports})
            if calibration is not None:
                for port in ports:  # started by us and idle: every batch from here on counts
                    learned_model.count_from_zero(f"runtime-{port}", runtime_load(port).boot_id)
                probe = np.full(PROBE_SECONDS, 0.5 * throughput(shipped))
                log(f"probe: {PROBE_SECONDS} s at {probe[0]:.0f} req/s (half the shipped profile's peak)")
                replay(router, texts, probe, seed)
                learn(learned_model, ports)
                peak = args.load * throughput(learned(learned_model))
                cal_rates = calibration * peak / float(calibration.max())
                log(
                    f"calibration: {args.calibrate_minutes} min from {args.calibrate_start} s, "
                    f"{cal_rates.mean():.0f} req/s mean, {cal_rates.max():.0f} peak "
                    f"(speed {learned_model.speed:.2f}x the profile's time so far)"
                )
                cal_started = router.clock()
                cal_stats = MinuteSnapshots(ports, cal_started, args.calibrate_minutes)
                cal_stats.start()
                cal_report = replay(router, texts, cal_rates, seed)
                cal_stats.join(timeout=90)
                learn(learned_model, ports)
            profile = learned(learned_model) if calibration is not None else shipped
            rates = held_out * args.load * throughput(profile) / float(held_out.max())
            log(
                f"replaying {args.minutes} min of {Path(args.trace).name} from {args.start} s: "
                f"{rates.mean():.0f} req/s mean, {rates.max():.0f} peak, on {args.replicas} replica(s)"
            )
            started = router.clock()
            minute_stats = MinuteSnapshots(ports, started, args.minutes)
            minute_stats.start()
            report = replay(router, texts, rates, None if seed is None else seed + 1)
            minute_stats.join(timeout=90)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
    measured = measured_p99_ms(report, started, args.minutes)
    failed = sum(1 for r in report.records if r.status != 200)

    cal_late = cal_stats.late if calibration is not None else None

    def ratios(twin: np.ndarray) -> list[float]:
        return [t / m if m > 0 else float("nan") for t, m in zip(twin, measured, strict=True)]

    twin, twin_shipped = (
        twin_p99_ms(profile, rates, args.replicas),
        twin_p99_ms(shipped, rates, args.replicas),
    )
    ratio, ratio_shipped = ratios(twin), ratios(twin_shipped)
    # the twin again, each minute with the service times the runtimes measured in that same minute:
    # the queueing model alone, without the machine's drift since the calibration; then also with
    # the variability v fitted the same way on the calibration slice's minutes
    held_out_profiles = minute_profiles(shipped, minute_stats.taken)
    own, own_speed = same_minute_p99_ms(
        held_out_profiles, shipped, rates, args.replicas, ServerModel.variability
    )
    ratio_own = ratios(np.asarray(own))
    fitted_v = None
    if calibration is not None:
        cal_measured = measured_p99_ms(cal_report, cal_started, args.calibrate_minutes)
        cal_profiles = minute_profiles(shipped, cal_stats.taken)
        fitted_v = fit_variability(cal_profiles, shipped, cal_rates, args.replicas, cal_measured)
    fitted = (
        same_minute_p99_ms(held_out_profiles, shipped, rates, args.replicas, fitted_v)[0]
        if fitted_v is not None
        else [float("nan")] * args.minutes
    )
    ratio_fitted = ratios(np.asarray(fitted))
    within = [abs(r - 1) <= 0.25 for r in ratio]
    doc: dict[str, Any] = {
        "trace": Path(args.trace).name,
        "slice_start_s": args.start,
        "minutes": args.minutes,
        "calibration": (
            {
                "slice_start_s": args.calibrate_start,
                "minutes": args.calibrate_minutes,
                "probe_seconds": PROBE_SECONDS,
                "speed_vs_shipped_profile": round(learned_model.speed, 3),
                "learned_points": {str(p.batch_size): round(p.seconds, 6) for p in profile.points},
            }
            if calibration is not None
            else None
        ),
        "replicas": args.replicas,
        "arrivals": args.arrivals,
        "load": args.load,
        "mean_rps": round(float(rates.mean()), 1),
        "peak_rps": round(float(rates.max()), 1),
        "requests": len(report.records),
        "failed": failed,
        "per_minute": [
            {
                "minute": m,
                "measured_p99_ms": round(measured[m], 1),
                "twin_p99_ms": round(float(twin[m]), 1),
                "ratio": round(ratio[m], 3),
                "twin_shipped_profile_p99_ms": round(float(twin_shipped[m]), 1),
                "ratio_shipped_profile": round(ratio_shipped[m], 3),
                "twin_same_minute_p99_ms": finite(own[m], 1),
                "ratio_same_minute": finite(ratio_own[m], 3),
                "same_minute_batch16_vs_shipped": own_speed[m],
                "twin_same_minute_fitted_v_p99_ms": finite(fitted[m], 1),
                "ratio_same_minute_fitted_v": finite(ratio_fitted[m], 3),
            }
            for m in range(args.minutes)
        ],
        "median_ratio": round(float(np.nanmedian(ratio)), 3),
        "median_ratio_shipped_profile": round(float(np.nanmedian(ratio_shipped)), 3),
        "minutes_within_25pct": int(sum(within)),
        "minutes_within_25pct_shipped_profile": int(sum(abs(r - 1) <= 0.25 for r in ratio_shipped)),
        "median_ratio_same_minute": median(ratio_own),
        "minutes_within_25pct_same_minute": int(sum(abs(r - 1) <= 0.25 for r in ratio_own)),
        "variability_default": ServerModel.variability,
        "variability_fitted_on_calibration": fitted_v,
        "median_ratio_same_minute_fitted_v": median(ratio_fitted),
        "snapshot_lateness_s": {"calibration": cal_late, "held_out": minute_stats.late},
        "minutes_within_25pct_same_minute_fitted_v": int(sum(abs(r - 1) <= 0.25 for r in ratio_fitted)),
        "target": "every minute within 25%",
        "met": all(within),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n")
    log(f"wrote {args.out}")
    return 0


def finite(x: float, digits: int) -> float | None:
    """``x`` rounded, or None (JSON null) where it is NaN: a minute that was not scored."""
    return round(x, digits) if np.isfinite(x) else None


def median(values: list[float]) -> float | None:
    """The median of the finite ``values``, rounded; None when there is none."""
    ok = [v for v in values if np.isfinite(v)]
    return round(float(np.median(ok)), 3) if ok else None


def service_ratio(p: CapacityProfile, base: CapacityProfile) -> float:
    """A batch of the benchmark's size takes this many times as long under ``p`` as under ``base``."""
    return ServerModel(p, p.workers).service_s(BATCH) / ServerModel(base, base.workers).service_s(BATCH)


def learned(model: CapacityModel) -> CapacityProfile:
    """The service times the runtimes taught ``model``, as a profile for the twin."""
    return model.as_profile("minilm", "builtin:all-minilm-l6-v2", "learned from the runtimes' batchStats")


if __name__ == "__main__":
    sys.exit(main())
