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

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from ..errors import ConfigError
from ..nodes import NodeState
from ..requirements import PodRequirements

__all__ = ["ClusterView", "Failure", "Strategy", "args_from_mapping"]


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


_T = TypeVar("_T")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def args_from_mapping(
    cls: type[_T], strategy: str, data: Mapping[str, Any], renames: Mapping[str, str] | None = None
) -> _T:
    """Build a strategy's args dataclass from its camelCase config mapping.

    Keys are the camelCase field names (``renames`` maps irregular ones). Unknown keys and values
    whose type differs from the field default's type raise ConfigError naming the key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{strategy}.args must be a mapping, got {type(data).__name__}")
    by_key: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        by_key[_camel(f.name)] = f
    for key, field_name in (renames or {}).items():
        by_key.pop(_camel(field_name), None)
        by_key[key] = next(f for f in dataclasses.fields(cls) if f.name == field_name)  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(by_key))
    if unknown:
        raise ConfigError(f"{strategy}.args: unknown keys {unknown}; known: {sorted(by_key)}")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        f = by_key[key]
        default = f.default if f.default is not dataclasses.MISSING else None
        value = raw
        if isinstance(default, float) and isinstance(raw, int) and not isinstance(raw, bool):
            value = float(raw)
        expected = type(default)
        if default is not None and expected not in (dict, list, tuple) and type(value) is not expected:
            raise ConfigError(f"{strategy}.args.{key} must be {expected.__name__}, got {raw!r}")
        values[f.name] = value
    return cls(**values)
