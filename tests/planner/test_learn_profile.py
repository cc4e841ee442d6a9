"""``outrider planner profile``: a capacity profile learned from a real runtime's batch statistics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from outrider_cli import main as cli
from outrider_operator.api.runtime import BatchStat, RuntimeLoad
from outrider_scheduler.planner.errors import PodCallError
from outrider_scheduler.planner.learn_profile import LearnError, RuntimeTally, learn_profile
from outrider_scheduler.planner.profile import default_profile, parse_profile
from outrider_scheduler.planner.runtime_client import RuntimeClient


def rows(n: int) -> dict[str, Any]:
    """A request of ``n`` rows for the tiny model."""
    return {
        "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [n, 3], "data": [101, 7, 102] * n}]
    }


async def send(url: str, sizes: list[int]) -> None:
    """One request at a time, so each is its own batch of exactly its rows."""
    async with aiohttp.ClientSession() as s:
        for n in sizes:
            async with s.post(f"http://{url}/v2/models/tiny/infer", data=json.dumps(rows(n)).encode()) as r:
                assert r.status == 200, await r.text()


async def test_the_profile_is_what_the_runtime_ran_while_it_was_read(
    server_factory: Any, tiny_config: Any
) -> None:
    async with server_factory(tiny_config()) as srv, RuntimeClient(poll_timeout_s=5.0) as client:
        await send(srv.url, [1, 2])  # before the reading starts: not counted
        before = await client.load("r", srv.url)
        first = asyncio.Event()

        async def poll(address: str) -> RuntimeLoad:
            answer = await client.load(address, address)
            first.set()
            return answer

        sizes = [1, 2, 4] * 6
        task = asyncio.create_task(learn_profile([srv.url], poll, 4.0, interval_s=0.2))
        await first.wait()
        await send(srv.url, sizes)
        learned = await task
        after = await client.load("r", srv.url)
    assert learned.batches == {1: 6, 2: 6, 4: 6}
    delta = {
        s.batch_size: s.seconds
        - next((b.seconds for b in before.batch_stats if b.batch_size == s.batch_size), 0.0)
        for s in after.batch_stats
    }
    points = {p.batch_size: p.seconds for p in learned.profile.points}
    assert set(points) == {1, 2, 4}
    # made non-decreasing by pooling, which keeps the batches' total time
    assert sum(6 * points[b] for b in points) == pytest.approx(sum(delta.values()), rel=1e-6)
    assert learned.profile.model == "tiny" and learned.profile.workers == after.workers
    assert learned.profile.rows_per_request == pytest.approx(sum(sizes) / len(sizes))
    again = parse_profile(json.dumps(learned.profile.to_wire()), "round trip")
    assert again == learned.profile


async def test_no_batch_and_no_answer_are_named(server_factory: Any, tiny_config: Any) -> None:
    async with server_factory(tiny_config()) as srv, RuntimeClient(poll_timeout_s=2.0) as client:
        with pytest.raises(LearnError, match=r"no batch ran on .* send traffic"):
            await learn_profile([srv.url], lambda a: client.load(a, a), 0.3, interval_s=0.1)
        with pytest.raises(LearnError, match=r"runtime 127\.0\.0\.1:9 did not answer"):
            await learn_profile(["127.0.0.1:9"], lambda a: client.load(a, a), 0.3)


def load(
    boot: str,
    stats: dict[int, tuple[int, float]],
    completed: int,
    rows: int,
    uptime: float = 100.0,
    model: str = "m",
) -> RuntimeLoad:
    return RuntimeLoad.model_validate(
        {
            "model": model,
            "state": "serving",
            "requestedState": "serving",
            "bootId": boot,
            "uptimeSeconds": uptime,
            "received": completed,
            "completed": completed,
            "failed": 0,
            "rejected": 0,
            "rowsCompleted": rows,
            "inflight": 0,
            "queueDepth": 0,
            "queueLimit": 8,
            "workers": 2,
            "latency": {"windowSeconds": 2.0, "count": 0},
            "batching": {
                "model": "m",
                "maxBatchSize": 8,
                "minBatchDelayMs": 5.0,
                "lookaheadWindow": 2,
                "dynamic": "Enabled",
            },
            "batchStats": [
                BatchStat(batch_size=b, count=c, seconds=s).to_wire() for b, (c, s) in stats.items()
            ],
        }
    )


def test_a_restart_keeps_what_the_old_process_ran() -> None:
    t = RuntimeTally()
    t.update(load("a", {4: (10, 1.0)}, 10, 40), 0.0)
    t.update(load("a", {4: (14, 1.4)}, 14, 56), 1.0)  # 4 batches of 4 rows
    t.update(load("b", {2: (3, 0.3)}, 3, 6, uptime=0.5), 2.0)  # restarted since: counted from zero
    t.update(load("b", {2: (5, 0.5)}, 5, 10, uptime=1.5), 3.0)
    t.update(load("c", {2: (1, 0.1)}, 1, 2, uptime=0.2), 4.0)  # and again
    assert t.total() == {4: (4, pytest.approx(0.4)), 2: (6, pytest.approx(0.6))}
    assert t.requests() == (4 + 5 + 1, 16 + 10 + 2)
    assert t.workers == 2


def test_pods_alternating_behind_one_address_are_not_counted_twice() -> None:
    t = RuntimeTally()
    t.update(load("a", {4: (100, 10.0)}, 100, 400), 0.0)
    t.update(load("b", {4: (500, 50.0)}, 500, 2000), 1.0)  # up for 100 s: its past is not ours
    t.update(load("a", {4: (102, 10.2)}, 102, 408), 2.0)
    t.update(load("b", {4: (503, 50.3)}, 503, 2012), 3.0)
    assert t.total() == {4: (5, pytest.approx(0.5))}
    assert t.requests() == (5, 20)


async def test_a_base_profile_gives_the_sizes_that_did_not_run_scaled() -> None:
    base = default_profile()
    slow = {b.batch_size: b.seconds * 2.0 for b in base.points}
    readings = [
        load("a", {}, 0, 0),
        load("a", {1: (400, 400 * slow[1]), 2: (400, 400 * slow[2]), 3: (1, 0.1), 4: (2, 0.2)}, 1211, 1211),
    ]

    async def poll(_address: str) -> RuntimeLoad:
        return readings.pop(0) if len(readings) > 1 else readings[0]

    learned = await learn_profile(["x"], poll, 0.3, base, interval_s=0.01)
    points = {p.batch_size: p.seconds for p in learned.profile.points}
    assert learned.speed == pytest.approx(2.0, rel=0.1)
    assert points[64] == pytest.approx(slow[64], rel=0.1)  # never ran: the base, scaled
    assert learned.profile.model == base.model and learned.profile.uri == base.uri
    assert learned.measured == [1, 2, 3]  # 3: not in the base; 4: two batches do not replace it


async def test_a_missed_reading_loses_nothing() -> None:
    readings = [load("a", {}, 0, 0), None, load("a", {8: (5, 0.5)}, 5, 40)]

    async def poll(address: str) -> RuntimeLoad:
        got = readings.pop(0) if len(readings) > 1 else readings[0]  # then the last one, again
        if got is None:
            raise PodCallError(address, "timed out")
        return got

    said: list[str] = []
    learned = await learn_profile(["x"], poll, 0.3, interval_s=0.02, say=said.append)
    assert learned.batches == {8: 5}
    assert any("no answer this time" in m for m in said)


async def test_runtimes_serving_different_models_are_refused() -> None:
    async def poll(address: str) -> RuntimeLoad:
        return load("a" + address, {}, 0, 0, model=address)

    with pytest.raises(LearnError, match=r"serve different models .* learn one model at a time"):
        await learn_profile(["x:1", "y:1"], poll, 0.1)


def test_the_command_writes_the_profile(
    server_factory: Any, tiny_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "learned.json"

    async def run() -> int:
        async with server_factory(tiny_config()) as srv:
            args = ["planner", "profile", "--runtime", srv.url, "--seconds", "3", "--interval", "0.2"]
            command = asyncio.create_task(asyncio.to_thread(cli, [*args, "--out", str(out)]))
            await asyncio.sleep(1.0)  # the command's first reading is long done
            await send(srv.url, [3] * 8)
            return await command

    assert asyncio.run(run()) == 0
    err = capsys.readouterr().err
    assert "batches by size: 3: 8" in err and f"wrote {out}" in err
    profile = parse_profile(out.read_text(), str(out))
    assert [p.batch_size for p in profile.points] == [3] and profile.model == "tiny"


def test_the_command_names_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "p.json")
    cases = [
        (["--runtime", "nohost", "--out", out], "--runtime wants HOST:PORT ([IPv6]:PORT), got 'nohost'"),
        (["--runtime", "127.0.0.1:99999", "--out", out], "got '127.0.0.1:99999'"),
        (["--runtime", "::1:8080", "--out", out], "got '::1:8080'"),
        (["--runtime", "[::1]:8080", "--out", str(tmp_path)], "is a folder"),
        (["--runtime", "127.0.0.1:1", "--model", "m" * 129, "--out", out], "--model must be 1-128"),
        (["--runtime", "127.0.0.1:1", "--seconds", "0", "--out", out], "--seconds must be in"),
        (["--runtime", "127.0.0.1:1", "--out", str(tmp_path / "no" / "p.json")], "does not exist"),
        (["--runtime", "127.0.0.1:1", "--base", str(tmp_path / "none.json"), "--out", out], "none.json"),
    ]
    for args, message in cases:
        assert cli(["planner", "profile", *args]) == 2, args
        assert message in capsys.readouterr().err
    assert cli(["planner", "profile", "--runtime", "127.0.0.1:9", "--seconds", "1", "--out", out]) == 1
    assert "runtime 127.0.0.1:9 did not answer" in capsys.readouterr().err
    assert not Path(out).exists()
