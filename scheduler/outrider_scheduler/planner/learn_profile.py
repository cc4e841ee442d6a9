"""Learn a capacity profile from live runtimes: ``outrider planner profile``.

The planner learns each deployment's service time per batch size from its pods' own statistics
(``batchStats`` of ``/v2/admin/load``). This module does the same for a fixed list of runtimes over
a fixed time and writes the result as a :class:`~.profile.CapacityProfile`, so that a team can
replay its own traces through ``outrider simulate --profile`` with the service times of its own
hardware under its own traffic (a profile measured elsewhere puts every latency off by the two
machines' speed ratio; ``docs/simulate.md``).

Each runtime's counters are read at the start (the baseline) and every ``interval_s`` after; what
ran between the first and the last reading is summed per batch size (a runtime that restarts,
seen by its boot id, starts a new baseline and keeps what it ran before). The sums become one
observation per batch size in a :class:`~.capacity.CapacityModel` seeded with an optional base
profile, whose points the observations replace (or scale by the speed factor, where no batch of
that size ran).
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

__all__ = ["LearnError", "LearnedProfile", "RuntimeTally", "Stats", "learn_profile"]

Poll = Callable[[str], Awaitable[RuntimeLoad]]


class LearnError(RuntimeError):
    """Learning failed: a runtime did not answer, or no batch ran."""


Stats = dict[int, tuple[int, float]]
"""Batches per batch size: (count, summed seconds)."""


@dataclass
class RuntimeTally:
    """What one runtime ran since it was first read (across restarts)."""

    boot_id: str
    base: Stats
    """The current process's counters at its baseline (empty for a process that restarted)."""
    last: Stats
    """The current process's counters at the latest reading."""
    done: Stats = field(default_factory=dict)
    """What earlier processes ran (before a restart)."""
    req_base: tuple[int, int] = (0, 0)
    """(requests, rows) completed by the current process at its baseline."""
    req_last: tuple[int, int] = (0, 0)
    """(requests, rows) completed by the current process at the latest reading."""
    req_done: tuple[int, int] = (0, 0)
    """(requests, rows) that earlier processes completed after the first reading."""
    workers: int = 1

    @staticmethod
    def _stats(load: RuntimeLoad) -> Stats:
        return {s.batch_size: (s.count, s.seconds) for s in load.batch_stats}

    @classmethod
    def first(cls, load: RuntimeLoad) -> RuntimeTally:
        """The baseline reading."""
        stats = cls._stats(load)
        req = (load.completed, load.rows_completed)
        return cls(load.boot_id, stats, stats, req_base=req, req_last=req, workers=load.workers)

    def update(self, load: RuntimeLoad) -> None:
        """Take a later reading."""
        if load.boot_id != self.boot_id:  # restarted: keep what the old process ran, rebase
            self.done = _add(self.done, self.ran())
            self.req_done = self._requests()
            self.boot_id, self.base, self.req_base = load.boot_id, {}, (0, 0)
        self.last = self._stats(load)
        self.req_last = (load.completed, load.rows_completed)
        self.workers = load.workers

    def _requests(self) -> tuple[int, int]:
        return (
            self.req_done[0] + self.req_last[0] - self.req_base[0],
            self.req_done[1] + self.req_last[1] - self.req_base[1],
        )

    def ran(self) -> Stats:
        """Batches of the current process since its baseline, per size."""
        out: Stats = {}
        for size, (count, seconds) in self.last.items():
            before = self.base.get(size, (0, 0.0))
            if count - before[0] > 0 and seconds - before[1] > 0:
                out[size] = (count - before[0], seconds - before[1])
        return out

    def total(self) -> Stats:
        """Every batch since the first reading, per size."""
        return _add(self.done, self.ran())

    def rows_per_request(self) -> float | None:
        """Rows per completed request since the first reading (None without requests)."""
        requests, rows = self._requests()
        return rows / requests if requests > 0 and rows > 0 else None


def _add(a: Stats, b: Stats) -> Stats:
    out = dict(a)
    for size, (count, seconds) in b.items():
        c0, s0 = out.get(size, (0, 0.0))
        out[size] = (c0 + count, s0 + seconds)
    return out


@dataclass(frozen=True)
class LearnedProfile:
    """The outcome: the profile and what it rests on."""

    profile: CapacityProfile
    batches: dict[int, int]
    """Batches observed per batch size (all runtimes)."""
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
    Raises :class:`LearnError` when a runtime does not answer its first reading, or when no batch
    ran on any of them.
    """
    report = say or (lambda _m: None)
    tallies: dict[str, RuntimeTally] = {}
    names: set[str] = set()
    for address in addresses:
        try:
            load = await poll(address)
        except PodCallError as exc:
            raise LearnError(f"runtime {address} did not answer: {exc}") from exc
        tallies[address] = RuntimeTally.first(load)
        names.add(load.model)
    started = clock()
    next_report = started + 10.0
    while True:
        left = started + seconds - clock()
        if left <= 0:
            break
        await asyncio.sleep(min(interval_s, left))
        for address, tally in tallies.items():
            try:
                tally.update(await poll(address))
            except PodCallError as exc:  # a missed reading loses nothing: the counters are cumulative
                report(f"  {address}: no answer this time ({exc})")
        if clock() >= next_report:
            next_report += 10.0
            ran = sum(c for t in tallies.values() for c, _ in t.total().values())
            report(f"  {clock() - started:.0f} of {seconds:.0f} s: {ran} batches so far")
    totals: Stats = {}
    for tally in tallies.values():
        totals = _add(totals, tally.total())
    if not totals:
        raise LearnError(
            f"no batch ran on {', '.join(addresses)} in {seconds:.0f} s: send traffic to the runtimes "
            "while they are measured"
        )
    model = CapacityModel.from_profile(base)
    tally_list = list(tallies.values())
    rows = [r for r in (t.rows_per_request() for t in tally_list) if r is not None]
    model.observe_workers(max(t.workers for t in tally_list), sum(rows) / len(rows) if rows else None)
    stats = [BatchStat(batch_size=b, count=c, seconds=s) for b, (c, s) in sorted(totals.items())]
    model.observe_batches("runtimes", [], "learn")  # the baseline: nothing had run
    model.observe_batches("runtimes", stats, "learn")
    name = model_name or (base.model if base is not None else "/".join(sorted(names)))
    hardware = (
        f"learned from the batchStats of {len(addresses)} runtime(s) over {seconds:.0f} s, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}"
    )
    profile = model.as_profile(name, base.uri if base is not None else None, hardware)
    return LearnedProfile(profile, {b: c for b, (c, _) in sorted(totals.items())}, model.speed)
