"""Forecast headroom: keep spare GPUs where the forecast says a deployment will need them.

The planner decides how many GPUs to hold back on which node for which deployment, and how
many extra replicas each deployment will need soon. This strategy reads that through the small
:class:`HeadroomSource` interface and

- lowers the score of nodes where the pod would eat into GPUs reserved for *other* deployments,
- raises it for nodes reserved for the pod's own deployment, and
- prefers nodes with room for the deployment's expected extra replicas next to this one.

:class:`StaticHeadroomSource` serves fixed numbers from configuration. :class:`StatusHeadroomSource`
reads the planner's plan from the InferenceDeployments' status in the extender's watch cache —
``status.plan.expectedExtraReplicas`` and ``status.plan.reservations`` (the nodes where the planner
holds GPUs back for a deployment's next replicas) — and falls back to the static numbers.

Arguments (``strategies.forecastHeadroom.args``): ``reservations`` (node → deployment → GPUs)
and ``expectedExtraReplicas`` (deployment → replicas), both optional, used to build a static source.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from typing import Any, ClassVar, Protocol

from pydantic import Field, NonNegativeInt

from outrider_operator.api.status import parse_status

from ..nodes import NodeState
from ..requirements import PodRequirements
from .base import ClusterView, Strategy, StrategyArgs

__all__ = [
    "ForecastHeadroom",
    "ForecastHeadroomArgs",
    "HeadroomSource",
    "StaticHeadroomSource",
    "StatusHeadroomSource",
]


class HeadroomSource(Protocol):
    """Where the forecast's reservations come from."""

    def reserved_gpus(self, node: str) -> Mapping[str, int]:
        """GPUs to keep free on ``node``, per deployment name."""
        ...

    def expected_extra_replicas(self, deployment: str) -> int:
        """How many more replicas ``deployment`` (``namespace/name``) is forecast to need soon."""
        ...

    def reserved_nodes(self) -> Collection[str]:
        """Names of the nodes that hold any reservation (all others reserve nothing)."""
        ...


class StaticHeadroomSource:
    """A HeadroomSource with fixed numbers (from configuration or tests)."""

    def __init__(
        self,
        reservations: Mapping[str, Mapping[str, int]] | None = None,
        expected: Mapping[str, int] | None = None,
    ) -> None:
        self._reservations = {n: dict(r) for n, r in (reservations or {}).items()}
        self._expected = dict(expected or {})

    def reserved_gpus(self, node: str) -> Mapping[str, int]:
        """GPUs reserved on ``node`` per deployment (empty when none)."""
        return self._reservations.get(node, {})

    def expected_extra_replicas(self, deployment: str) -> int:
        """Extra replicas of ``deployment`` (``namespace/name``, or its bare name; 0 when unknown)."""
        found = self._expected.get(deployment)
        if found is None:
            found = self._expected.get(deployment.rpartition("/")[2], 0)
        return found

    def reserved_nodes(self) -> Collection[str]:
        """Nodes with at least one reservation."""
        return {n for n, r in self._reservations.items() if any(r.values())}


class StatusHeadroomSource:
    """Headroom from the planner's plan in InferenceDeployment status, with static numbers beneath.

    ``lookup(namespace, name)`` returns the InferenceDeployment as a plain dict (or None);
    ``reservations()`` returns node -> deployment -> GPUs held back, merged over every deployment's
    ``status.plan.reservations`` (see :meth:`ClusterCache.reservations`). Expected extra replicas
    come from ``status.plan.expectedExtraReplicas`` (the planner's typed plan), else from
    ``recommendedReplicas - replicas``; anything the status does not say is answered by ``fallback``,
    and per-node reservations add to the fallback's.
    """

    def __init__(
        self,
        lookup: Callable[[str, str], Mapping[str, Any] | None],
        fallback: HeadroomSource,
        reservations: Callable[[], Mapping[str, Mapping[str, int]]] | None = None,
    ) -> None:
        self._lookup = lookup
        self.fallback = fallback
        self._reservations = reservations or (lambda: {})

    def reserved_gpus(self, node: str) -> Mapping[str, int]:
        """GPUs held back on ``node`` per deployment: the planner's plus the configured ones."""
        planned = self._reservations().get(node)
        static = self.fallback.reserved_gpus(node)
        if not planned:
            return static
        merged = dict(static)
        for dep, gpus in planned.items():
            merged[dep] = merged.get(dep, 0) + gpus
        return merged

    def reserved_nodes(self) -> Collection[str]:
        """Nodes with reservations (planned or configured)."""
        return {
            *self.fallback.reserved_nodes(),
            *(n for n, r in self._reservations().items() if any(r.values())),
        }

    def expected_extra_replicas(self, deployment: str) -> int:
        """The planner's expected extra replicas, else ``recommendedReplicas - replicas``, at least 0."""
        namespace, _, name = deployment.rpartition("/")
        obj = self._lookup(namespace or "default", name)
        raw = obj.get("status") if isinstance(obj, Mapping) else None
        if not isinstance(raw, Mapping):
            return self.fallback.expected_extra_replicas(deployment)
        status = parse_status(dict(raw))
        if status.plan is not None:
            return status.plan.expected_extra_replicas
        recommended = status.forecast.recommended_replicas if status.forecast else None
        if recommended is not None:
            return max(0, recommended - status.replicas)
        return self.fallback.expected_extra_replicas(deployment)


class ForecastHeadroomArgs(StrategyArgs):
    """Typed arguments of the forecast-headroom strategy (a static source)."""

    strategy: ClassVar[str] = "forecastHeadroom"
    reservations: dict[str, dict[str, NonNegativeInt]] = Field(default_factory=dict)
    """Node name -> deployment name -> GPUs to keep free for it."""
    expected_extra_replicas: dict[str, NonNegativeInt] = Field(default_factory=dict)
    """Deployment name -> extra replicas the forecast expects."""


class ForecastHeadroom(Strategy):
    """Protects forecast reservations and leaves room for expected scale-ups."""

    name: ClassVar[str] = "forecastHeadroom"
    shape_only: ClassVar[bool] = False

    def __init__(
        self, args: ForecastHeadroomArgs | None = None, source: HeadroomSource | None = None
    ) -> None:
        self.args = args or ForecastHeadroomArgs()
        self.source: HeadroomSource = source or StaticHeadroomSource(
            self.args.reservations, self.args.expected_extra_replicas
        )

    def special_nodes(self, pod: PodRequirements, view: ClusterView) -> Mapping[str, Hashable] | None:
        """Nodes with reservations score individually; all others by shape alone."""
        reserved = self.source.reserved_nodes()
        return {name: name for name in reserved} if reserved else None

    def score(self, pod: PodRequirements, node: NodeState) -> float:
        """1.0 when nothing reserved for others is touched; less the more it is."""
        free = node.shape.free_gpus
        if pod.gpus <= 0 or pod.gpus > free:
            return 0.0
        leftover = free - pod.gpus
        reserved = self.source.reserved_gpus(node.name)
        own = reserved.get(pod.deployment, 0) if pod.deployment else 0
        others = sum(reserved.values()) - own
        protect = 1.0 if leftover >= others else leftover / others
        if own > 0:
            protect = 1.0
        expected = (
            self.source.expected_extra_replicas(f"{pod.namespace}/{pod.deployment}") if pod.deployment else 0
        )
        if expected <= 0:
            return protect
        room = min(1.0, (max(0, leftover - others) // pod.gpus) / expected)
        return 0.5 * protect + 0.5 * room
