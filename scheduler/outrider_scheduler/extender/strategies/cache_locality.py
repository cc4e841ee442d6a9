"""Cache locality: prefer nodes that already hold the model's weights.

A node scales up in seconds instead of minutes when the weights are already there: listed in the
node agent's ``cachedModels``, held by a running pod of the same model, or — best — by a warm or
cold standby pod of the model (``outrider.dev/pool`` warm|cold) on that node.

Arguments (``strategies.cacheLocality.args``):

- ``cachedScore`` (default 0.8): score when the weights are cached on the node.
- ``standbyScore`` (default 1.0): score when a standby pod of the model runs on the node.

Pods without an ``outrider.dev/model`` label score 0 everywhere (the strategy is neutral).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import ClassVar

from pydantic import Field

from ..nodes import NodeState
from ..requirements import PodRequirements
from .base import ClusterView, Strategy, StrategyArgs

__all__ = ["CacheLocality", "CacheLocalityArgs"]


class CacheLocalityArgs(StrategyArgs):
    """Typed arguments of the cache-locality strategy."""

    strategy: ClassVar[str] = "cacheLocality"
    cached_score: float = Field(default=0.8, ge=0.0, le=1.0)
    """Score of a node whose model cache (or a running replica) holds the weights."""
    standby_score: float = Field(default=1.0, ge=0.0, le=1.0)
    """Score of a node running a warm or cold standby pod of the model."""


class CacheLocality(Strategy):
    """Scores nodes by whether the pod's model weights are already there."""

    name: ClassVar[str] = "cacheLocality"
    shape_only: ClassVar[bool] = False

    def __init__(self, args: CacheLocalityArgs | None = None) -> None:
        self.args = args or CacheLocalityArgs()

    def special_nodes(self, pod: PodRequirements, view: ClusterView) -> Mapping[str, Hashable] | None:
        """The nodes holding the pod's model (None when the pod names no model)."""
        if not pod.model:
            return None
        return view.model_nodes(pod.model)

    def score(self, pod: PodRequirements, node: NodeState) -> float:
        """standbyScore, cachedScore or 0."""
        model = pod.model
        if not model:
            return 0.0
        if node.standby_models.get(model):
            return self.args.standby_score
        if model in node.cached_models:
            return self.args.cached_score
        return 0.0
