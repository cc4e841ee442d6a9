"""Reading request counts from Prometheus's HTTP API (``/api/v1/query_range``).

The runtime exports a request counter per deployment. ``PrometheusSource.fetch`` asks for the
counter's value at every step over a time range (in chunks under Prometheus's 11,000-point limit)
and turns it into per-step counts: the difference between consecutive values, where a drop (a
counter reset, e.g. a restarted pod) counts the new value. Steps with no sample count zero.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import MetricsUnavailableError
from .series import StepSeries

__all__ = ["DEFAULT_QUERY", "MAX_POINTS", "CountSource", "PrometheusSource"]

DEFAULT_QUERY = 'sum(outrider_runtime_requests_total{{namespace="{namespace}",deployment="{deployment}"}})'
"""Query template: the runtime's request counter summed over a deployment's pods."""
MAX_POINTS = 10_000
"""Points per ``query_range`` request (Prometheus refuses more than 11,000)."""


class CountSource(Protocol):
    """Where a forecaster reads a deployment's request counts (Prometheus in production)."""

    def fetch(self, namespace: str, deployment: str, start: float, end: float, step: int) -> StepSeries:
        """Arrivals per ``step`` bin from ``start`` to ``end``; MetricsUnavailableError if there are none."""
        ...


@dataclass(frozen=True)
class PrometheusSource:
    """A ``query_range`` client for one Prometheus server."""

    base_url: str
    """For example ``http://prometheus.monitoring:9090``."""
    query_template: str = DEFAULT_QUERY
    """``str.format`` template with ``{namespace}`` and ``{deployment}``."""
    timeout_seconds: float = 5.0
    """Per-request timeout."""

    def query_range(self, query: str, start: float, end: float, step: int) -> list[tuple[float, float]]:
        """Raw ``(timestamp, value)`` samples of the single series ``query`` returns (summed if several)."""
        params = urllib.parse.urlencode(
            {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}
        )
        url = f"{self.base_url.rstrip('/')}/api/v1/query_range?{params}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_seconds) as resp:
                body: dict[str, Any] = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise MetricsUnavailableError(f"Prometheus answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise MetricsUnavailableError(f"cannot reach Prometheus at {self.base_url}: {exc}") from exc
        except ValueError as exc:
            raise MetricsUnavailableError(f"Prometheus returned a body that is not JSON: {exc}") from exc
        if body.get("status") != "success":
            raise MetricsUnavailableError(f"Prometheus query failed: {body.get('error', body)}")
        merged: dict[float, float] = {}
        for series in body.get("data", {}).get("result", []):
            for ts, val in series.get("values", []):
                v = float(val)
                if math.isfinite(v):
                    merged[float(ts)] = merged.get(float(ts), 0.0) + v
        return sorted(merged.items())

    def fetch(self, namespace: str, deployment: str, start: float, end: float, step: int) -> StepSeries:
        """Per-step request counts for bins ``[start + i*step, start + (i+1)*step)`` up to ``end``.

        Raises ``MetricsUnavailableError`` if Prometheus is unreachable or has no samples at all.
        """
        query = self.query_template.format(namespace=namespace, deployment=deployment)
        start = math.floor(start / step) * step
        n = int((end - start) // step)
        if n <= 0:
            raise MetricsUnavailableError(f"empty time range {start}..{end}")
        # counter values at the bin edges start, start+step, ..., start+n*step
        samples: list[tuple[float, float]] = []
        edge = 0
        while edge <= n:
            last = min(n, edge + MAX_POINTS - 1)
            samples += self.query_range(query, start + edge * step, start + last * step, step)
            edge = last + 1
        if not samples:
            raise MetricsUnavailableError(f"no samples for {query} between {start:.0f} and {end:.0f}")
        values = np.full(n + 1, np.nan)
        for ts, v in samples:
            j = round((ts - start) / step)
            if 0 <= j <= n:
                values[j] = v
        counts = np.zeros(n)
        prev = np.nan
        for j in range(n + 1):
            v = values[j]
            if np.isnan(v):
                continue
            if j > 0 and not np.isnan(prev):
                counts[j - 1] = v - prev if v >= prev else v
            prev = v
        # Bins before the first sample are unknown, not zero: a deployment that started an hour
        # ago has an hour of history, not eight days of which most are "no requests".
        known = np.flatnonzero(~np.isnan(values[:n]))
        if known.size == 0:
            raise MetricsUnavailableError(f"no samples for {query} between {start:.0f} and {end:.0f}")
        first = int(known[0])
        return StepSeries(t0=float(start + first * step), step_seconds=step, y=counts[first:])
