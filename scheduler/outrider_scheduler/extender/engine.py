"""Runs the weighted strategies over candidate nodes within a time budget.

Results are memoised for the duration of one request: filters per node shape, scores per (node
shape, node keys of the strategies that are not shape-only). Homogeneous clusters therefore cost
one evaluation per distinct shape, and the per-node work is a few dictionary look-ups. Nodes are
processed in chunks; between chunks the budget is checked, and when it has run out the engine
stops and says so — the caller returns the best answer so far.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from .metrics import ExtenderMetrics
from .nodes import NodeState
from .protocol import MAX_PRIORITY
from .requirements import PodRequirements
from .strategies import ClusterView, Failure, Strategy

__all__ = ["Engine", "FilterOutcome", "IndexedNodes", "PrioritizeOutcome"]

log = logging.getLogger(__name__)

_CHUNK = 256
_NO_INVENTORY_LOG_INTERVAL_S = 300.0


@dataclass(slots=True)
class FilterOutcome:
    """Result of filtering: passing nodes, failures with reasons, and whether time ran out."""

    passed: list[NodeState] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    evaluated: int = 0
    timed_out: bool = False


@dataclass(slots=True)
class PrioritizeOutcome:
    """Result of prioritizing: a 0..10 score per candidate (same order), and whether time ran out."""

    nodes: Sequence[NodeState] = ()
    values: list[int] = field(default_factory=list)
    evaluated: int = 0
    timed_out: bool = False

    @property
    def scores(self) -> list[tuple[str, int]]:
        """(node name, score) pairs."""
        return [(n.name, v) for n, v in zip(self.nodes, self.values, strict=True)]


class IndexedNodes:
    """A ClusterView built from a list of nodes (for requests that carry whole Node objects)."""

    def __init__(self, nodes: Sequence[NodeState]) -> None:
        self._nodes = nodes
        self._index: dict[str, dict[str, int]] | None = None

    def model_nodes(self, model: str) -> Mapping[str, int]:
        """Nodes holding ``model`` (2 standby, 1 cached), indexed on first use."""
        if self._index is None:
            self._index = {}
            for node in self._nodes:
                for m, code in node.model_codes().items():
                    self._index.setdefault(m, {})[node.name] = code
        return self._index.get(model, {})


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
        self.budget_s = budget_s
        self.metrics = metrics
        self._no_inventory_logged: dict[str, float] = {}

    # ---- filter ------------------------------------------------------------------------------
    def filter(self, pod: PodRequirements, nodes: Sequence[NodeState]) -> FilterOutcome:
        """Split ``nodes`` into those that can run ``pod`` and those that cannot (with reasons)."""
        deadline = time.perf_counter() + self.budget_s
        out = FilterOutcome()
        shape_filters = [s for s in self.filters if s.shape_only]
        node_filters = [s for s in self.filters if not s.shape_only]
        memo: dict[int, tuple[Failure, str] | None] = {}
        passed, failed, unresolvable, reasons = out.passed, out.failed, out.unresolvable, out.reasons
        for start in range(0, len(nodes), _CHUNK):
            if start and time.perf_counter() > deadline:
                out.timed_out = True
                self._finish_filter_early(out, nodes[start:])
                break
            for node in nodes[start : start + _CHUNK]:
                sid = node.shape_id
                if sid in memo:
                    verdict = memo[sid]
                else:
                    verdict = memo[sid] = _verdict(shape_filters, pod, node)
                if verdict is None and node_filters:
                    verdict = _verdict(node_filters, pod, node)
                if verdict is None:
                    passed.append(node)
                    continue
                failure, text = verdict
                reasons[failure.code] += 1
                if failure.unresolvable:
                    unresolvable[node.name] = text
                else:
                    failed[node.name] = text
            out.evaluated = min(len(nodes), start + _CHUNK)
        if self.metrics is not None:
            for code, n in reasons.items():
                self.metrics.filtered.labels(code).inc(n)
        return out

    @staticmethod
    def _finish_filter_early(out: FilterOutcome, rest: Sequence[NodeState]) -> None:
        """Out of time: keep what was decided; unchecked nodes fail (retryable) if some passed."""
        if not out.passed:
            out.passed.extend(rest)
            return
        for node in rest:
            out.failed[node.name] = "outrider: not evaluated within the extender's time budget"
        out.reasons["budget_exhausted"] += len(rest)

    # ---- prioritize --------------------------------------------------------------------------
    def prioritize(
        self, pod: PodRequirements, nodes: Sequence[NodeState], view: ClusterView | None = None
    ) -> PrioritizeOutcome:
        """Score every node 0..10 (best node 10); nodes without inventory get 0."""
        deadline = time.perf_counter() + self.budget_s
        out = PrioritizeOutcome(nodes=nodes)
        special = self._special_nodes(pod, view or IndexedNodes(nodes))
        memo: dict[Hashable, float] = {}
        raw: list[float] = []
        append = raw.append
        for start in range(0, len(nodes), _CHUNK):
            if start and time.perf_counter() > deadline:
                out.timed_out = True
                break
            for node in nodes[start : start + _CHUNK]:
                key: Hashable = node.shape_id
                if special:
                    extra = special.get(node.name)
                    if extra is not None:
                        key = (key, extra)
                value = memo.get(key)
                if value is None:
                    value = memo[key] = self._raw_score(pod, node)
                if value < 0:
                    self._note_no_inventory(node)
                append(value)
        out.evaluated = len(raw)
        best = max(raw, default=0.0)
        scale = {v: 0 if v <= 0 or best <= 0 else max(1, round(MAX_PRIORITY * v / best)) for v in set(raw)}
        out.values = [scale[v] for v in raw]
        out.values.extend([0] * (len(nodes) - len(raw)))
        return out

    def _special_nodes(self, pod: PodRequirements, view: ClusterView) -> dict[str, tuple[Hashable, ...]]:
        maps = [m for s, _ in self.scorers if (m := s.special_nodes(pod, view))]
        if not maps:
            return {}
        if len(maps) == 1:
            return {name: (key,) for name, key in maps[0].items()}
        names = set().union(*maps)
        return {name: tuple(m.get(name) for m in maps) for name in names}

    def _raw_score(self, pod: PodRequirements, node: NodeState) -> float:
        if not node.shape.has_inventory:
            return -1.0
        return sum(w * s.score(pod, node) for s, w in self.scorers)

    def _note_no_inventory(self, node: NodeState) -> None:
        if self.metrics is not None:
            self.metrics.nodes_without_inventory.inc()
        now = time.monotonic()
        last = self._no_inventory_logged.get(node.name)
        if last is None or now - last > _NO_INVENTORY_LOG_INTERVAL_S:
            self._no_inventory_logged[node.name] = now
            log.warning("node %s scored the minimum: %s", node.name, node.inventory_problem or "no inventory")


def _verdict(
    strategies: Sequence[Strategy], pod: PodRequirements, node: NodeState
) -> tuple[Failure, str] | None:
    for strategy in strategies:
        failure = strategy.filter(pod, node)
        if failure is not None:
            return failure, f"outrider: {failure.message}"
    return None
