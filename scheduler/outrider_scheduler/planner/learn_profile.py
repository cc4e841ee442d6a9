"""Learn a capacity profile from live runtimes: ``outrider planner profile``.

The planner learns each deployment's service time per batch size from its pods' own statistics
(``batchStats`` of ``/v2/admin/load``). This module does the same for a fixed list of runtimes over
a fixed time and writes the result as a :class:`~.profile.CapacityProfile`, so that a team can
replay its own traces through ``outrider simulate --profile`` with the service times of its own
hardware under its own traffic (a profile measured elsewhere puts every latency off by the two
machines' speed ratio; ``docs/simulate.md``).

Each runtime's counters are read at the start (the baseline) and every ``interval_s`` after; what
ran between a process's first and last reading is summed per batch size (a process is a boot id:
one that restarts keeps what its old process ran up to its last reading, and pods alternating
behind one address are each counted from when they were first seen). The sums become one
observation per batch size in a :class:`~.capacity.CapacityModel` seeded with an optional base
profile: as in the planner, a size replaces the base's point once 5 batches of it ran, and the
base's other points are scaled by the speed factor (observed over base time where both exist,
shrunk towards 1 by a prior worth 50 batches, so a short or light run scales them little).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from outrider_operator.api.runtime import BatchStat, RuntimeLoad

from .capacity import CapacityModel
from .errors import PodCallError
from .profile import CapacityProfile

__all__ = [
    "LearnError",
    "LearnedProfile",
    "RuntimeTally",
    "Stats",
    "add_stats",
    "fold_totals",
    "learn_profile",
    "stats_since",
]

Poll = Callable[[str], Awaitable[RuntimeLoad]]


class LearnError(RuntimeError):
    """Learning failed: a runtime did not answer its first reading, the runtimes serve different
    models, or no batch ran."""


Stats = dict[int, tuple[int, float]]
"""Batches per batch size: (count, summed seconds)."""


@dataclass
class _Process:
    """One runtime process (one boot id): its counters at its baseline and at the latest reading."""

    base: Stats
    last: Stats
    req_base: tuple[int, int]
    """(requests, rows) completed at the baseline."""
    req_last: tuple[int, int]
    """(requests, rows) completed at the latest reading."""


@dataclass
class RuntimeTally:
    """What the processes behind one address ran since the address was first read.

    Each process (boot id) is tallied on its own, from its first reading on: a process that started
    after the previous reading of the address (a restart) is counted from zero; one that was
    already running (another pod behind the same address) from the reading that first saw it. So
    restarts keep what the old process ran up to its last reading, and alternating pods behind a
    load balancer are never counted twice.
    """

    processes: dict[str, _Process] = field(default_factory=dict)
    """Each process seen behind the address, by boot id."""
    workers: int = 1
    """Batches one process runs at once (its latest reading)."""
    read_at: float | None = None
    """When the address was last read (the clock of :func:`learn_profile`)."""

    @staticmethod
    def _stats(load: RuntimeLoad) -> Stats:
        return {s.batch_size: (s.count, s.seconds) for s in load.batch_stats}

    def update(self, load: RuntimeLoad, now: float) -> None:
        """Take a reading (the first one is every process's baseline)."""
        stats, req = self._stats(load), (load.completed, load.rows_completed)
        proc = self.processes.get(load.boot_id)
        if proc is None:
            fresh = self.read_at is not None and load.uptime_seconds < now - self.read_at
            self.processes[load.boot_id] = (
                _Process({}, stats, (0, 0), req) if fresh else _Process(stats, stats, req, req)
            )
        else:
            proc.last, proc.req_last = stats, req
        self.workers, self.read_at = load.workers, now

    def total(self) -> Stats:
        """Every batch since the first reading, per size (all processes)."""
        out: Stats = {}
        for proc in self.processes.values():
            out = add_stats(out, stats_since(proc.base, proc.last))
        return out

    def requests(self) -> tuple[int, int]:
        """(requests, rows) completed since the first reading (all processes)."""
        done = [
            (max(0, p.req_last[0] - p.req_base[0]), max(0, p.req_last[1] - p.req_base[1]))
            for p in self.processes.values()
        ]
        return sum(d[0] for d in done), sum(d[1] for d in done)


def add_stats(a: Stats, b: Stats) -> Stats:
    """The batches of ``a`` and ``b`` together, per size."""
    out = dict(a)
    for size, (count, seconds) in b.items():
        c0, s0 = out.get(size, (0, 0.0))
        out[size] = (c0 + count, s0 + seconds)
    return out


def stats_since(base: Stats, last: Stats) -> Stats:
    """The batches one process ran between two readings of its cumulative statistics, per size
    (sizes where neither the count nor the time grew are left out)."""
    out: Stats = {}
    for size, (count, seconds) in last.items():
        c0, s0 = base.get(size, (0, 0.0))
        if count > c0 and seconds > s0:
            out[size] = (count - c0, seconds - s0)
    return out


def fold_totals(totals: Stats, base: CapacityProfile | None = None) -> CapacityModel:
    """A capacity model seeded with ``base`` that has taken ``totals`` (batches summed over a
    measurement) as one observation per size, by the planner's rules."""
    model = CapacityModel.from_profile(base)
    stats = [BatchStat(batch_size=b, count=c, seconds=s) for b, (c, s) in sorted(totals.items())]
    model.count_from_zero("runtimes", "learn")  # the sums count from the measurement's start
    model.observe_batches("runtimes", stats, "learn")
    return model


@dataclass(frozen=True)
class LearnedProfile:
    """The outcome: the profile and what it rests on."""

    profile: CapacityProfile
    batches: dict[int, int]
    """Batches observed per batch size (all runtimes)."""
    measured: list[int]
    """Batch sizes whose time in the profile is the runtimes' own: a size the base profile has
    replaces the base's point after 5 batches (the planner's rule); one it lacks is taken at once.
    The base's other points are its times scaled by the speed factor."""
    speed: float
    """Observed over the base profile's time where both exist (1.0 without a base)."""


async def learn_profile(
    addresses: list[str],
    poll: Poll,
    seconds: float,
    base: CapacityProfile | None = None,
    model_name: str | None = None,
    interval_s: float = 1.0,
    say: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LearnedProfile:
    """Read ``addresses`` for ``seconds`` and return what their batches say about service times.

    ``poll(address)`` returns that runtime's ``/v2/admin/load`` (raising ``PodCallError``).
    Raises :class:`LearnError` when a runtime does not answer its first reading, when they serve
    different models, or when no batch ran on any of them.
    """
    report = say or (lambda _m: None)
    tallies: dict[str, RuntimeTally] = {a: RuntimeTally() for a in addresses}
    names: dict[str, str] = {}
    for address in addresses:
        try:
            load = await poll(address)
        except PodCallError as exc:
            raise LearnError(f"runtime {address} did not answer: {exc}") from exc
        tallies[address].update(load, clock())
        names[address] = load.model
    if len(set(names.values())) > 1:
        serving = ", ".join(f"{a} serves {m!r}" for a, m in names.items())
        raise LearnError(f"the runtimes serve different models ({serving}): learn one model at a time")
    started = clock()
    next_report = started + 10.0
    while True:
        left = started + seconds - clock()
        if left <= 0:
            break
        await asyncio.sleep(min(interval_s, left))
        answers = await asyncio.gather(*(poll(a) for a in addresses), return_exceptions=True)
        for address, answer in zip(addresses, answers, strict=True):
            if isinstance(answer, RuntimeLoad):
                tallies[address].update(answer, clock())
            elif isinstance(answer, PodCallError):  # cumulative counters: the next reading has it
                report(f"  {address}: no answer this time ({answer})")
            else:
                raise answer
        if clock() >= next_report:
            next_report += 10.0
            ran = sum(c for t in tallies.values() for c, _ in t.total().values())
            report(f"  {clock() - started:.0f} of {seconds:.0f} s: {ran} batches so far")
    totals: Stats = {}
    for tally in tallies.values():
        totals = add_stats(totals, tally.total())
    if not totals:
        raise LearnError(
            f"no batch ran on {', '.join(addresses)} in {seconds:.0f} s: send traffic to the runtimes "
            "while they are measured"
        )
    model = fold_totals(totals, base)
    requests = [t.requests() for t in tallies.values()]
    done, rows = sum(r[0] for r in requests), sum(r[1] for r in requests)
    model.observe_workers(max(t.workers for t in tallies.values()), rows / done if done and rows else None)
    name = model_name or (base.model if base is not None else next(iter(names.values())))
    hardware = (
        f"learned from the batchStats of {len(addresses)} runtime(s) over {seconds:.0f} s, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}"
    )
    profile = model.as_profile(name, base.uri if base is not None else None, hardware)
    # a base point gives way after min_observed_batches; a size the base lacks is taken at once
    based = {p.batch_size for p in base.points} if base is not None else set()
    enough = model.settings.min_observed_batches
    measured = [b for b, (c, _) in sorted(totals.items()) if b not in based or c >= enough]
    return LearnedProfile(profile, {b: c for b, (c, _) in sorted(totals.items())}, measured, model.speed)
