"""The capacity model: requests/s one replica serves at a batch size, within the p99 target.

Service time of one batch of ``b`` rows, ``s(b)``, comes from measured points: a capacity profile
(:mod:`.profile`) to start with, replaced size by size by what the deployment's own pods measure
(the runtime's per-batch-size statistics, ``batchStats`` of ``/v2/admin/load``). Between points it
is interpolated; beyond them extrapolated with a least-squares line through all points (never
below the per-row time of the largest measured batch). A larger batch never runs faster than a
smaller one, but a few noisy batches can say so (a pod briefly starved of CPU): the points are made
non-decreasing first, by pooling the ones out of order (weighted isotonic regression; a profile
point weighs as much as ``min_observed_batches`` batches, an observed one as the batches behind it),
so one slow sample cannot cap the batch size a surge raises to.

A profile measured on other hardware (a whole core, where the pods get 400 millicores) has the
right shape and the wrong scale. Pods at a low load replace only the small batch sizes, and the
large ones would keep the profile's fast times: capacity at the default batch would be overstated
by the ratio of the two machines' speeds. So the profile points the pods have not replaced yet are
scaled by the *speed factor*: the ratio of observed to profiled time at the sizes where both exist,
weighted by the batches behind each and shrunk towards 1 by a prior worth 50 batches (a weighted
geometric mean, within 0.1-10).

From ``s(b)``, for a replica running ``workers`` batches at once:

- throughput at batch ``b``: ``workers * b / s(b)`` rows/s, divided by rows per request;
- p99 latency at batch ``b`` near saturation: ``delay + 2 * s(b)`` (a request waits for the batch
  being formed, then for the one running, then runs), times a latency factor learned online;
- the largest batch size whose predicted p99 stays under ``targetLatencyP99Ms`` (with a margin).

Capacity is reported at a target utilisation (0.8 by default; the planner uses each deployment's
``spec.scaling.targetUtilizationPercent``): the planner sizes pools so that each replica runs at
most that busy. An online correction factor (0.25-1) scales capacity down
when pods miss the p99 target below the predicted capacity, and lets it recover when they do not.
The model is pure arithmetic over its inputs; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from outrider_operator.api.runtime import BatchStat

from .profile import MAX_BATCH, MAX_POINTS, MAX_SECONDS, CapacityProfile, ProfilePoint

__all__ = ["CapacityModel", "CapacitySettings"]


@dataclass(frozen=True)
class CapacitySettings:
    """Knobs of the capacity model."""

    utilisation: float = 0.8
    """Target busy fraction of a replica: capacity is reported (and a p99 miss below it counted
    against the model) at this load unless the caller gives its own; the planner gives each
    deployment's ``spec.scaling.targetUtilizationPercent``, whose default is the same 80%."""
    latency_margin: float = 0.9
    """The largest batch must keep predicted p99 under this share of the target."""
    min_observed_batches: int = 5
    """Batches of one size the pods must have run before their mean replaces the profile's point."""
    speed_prior_batches: int = 50
    """Weight of the profile's own scale in the speed factor, in batches: a few slow batches (a pod
    briefly starved of CPU) barely move it; the minutes of batches a pod runs at any load do."""
    observation_weight: float = 0.3
    """Weight of a new observation in the moving average of a batch size's service time."""
    min_correction: float = 0.25
    """Lowest correction factor."""
    max_correction: float = 1.0
    """Highest correction factor: a low p99 at moderate load says nothing about throughput beyond the
    measured batch times (the pods' own statistics raise those), so latency only ever lowers capacity."""


@dataclass
class _Point:
    seconds: float
    batches: int = 0
    """Batches observed on the pods (0: the value comes from the profile)."""


