"""Extender configuration: listen address, time budget and weighted strategies.

YAML shape (every key optional)::

    listen: {host: 127.0.0.1, port: 8765}
    budgetMs: 200           # answer with the best result so far after this long
    watchDeployments: true  # also watch InferenceDeployments (optional input)
    strategies:
      gpuFit:           {weight: 2, args: {requireInventory: false}}
      shardTopology:    {weight: 2}
      cacheLocality:    {weight: 3}
      fragmentation:    {weight: 4}
      forecastHeadroom: {weight: 1}

A weight of 0 disables a strategy's scoring; a strategy that filters still filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .strategies import REGISTRY, Strategy, build_strategy

__all__ = ["DEFAULT_WEIGHTS", "ExtenderConfig", "StrategySettings"]

DEFAULT_WEIGHTS: dict[str, int] = {
    "gpuFit": 2,
    "shardTopology": 2,
    "cacheLocality": 3,
    "fragmentation": 4,
    "forecastHeadroom": 1,
}
"""Default weight of each strategy."""


@dataclass(frozen=True)
class StrategySettings:
    """Weight and raw arguments of one strategy."""

    weight: int = 1
    """Relative weight of the strategy's score (0 disables scoring)."""
    args: dict[str, Any] = field(default_factory=dict)
    """camelCase arguments, validated by the strategy's args type."""


def _default_strategies() -> dict[str, StrategySettings]:
    return {name: StrategySettings(weight=w) for name, w in DEFAULT_WEIGHTS.items()}


@dataclass(frozen=True)
class ExtenderConfig:
    """Everything the extender service is configured with."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8765
    """TCP port to listen on (kube-scheduler's urlPrefix must match)."""
    budget_ms: float = 200.0
    """Per-request time budget; past it, the best answer so far is returned."""
    watch_deployments: bool = True
    """Watch InferenceDeployments too (never required)."""
    strategies: dict[str, StrategySettings] = field(default_factory=_default_strategies)
    """Strategy name -> weight and args."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"listen.port must be within 0..65535, got {self.port}")
        if self.budget_ms <= 0:
            raise ConfigError(f"budgetMs must be > 0, got {self.budget_ms}")
        for name, settings in self.strategies.items():
            if name not in REGISTRY:
                raise ConfigError(f"unknown strategy {name!r}; known: {sorted(REGISTRY)}")
            if settings.weight < 0:
                raise ConfigError(f"strategies.{name}.weight must be >= 0, got {settings.weight}")
        self.build_strategies()  # validate the arguments now: fail fast at construction

    def build_strategies(self) -> list[tuple[Strategy, int]]:
        """Instantiate the configured strategies with their weights."""
        return [(build_strategy(name, s.args), s.weight) for name, s in self.strategies.items()]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ExtenderConfig:
        """Build from the YAML mapping; raises ConfigError naming what is wrong."""
        if not isinstance(data, Mapping):
            raise ConfigError("the extender config must be a mapping")
        unknown = sorted(set(data) - {"listen", "budgetMs", "watchDeployments", "strategies"})
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}")
        listen = data.get("listen") or {}
        if not isinstance(listen, Mapping) or set(listen) - {"host", "port"}:
            raise ConfigError("listen must be a mapping with host and/or port")
        strategies = _default_strategies()
        raw = data.get("strategies") or {}
        if not isinstance(raw, Mapping):
            raise ConfigError("strategies must be a mapping of strategy name -> {weight, args}")
        for name, item in raw.items():
            if not isinstance(item, Mapping) or set(item) - {"weight", "args"}:
                raise ConfigError(f"strategies.{name} must be a mapping with weight and/or args")
            weight = item.get("weight", DEFAULT_WEIGHTS.get(name, 1))
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise ConfigError(f"strategies.{name}.weight must be an integer, got {weight!r}")
            args = item.get("args") or {}
            if not isinstance(args, Mapping):
                raise ConfigError(f"strategies.{name}.args must be a mapping")
            strategies[str(name)] = StrategySettings(weight=weight, args=dict(args))
        try:
            port = int(listen.get("port", 8765))
            budget = float(data.get("budgetMs", 200.0))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"listen.port and budgetMs must be numbers: {exc}") from None
        return cls(
            host=str(listen.get("host", "127.0.0.1")),
            port=port,
            budget_ms=budget,
            watch_deployments=bool(data.get("watchDeployments", True)),
            strategies=strategies,
        )

    @classmethod
    def from_file(cls, path: Path) -> ExtenderConfig:
        """Load a YAML config file; raises ConfigError when unreadable or invalid."""
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read extender config {path}: {exc}") from None
        return cls.from_mapping(data)
