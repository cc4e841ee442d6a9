"""The strategy interface every placement strategy implements.

A strategy is built once from typed, validated arguments (fail fast at construction) and then
asked, per pod and node, to *filter* (return a :class:`Failure` or None) and to *score* (a float in
0..1, higher is better). Strategies fail soft: a node without inventory is never an exception.

Strategies whose answers depend only on the node's :class:`~..nodes.NodeShape` set
``shape_only = True``; the engine then evaluates them once per distinct shape per request.
Others name, from :meth:`Strategy.special_nodes`, the few nodes whose score may differ from
other nodes of the same shape (with a key per node); the engine memoises on (shape, key) for those
and on the shape alone for every other node.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from ..errors import ConfigError
from ..nodes import NodeState
from ..requirements import PodRequirements

__all__ = ["ClusterView", "Failure", "Strategy", "StrategyArgs"]


class ClusterView(Protocol):
    """Cluster-wide indexes that strategies may consult (the extender's cache provides them)."""

    def model_nodes(self, model: str) -> Mapping[str, int]:
        """Nodes holding ``model``: 2 when a warm/cold standby pod of it runs there, 1 when cached."""
        ...


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a node cannot take a pod: a short code (metrics label) and a message for people."""

    code: str
    message: str
    unresolvable: bool = True
    """True when preempting pods on the node would not help (the node lacks the hardware)."""


class Strategy(ABC):
    """One placement strategy."""

    name: ClassVar[str]
    """Configuration key of the strategy (camelCase)."""
    shape_only: ClassVar[bool] = True
    """True when filter and score depend only on ``node.shape`` (memoisable per shape)."""
    filters: ClassVar[bool] = False
    """True when the strategy can reject nodes."""

    def filter(self, pod: PodRequirements, node: NodeState) -> Failure | None:
        """Return why ``node`` cannot run ``pod``, or None when it can. Default: never rejects."""
        return None

    def special_nodes(self, pod: PodRequirements, view: ClusterView) -> Mapping[str, Hashable] | None:
        """Nodes whose score for ``pod`` may differ from same-shape nodes not listed, with a key each.

        Nodes listed with equal keys and equal shapes must score equally; unlisted nodes of equal
        shape must score equally. None means no node is special. Strategies that are not
        shape-only must override this (the default refuses, rather than memoise wrongly).
        """
        if self.shape_only:
            return None
        raise NotImplementedError(f"{type(self).__name__} is not shape-only and must implement special_nodes")

    @abstractmethod
    def score(self, pod: PodRequirements, node: NodeState) -> float:
        """Return how good ``node`` is for ``pod``, 0..1 (0 for nodes without usable data)."""


_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


class StrategyArgs(BaseModel):
    """Base of the strategies' typed arguments: camelCase keys, unknown keys and wrong types refused
    (a JSON ``true`` is not a number, ``"2"`` is not an integer), bounds declared on the fields."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True, frozen=True
    )
    strategy: ClassVar[str] = "strategy"
    """The strategy's config name, for error messages."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """Build from the camelCase config mapping; raises ConfigError naming the key and the rule."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.strategy}.args must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(part) for part in err["loc"])
            ctx = err.get("ctx") or {}
            kind = err["type"]
            if kind == "extra_forbidden":
                known = sorted((f.alias or name) for name, f in cls.model_fields.items())
                raise ConfigError(f"{cls.strategy}.args: unknown key {key!r}; known: {known}") from None
            if kind in _BOUNDS:
                bound = next(iter(ctx.values()), "?")
                rule = f"must be {_BOUNDS[kind]} {bound}"
            else:
                rule = f"is invalid: {err['msg']}"
            raise ConfigError(f"{cls.strategy}.args.{key} {rule}, got {err.get('input')!r}") from None
