"""Runs the weighted strategies over candidate nodes within a time budget.

Filter and score results of shape-only strategies are memoised per distinct node shape for the
duration of one request, so homogeneous clusters cost one evaluation per shape, not per node.
When the budget runs out the engine stops and says so; the caller returns the best answer so far.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from .metrics import ExtenderMetrics
from .nodes import NodeState
from .protocol import MAX_PRIORITY
from .requirements import PodRequirements
from .strategies import Failure, Strategy

__all__ = ["Engine", "FilterOutcome", "PrioritizeOutcome"]

log = logging.getLogger(__name__)

_CHECK_EVERY = 128
_NO_INVENTORY_LOG_INTERVAL_S = 300.0


@dataclass(slots=True)
class FilterOutcome:
    """Result of filtering: passing names, failures with reasons, and whether time ran out."""

    passed: list[NodeState] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    evaluated: int = 0
    timed_out: bool = False


@dataclass(slots=True)
class PrioritizeOutcome:
    """Result of prioritizing: (node, 0..10 score) for every candidate, and whether time ran out."""

    scores: list[tuple[str, int]] = field(default_factory=list)
    evaluated: int = 0
    timed_out: bool = False


class Engine:
    """Weighted combination of strategies."""

    def __init__(
        self,
        strategies: Sequence[tuple[Strategy, int]],
        *,
        budget_s: float = 0.2,
        metrics: ExtenderMetrics | None = None,
    ) -> None:
        self.filters = [s for s, _ in strategies if s.filters]
        self.scorers = [(s, w) for s, w in strategies if w > 0]
        self.total_weight = sum(w for _, w in self.scorers) or 1
        self.budget_s = budget_s
        self.metrics = metrics
        self._no_inventory_logged: dict[str, float] = {}

    # ---- filter ------------------------------------------------------------------------------
    def filter(self, pod: PodRequirements, nodes: Sequence[NodeState]) -> FilterOutcome:
        """Split ``nodes`` into those that can run ``pod`` and those that cannot (with reasons)."""
        deadline = time.perf_counter() + self.budget_s
        out = FilterOutcome()
        memo: dict[int, Failure | None] = {}
        shape_filters = [s for s in self.filters if s.shape_only]
        node_filters = [s for s in self.filters if not s.shape_only]
        for i, node in enumerate(nodes):
            if i % _CHECK_EVERY == 0 and i and time.perf_counter() > deadline:
                out.timed_out = True
                self._finish_filter_early(out, nodes[i:])
                break
            sid = node.shape_id
            if sid in memo:
                failure = memo[sid]
            else:
                failure = _first_failure(shape_filters, pod, node)
                memo[sid] = failure
            if failure is None and node_filters:
                failure = _first_failure(node_filters, pod, node)
            out.evaluated += 1
            if failure is None:
                out.passed.append(node)
                continue
            out.reasons[failure.code] += 1
            text = f"outrider: {failure.message}"
            if failure.unresolvable:
                out.unresolvable[node.name] = text
            else:
                out.failed[node.name] = text
        if self.metrics is not None:
            for code, n in out.reasons.items():
                self.metrics.filtered.labels(code).inc(n)
        return out

    def _finish_filter_early(self, out: FilterOutcome, rest: Sequence[NodeState]) -> None:
        """Out of time: keep what was decided; unchecked nodes fail (retryable) if some passed."""
        if not out.passed:
            out.passed.extend(rest)
            return
        for node in rest:
            out.failed[node.name] = "outrider: not evaluated within the extender's time budget"
        out.reasons["budget_exhausted"] += len(rest)

    # ---- prioritize --------------------------------------------------------------------------
    def prioritize(self, pod: PodRequirements, nodes: Sequence[NodeState]) -> PrioritizeOutcome:
        """Score every node 0..10 (best node 10); nodes without inventory get 0."""
        deadline = time.perf_counter() + self.budget_s
        out = PrioritizeOutcome()
        memo: dict[int, float] = {}
        shape_scorers = [(s, w) for s, w in self.scorers if s.shape_only]
        node_scorers = [(s, w) for s, w in self.scorers if not s.shape_only]
        raw: list[float] = []
        for i, node in enumerate(nodes):
            if i % _CHECK_EVERY == 0 and i and time.perf_counter() > deadline:
                out.timed_out = True
                break
            if not node.shape.has_inventory:
                self._note_no_inventory(node)
                raw.append(-1.0)
                continue
            sid = node.shape_id
            value = memo.get(sid)
            if value is None:
                value = sum(w * s.score(pod, node) for s, w in shape_scorers)
                memo[sid] = value
            if node_scorers:
                value += sum(w * s.score(pod, node) for s, w in node_scorers)
            raw.append(value)
        out.evaluated = len(raw)
        best = max(raw, default=0.0)
        for node, value in zip(nodes, raw, strict=False):
            score = 0 if value <= 0 or best <= 0 else max(1, round(MAX_PRIORITY * value / best))
            out.scores.append((node.name, score))
        out.scores.extend((node.name, 0) for node in nodes[len(raw) :])
        return out

    def _note_no_inventory(self, node: NodeState) -> None:
        if self.metrics is not None:
            self.metrics.nodes_without_inventory.inc()
        now = time.monotonic()
        last = self._no_inventory_logged.get(node.name)
        if last is None or now - last > _NO_INVENTORY_LOG_INTERVAL_S:
            self._no_inventory_logged[node.name] = now
            log.warning("node %s scored the minimum: %s", node.name, node.inventory_problem or "no inventory")


def _first_failure(strategies: Sequence[Strategy], pod: PodRequirements, node: NodeState) -> Failure | None:
    for strategy in strategies:
        failure = strategy.filter(pod, node)
        if failure is not None:
            return failure
    return None
