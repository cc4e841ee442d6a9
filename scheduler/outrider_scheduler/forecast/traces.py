"""Loading and validating request-count traces (``t_seconds,requests`` CSV files).

A trace is a sequence of fixed-width bins: ``t_seconds`` is the start of a bin and ``requests`` the
number of arrivals in it. Bin widths from 1 s to 60 s are accepted. Validation is strict and every
error names the offending line; the only repair is for gaps (missing bins), which are filled with
zero requests and reported in ``Trace.repairs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .errors import TraceError

__all__ = ["HEADER", "MAX_BIN_SECONDS", "MIN_BIN_SECONDS", "Trace", "load_trace", "parse_trace"]

HEADER = "t_seconds,requests"
"""The exact header line a trace must start with."""
MIN_BIN_SECONDS = 1
"""Finest accepted bin width."""
MAX_BIN_SECONDS = 60
"""Coarsest accepted bin width."""


@dataclass(frozen=True)
class Trace:
    """A validated trace: ``counts[i]`` arrivals in ``[t0 + i*bin_seconds, t0 + (i+1)*bin_seconds)``."""

    name: str
    """Where the trace came from (file path or a label)."""
    t0: int
    """Start of the first bin, seconds."""
    bin_seconds: int
    """Width of every bin, seconds."""
    counts: npt.NDArray[np.float64]
    """Arrivals per bin (non-negative)."""
    repairs: list[str] = field(default_factory=list)
    """Human-readable notes about repairs applied while loading (e.g. gaps filled with zero)."""

    @property
    def duration_seconds(self) -> int:
        """Span covered by the trace, seconds."""
        return int(len(self.counts) * self.bin_seconds)

    @property
    def mean_rate(self) -> float:
        """Mean arrival rate over the whole trace, requests per second."""
        return float(self.counts.sum()) / max(self.duration_seconds, 1)


def load_trace(path: str | Path) -> Trace:
    """Read and validate the trace CSV at ``path``; raise ``TraceError`` naming the bad line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(str(p), 0, f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TraceError(str(p), 0, "file is not UTF-8 text") from exc
    return parse_trace(text, str(p))


def _number(path: str, lineno: int, raw: str, column: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise TraceError(path, lineno, f"{column} {raw.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceError(path, lineno, f"{column} {raw.strip()!r} is not a finite number")
    return value


def parse_trace(text: str, name: str = "<trace>") -> Trace:
    """Parse trace CSV text (see the module docstring for the rules)."""
    lines = text.splitlines()
    if not lines or lines[0].strip().lstrip("\ufeff") != HEADER:
        got = lines[0].strip() if lines else "<empty file>"
        raise TraceError(name, 1, f"header must be exactly {HEADER!r}, got {got!r}")
    times: list[int] = []
    counts: list[float] = []
    linenos: list[int] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 2:
            raise TraceError(name, lineno, f"expected 2 comma-separated fields, got {len(parts)}")
        t = _number(name, lineno, parts[0], "t_seconds")
        c = _number(name, lineno, parts[1], "requests")
        if t != int(t):
            raise TraceError(name, lineno, f"t_seconds {parts[0].strip()!r} is not a whole number of seconds")
        if c < 0:
            raise TraceError(name, lineno, f"requests {parts[1].strip()!r} is negative")
        if times and int(t) <= times[-1]:
            what = "duplicates" if int(t) == times[-1] else "is earlier than"
            raise TraceError(
                name,
                lineno,
                f"t_seconds {int(t)} {what} the previous row's {times[-1]} (rows must be sorted)",
            )
        times.append(int(t))
        counts.append(c)
        linenos.append(lineno)
    if len(times) < 2:
        raise TraceError(name, 0, "a trace needs at least two data rows")
    diffs = np.diff(np.asarray(times, dtype=np.int64))
    width = int(diffs.min())
    if not MIN_BIN_SECONDS <= width <= MAX_BIN_SECONDS:
        j = int(np.argmin(diffs)) + 1
        raise TraceError(
            name,
            linenos[j],
            f"bin width {width} s is outside {MIN_BIN_SECONDS}..{MAX_BIN_SECONDS} s",
        )
    bad = np.nonzero(np.mod(diffs, np.int64(width)))[0]
    if bad.size:
        j = int(bad[0]) + 1
        raise TraceError(name, linenos[j], f"t_seconds {times[j]} is not on the {width} s bin grid")
    t0 = times[0]
    n = (times[-1] - t0) // width + 1
    full = np.zeros(n, dtype=np.float64)
    idx = (np.asarray(times, dtype=np.int64) - t0) // width
    full[idx] = np.asarray(counts, dtype=np.float64)
    repairs: list[str] = []
    gaps = np.nonzero(diffs > width)[0]
    if gaps.size:
        missing = int(n - len(times))
        first = int(gaps[0]) + 1
        repairs.append(
            f"filled {missing} missing bin(s) in {gaps.size} gap(s) with 0 requests "
            f"(first gap before line {linenos[first]}, t_seconds {times[first]})"
        )
    return Trace(name=name, t0=t0, bin_seconds=width, counts=full, repairs=repairs)