@dataclass
class CapacityModel:
    """Service time per batch size of one deployment, with its online corrections."""

    settings: CapacitySettings = field(default_factory=CapacitySettings)
    workers: int = 1
    rows_per_request: float = 1.0
    correction: float = 1.0
    """Throughput correction learned from p99 misses (1.0: trust the measured service times)."""
    latency_factor: float = 1.0
    """Observed p99 over the predicted p99 at the operating point (learned)."""
    source: str = "none"
    """Where the points came from: none, profile, observed or profile+observed."""
    _points: dict[int, _Point] = field(default_factory=dict)
    _last_stats: dict[str, dict[int, tuple[int, float]]] = field(default_factory=dict)
    _pending: dict[int, tuple[int, float]] = field(default_factory=dict)
    _from_zero: set[str] = field(default_factory=set)
    """Processes whose batches count from their start (:meth:`count_from_zero`)."""
    _smooth: dict[int, float] | None = field(default=None, repr=False)
    _served: dict[int, float] = field(default_factory=dict, repr=False, compare=False)
    """:meth:`service_seconds` answers for the current points (emptied when ``_smooth`` is rebuilt):
    the planner asks for the same few sizes many times a cycle, and the twin a million cycles a week."""
    _profile: dict[int, float] = field(default_factory=dict)
    """The profile's own time per batch size (kept once the pods replace a point)."""
    speed: float = 1.0
    """Observed over profiled service time where both exist (scales the profile-only points)."""

    @classmethod
    def from_profile(
        cls, profile: CapacityProfile | None, settings: CapacitySettings | None = None
    ) -> CapacityModel:
        """A model seeded with ``profile``'s points (or empty: then it learns from the pods alone)."""
        model = cls(settings=settings or CapacitySettings())
        if profile is not None:
            model.workers = profile.workers
            model.rows_per_request = profile.rows_per_request
            model._points = {p.batch_size: _Point(p.seconds) for p in profile.points}
            model._profile = {p.batch_size: p.seconds for p in profile.points}
            model._smooth = None
            model.source = "profile"
        return model

    # ------------------------------------------------------------------ learning
    @property
    def known(self) -> bool:
        """Whether any service time is known (from the profile or the pods)."""
        return bool(self._points)

    def observe_batches(self, pod: str, stats: Iterable[BatchStat], boot_id: str) -> None:
        """Fold one pod's cumulative batch statistics in (the delta since its previous sample)."""
        key = f"{pod}/{boot_id}"
        previous = self._last_stats.get(key)
        current = {s.batch_size: (s.count, s.seconds) for s in stats}
        self._last_stats = {k: v for k, v in self._last_stats.items() if not k.startswith(f"{pod}/")}
        self._last_stats[key] = current
        if previous is None or (not previous and key not in self._from_zero):
            # the first sample of a process is its baseline; one first seen idle takes its first
            # sample with batches as the baseline: a fresh process's first batches run slow (cold
            # caches), and counting them would understate the pod's capacity for minutes
            return
        for size, (count, seconds) in current.items():
            before = previous.get(size, (0, 0.0))
            batches, spent = count - before[0], seconds - before[1]
            if batches <= 0 or spent <= 0:
                continue
            self._fold(size, spent / batches, batches)

    def count_from_zero(self, pod: str, boot_id: str) -> None:
        """Count every batch of this process from its start on, its first ones too: for a measurement
        that warmed the process up itself, or that folds totals it summed on its own."""
        key = f"{pod}/{boot_id}"
        self._last_stats = {k: v for k, v in self._last_stats.items() if not k.startswith(f"{pod}/")}
        self._last_stats[key] = {}
        self._from_zero.add(key)

    def retain(self, pods: Iterable[str]) -> None:
        """Forget the statistics of pods that are gone (bounded memory under churn)."""
        keep = {f"{p}/" for p in pods}
        self._last_stats = {k: v for k, v in self._last_stats.items() if k[: k.rfind("/") + 1] in keep}
        self._from_zero &= set(self._last_stats)

    def _fold(self, size: int, mean: float, batches: int) -> None:
        point = self._points.get(size)
        if point is None:
            self._points[size] = _Point(mean, batches)
        elif point.batches == 0:
            # a profile value gives way once the pods ran enough batches of this size
            seen, spent = self._pending.get(size, (0, 0.0))
            seen, spent = seen + batches, spent + mean * batches
            if seen < self.settings.min_observed_batches:
                self._pending[size] = (seen, spent)
                return
            self._pending.pop(size, None)
            self._points[size] = _Point(spent / seen, seen)
        else:
            w = self.settings.observation_weight
            point.seconds = (1 - w) * point.seconds + w * mean
            point.batches += batches
        self._smooth = None  # the points changed (a pending observation above changes none)
        self.source = "observed" if self.source in ("none", "observed") else "profile+observed"
        self.speed = self._speed_factor()

    def _speed_factor(self) -> float:
        """How much slower (above 1) or faster the pods run than the profile, where both measured."""
        num = den = 0.0
        for size, profiled in self._profile.items():
            point = self._points.get(size)
            if point is None or point.batches == 0 or profiled <= 0 or point.seconds <= 0:
                continue
            weight = float(point.batches)
            num += weight * math.log(point.seconds / profiled)
            den += weight
        den += self.settings.speed_prior_batches
        return min(10.0, max(0.1, math.exp(num / den))) if den > 0 else 1.0

    def observe_workers(self, workers: int, rows_per_request: float | None) -> None:
        """Take the pods' batch concurrency and their rows per request."""
        self.workers = max(1, workers)
        if rows_per_request is not None and rows_per_request > 0:
            self.rows_per_request = rows_per_request

    def observe_latency(
        self,
        p99_ms: float,
        demand_per_replica: float,
        batch: int,
        delay_ms: float,
        target_ms: float,
        queue_per_replica: float = 0.0,
        utilisation: float | None = None,
    ) -> None:
        """Correct the model with one deployment-wide p99 observation at a known load and batch size.

        A miss only counts against the model when neither the load (above the capacity at
        ``utilisation``, the deployment's target; default the settings') nor a backlog (more than a
        batch queued per replica, left by a burst) explains it: pods sized to run that busy that
        miss the target below it serve less than modelled for that target.
        """
        if not self.known or demand_per_replica <= 0:
            return
        predicted = self.p99_ms(batch, delay_ms)
        raw = self.raw_capacity(batch)
        busy = demand_per_replica / raw if raw > 0 else 0.0
        backlog = queue_per_replica > max(1, batch)
        if busy >= 0.5 and predicted > 0 and not backlog:
            # the p99 formula has no queue in it: a backlog's waiting says nothing about the factor
            ratio = min(4.0, max(0.5, p99_ms / predicted))
            self.latency_factor = 0.8 * self.latency_factor + 0.2 * ratio
        s = self.settings
        unexplained = demand_per_replica < self.capacity(batch, utilisation) and not backlog
        if p99_ms > target_ms and unexplained:
            # missed below the predicted capacity with no backlog: the replica serves less than modelled
            self.correction = max(s.min_correction, self.correction * 0.95)
        elif p99_ms < 0.6 * target_ms and self.correction < s.max_correction:
            # comfortably within the target: drift back towards the measured service times
            self.correction = min(s.max_correction, self.correction * 1.03)

    # ------------------------------------------------------------------ queries
    def _monotone(self) -> dict[int, float]:
        """The points made non-decreasing in batch size (pool adjacent violators, weighted)."""
        if self._smooth is None:
            sizes = sorted(self._points)
            blocks: list[tuple[float, float, int]] = []  # (mean seconds, weight, sizes pooled)
            for size in sizes:
                point = self._points[size]
                mean, weight, count = (
                    point.seconds if point.batches else point.seconds * self.speed,
                    float(max(point.batches, self.settings.min_observed_batches)),
                    1,
                )
                while blocks and blocks[-1][0] > mean:  # out of order: pool with the block before
                    before, w, n = blocks.pop()
                    mean = (before * w + mean * weight) / (w + weight)
                    weight, count = weight + w, count + n
                blocks.append((mean, weight, count))
            values = [mean for mean, _, count in blocks for _ in range(count)]
            self._smooth = dict(zip(sizes, values, strict=True))
            self._served = {}
        return self._smooth

    def service_seconds(self, batch: int) -> float:
        """Predicted compute time of one batch of ``batch`` rows (``nan`` when nothing is known)."""
        if not self._points:
            return math.nan
        points = self._monotone()
        known = self._served.get(batch)
        if known is None:
            known = self._served[batch] = self._interpolate(points, batch)
        return known

    def _interpolate(self, points: dict[int, float], batch: int) -> float:
        sizes = sorted(points)
        if batch in points:
            return points[batch]
        lo = max((b for b in sizes if b < batch), default=None)
        hi = min((b for b in sizes if b > batch), default=None)
        if lo is not None and hi is not None:
            f = (batch - lo) / (hi - lo)
            return (1 - f) * points[lo] + f * points[hi]
        intercept, slope = self._line()
        edge = hi if lo is None else lo
        assert edge is not None
        per_row = points[edge] / edge
        fitted = intercept + slope * batch
        if lo is None:  # below the smallest measured batch: never faster than proportional
            return max(fitted, per_row * batch, 1e-6)
        return max(fitted, per_row * batch * 0.5, points[edge])

    def _line(self) -> tuple[float, float]:
        points = self._monotone()
        xs = sorted(points)
        ys = [points[x] for x in xs]
        if len(xs) == 1:
            return 0.0, ys[0] / xs[0]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
        slope = max(slope, 1e-9)
        return max(0.0, my - slope * mx), slope

    def raw_capacity(self, batch: int) -> float:
        """Requests/s one replica completes at full load with batches of ``batch`` rows."""
        s = self.service_seconds(batch)
        if not math.isfinite(s) or s <= 0:
            return math.nan
        return self.workers * batch / s / self.rows_per_request * self.correction

    def capacity(self, batch: int, utilisation: float | None = None) -> float:
        """Requests/s one replica serves at ``utilisation`` (default: the settings' target) with
        batches of ``batch`` rows. The planner passes each deployment's own target
        (``spec.scaling.targetUtilizationPercent``)."""
        return self.raw_capacity(batch) * (self.settings.utilisation if utilisation is None else utilisation)

    def p99_ms(self, batch: int, delay_ms: float) -> float:
        """Predicted p99 latency (ms) near saturation with batches of ``batch`` rows."""
        return (delay_ms + 2000.0 * self.service_seconds(batch)) * self.latency_factor

    def best_batch(self, target_ms: float, delay_ms: float, ceiling: int, floor: int = 1) -> int:
        """The largest batch size in [floor, ceiling] whose predicted p99 stays under the target.

        Returns ``floor`` when even that misses it (or nothing is known).
        """
        if not self.known:
            return floor
        limit = target_ms * self.settings.latency_margin
        if self.p99_ms(floor, delay_ms) > limit:
            return floor
        lo, hi = floor, max(floor, ceiling)  # p99 grows with the batch size: bisect for the last fit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.p99_ms(mid, delay_ms) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def as_profile(self, model: str, uri: str | None = None, hardware: str = "") -> CapacityProfile:
        """What the model knows now, as a capacity profile: one point per known batch size, the
        service times :meth:`service_seconds` uses (observed, or the profile's scaled by the speed
        factor, made non-decreasing). The pods' own measurements in the profile format, for
        ``outrider simulate --profile`` or another deployment of the same model.

        A profile holds at most ``MAX_POINTS`` batch sizes of at most ``MAX_BATCH`` rows (see
        :mod:`.profile`): beyond that many sizes, the smallest, the largest and sizes spaced evenly
        on a log scale between them are kept (the profile interpolates between them); a time is
        capped just under ``MAX_SECONDS``.

        Raises ``ValueError`` when nothing is known yet.
        """
        times = {b: s for b, s in self._monotone().items() if b <= MAX_BATCH}
        if not times:
            raise ValueError("the capacity model knows no service time yet: nothing to write")
        sizes = sorted(times)
        if len(sizes) > MAX_POINTS:
            lo, hi = math.log(sizes[0]), math.log(sizes[-1])
            logs = [math.log(b) for b in sizes]
            kept: set[int] = set()
            for i in range(MAX_POINTS):
                x = lo + (hi - lo) * i / (MAX_POINTS - 1)
                kept.add(sizes[min(range(len(sizes)), key=lambda j: abs(logs[j] - x))])
            sizes = sorted(kept)
        return CapacityProfile(
            model=model,
            uri=uri,
            hardware=hardware,
            workers=self.workers,
            rows_per_request=self.rows_per_request,
            points=[ProfilePoint(batch_size=b, seconds=min(times[b], 0.999 * MAX_SECONDS)) for b in sizes],
        )

    def points(self) -> dict[int, float]:
        """Current service time per batch size: observed, or the profile's scaled by the speed factor
        (for status, logs and tests)."""
        return {
            b: p.seconds if p.batches else p.seconds * self.speed for b, p in sorted(self._points.items())
        }
