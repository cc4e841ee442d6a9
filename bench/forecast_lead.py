"""The forecast-lead scenario of ``make bench-surge``: capacity serving *before* a forecastable ramp.

A deployment whose traffic has a daily ramp: eight days of history in which, every day at the
same times, the load climbs from the base rate to a peak over three minutes and stays there for
three more.
The real forecaster (``ForecasterService`` and its publisher, the code ``outrider forecast serve``
runs) reads that history followed by the live arrivals and publishes ``status.forecast`` every
10 s; the real planner sizes ahead of the forecast. The live load then follows the same pattern
today. ``forecast_lead_s`` is how long before the ramp began the added capacity was serving (the
planner's ``AddReplicas`` with trigger ``Forecast``: decided, then its pod serving and routable).

The forecaster's metrics source is the only stand-in: instead of Prometheus (whose 5-minute
lookback would make eight days of backfilled history and a live series hard to join), it serves
the synthetic history and, after it, the live arrivals the load generator sent (what the pods
received), in 10-s bins.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from outrider_devcluster.traffic import LONG_TEXTS, LoadGenerator, LoadReport, ServiceRouter
from outrider_scheduler.forecast.errors import MetricsUnavailableError
from outrider_scheduler.forecast.series import StepSeries

__all__ = ["DailyRamps", "HistoryThenLive", "run_ramps"]

DAY = 86_400


@dataclass(frozen=True)
class DailyRamps:
    """Request rate by time of day: ``base``, and a ramp to ``peak`` at each of ``starts`` (unix)."""

    base: float
    peak: float
    starts: tuple[float, ...]
    rise_s: float = 180.0
    hold_s: float = 180.0

    def rate(self, t: float) -> float:
        """Requests/s at unix time ``t`` (the same every day)."""
        for start in self.starts:
            dt = (t - start) % DAY
            if dt < self.rise_s:
                return self.base + (self.peak - self.base) * dt / self.rise_s
            if dt < self.rise_s + self.hold_s:
                return self.peak
            if dt < 2 * self.rise_s + self.hold_s:
                return self.peak - (self.peak - self.base) * (dt - self.rise_s - self.hold_s) / self.rise_s
        return self.base


@dataclass
class HistoryThenLive:
    """A forecaster metrics source: synthetic counts before ``live_from``, the sent requests after."""

    pattern: DailyRamps
    live_from: float
    seed: int = 7
    sent: list[float] = field(default_factory=list)
    """Send times (unix) of the live requests, appended by the load generator's side."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fetch(self, namespace: str, deployment: str, start: float, end: float, step: int) -> StepSeries:
        """Counts per ``step`` bin from ``start`` to ``end`` (the PrometheusSource interface)."""
        start = float(np.floor(start / step) * step)
        n = int((end - start) // step)
        if n <= 0:
            raise MetricsUnavailableError(f"empty time range {start}..{end}")
        edges = start + step * np.arange(n + 1, dtype=np.float64)
        rng = np.random.default_rng(self.seed + int(start) % 1000)
        counts = np.zeros(n)
        for i in range(n):
            t = float(edges[i])
            if t + step <= self.live_from:
                counts[i] = rng.poisson(self.pattern.rate(t + step / 2) * step)
        with self._lock:
            live = np.asarray(self.sent, dtype=np.float64)
        if live.size:
            idx = np.floor((live - start) / step).astype(int)
            idx = idx[(idx >= 0) & (idx < n)]
            np.add.at(counts, idx, 1)
        return StepSeries(t0=start, step_seconds=step, y=counts)


def run_ramps(router: ServiceRouter, source: HistoryThenLive, until_wall: float) -> LoadReport:
    """Send the pattern's live load until ``until_wall``; every send reaches the source at once."""
    offset = time.time() - router.clock()

    def sent(at: float) -> None:
        with source._lock:
            source.sent.append(at + offset)

    gen = LoadGenerator(router, texts=LONG_TEXTS, on_send=sent)
    base = router.clock()
    return asyncio.run(gen.run(lambda t: source.pattern.rate(base + t + offset), until_wall - time.time()))


def lead_of(actions: list[dict[str, Any]], deployment: str, ramp_start: float) -> float | None:
    """Seconds between the forecast-driven capacity serving and the ramp (positive: ahead of it)."""
    ahead = [
        a
        for a in actions
        if a["deployment"] == deployment
        and a["trigger"] == "Forecast"
        and a["readyAt"] is not None
        and ramp_start - 600 < a["decidedAt"] < ramp_start + 120
    ]
    if not ahead:
        return None
    return float(ramp_start - min(float(a["readyAt"]) for a in ahead))
