"""Trace CSV validation: every bad input names its line; gaps are repaired and reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from outrider_scheduler.forecast.errors import TraceError
from outrider_scheduler.forecast.series import step_seconds_for, to_step_series
from outrider_scheduler.forecast.traces import load_trace, parse_trace

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces"


def test_parses_a_valid_trace() -> None:
    tr = parse_trace("t_seconds,requests\n0,3\n10,0\n20,5\n", "ok.csv")
    assert tr.bin_seconds == 10 and tr.t0 == 0
    assert tr.counts.tolist() == [3.0, 0.0, 5.0]
    assert tr.repairs == []
    assert tr.mean_rate == pytest.approx(8 / 30)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("time,count\n0,1\n10,2\n", 1, "header"),
        ("", 1, "header"),
        ("t_seconds,requests\n0,1\n10,-2\n", 3, "negative"),
        ("t_seconds,requests\n0,1\n10,abc\n", 3, "not a number"),
        ("t_seconds,requests\n0,1\nten,2\n", 3, "not a number"),
        ("t_seconds,requests\n0,1\n20,2\n10,3\n", 4, "sorted"),
        ("t_seconds,requests\n0,1\n10,2\n10,3\n", 4, "duplicates"),
        ("t_seconds,requests\n0,1\n10,2,3\n", 3, "2 comma-separated"),
        ("t_seconds,requests\n0,1\n10,2\n25,3\n", 4, "grid"),
        ("t_seconds,requests\n0,1\n120,2\n240,3\n", 3, "outside"),
        ("t_seconds,requests\n0,1\n10,nan\n", 3, "finite"),
        ("t_seconds,requests\n0,1\n", 0, "two data rows"),
    ],
)
def test_bad_input_names_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(TraceError) as info:
        parse_trace(text, "bad.csv")
    assert info.value.line == line
    assert fragment in str(info.value)
    if line:
        assert f"line {line}" in str(info.value)


def test_gaps_are_filled_with_zero_and_reported() -> None:
    tr = parse_trace("t_seconds,requests\n0,1\n10,2\n40,3\n50,4\n", "gappy.csv")
    assert tr.counts.tolist() == [1.0, 2.0, 0.0, 0.0, 3.0, 4.0]
    assert len(tr.repairs) == 1 and "2 missing bin(s)" in tr.repairs[0] and "line 4" in tr.repairs[0]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "missing.csv")


def test_step_grid_and_phases() -> None:
    assert [step_seconds_for(b) for b in (1, 3, 10, 15, 60)] == [10, 12, 10, 15, 60]
    tr = parse_trace("t_seconds,requests\n" + "".join(f"{i},{i % 3}\n" for i in range(35)), "x")
    s0, s5 = to_step_series(tr, 0), to_step_series(tr, 5)
    assert s0.step_seconds == 10 and len(s0.y) == 3 and s0.y[0] == sum(i % 3 for i in range(10))
    assert s5.t0 == 5 and len(s5.y) == 3 and s5.y[0] == sum(i % 3 for i in range(5, 15))


@pytest.mark.skipif(not TRACES.is_dir(), reason=f"shared traces folder {TRACES} is absent")
def test_shared_traces_load() -> None:
    files = (
        sorted(TRACES.glob("*_1s.csv")) + sorted(TRACES.glob("*_10s.csv")) + sorted(TRACES.glob("*_1min.csv"))
    )
    assert files, "no shared traces found"
    for f in files:
        tr = load_trace(f)
        assert tr.bin_seconds in (1, 10, 60)
        assert np.all(tr.counts >= 0) and tr.counts.sum() > 0
