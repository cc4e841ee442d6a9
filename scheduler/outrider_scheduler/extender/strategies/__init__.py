"""Placement strategies, one module each, and the one registration list.

=================  ========================================================  ===========
name               what it does                                              filters?
=================  ========================================================  ===========
gpuFit             enough free GPUs with enough memory and the precision     yes
shardTopology      multi-GPU replicas on NVLink peers; shards to strengths   yes
cacheLocality      prefer nodes holding the model's weights / a standby      no
fragmentation      best-fit packing, keep whole GPUs and NVLink groups free  no
forecastHeadroom   keep spare GPUs where the forecast wants them             no
=================  ========================================================  ===========
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import ClusterView, Failure, Strategy, StrategyArgs
from .cache_locality import CacheLocality, CacheLocalityArgs
from .forecast_headroom import (
    ForecastHeadroom,
    ForecastHeadroomArgs,
    HeadroomSource,
    StaticHeadroomSource,
    StatusHeadroomSource,
)
from .fragmentation import Fragmentation, FragmentationArgs
from .gpu_fit import GpuFit, GpuFitArgs
from .shard_topology import ShardTopology, ShardTopologyArgs

__all__ = [
    "REGISTRY",
    "CacheLocality",
    "CacheLocalityArgs",
    "ClusterView",
    "Failure",
    "ForecastHeadroom",
    "ForecastHeadroomArgs",
    "Fragmentation",
    "FragmentationArgs",
    "GpuFit",
    "GpuFitArgs",
    "HeadroomSource",
    "ShardTopology",
    "ShardTopologyArgs",
    "StaticHeadroomSource",
    "StatusHeadroomSource",
    "Strategy",
    "StrategyArgs",
    "build_strategy",
]


def _gpu_fit(args: Mapping[str, Any]) -> Strategy:
    return GpuFit(GpuFitArgs.from_mapping(args))


def _shard_topology(args: Mapping[str, Any]) -> Strategy:
    return ShardTopology(ShardTopologyArgs.from_mapping(args))


def _cache_locality(args: Mapping[str, Any]) -> Strategy:
    return CacheLocality(CacheLocalityArgs.from_mapping(args))


def _fragmentation(args: Mapping[str, Any]) -> Strategy:
    return Fragmentation(FragmentationArgs.from_mapping(args))


def _forecast_headroom(args: Mapping[str, Any]) -> Strategy:
    return ForecastHeadroom(ForecastHeadroomArgs.from_mapping(args))


REGISTRY: dict[str, Callable[[Mapping[str, Any]], Strategy]] = {
    GpuFit.name: _gpu_fit,
    ShardTopology.name: _shard_topology,
    CacheLocality.name: _cache_locality,
    Fragmentation.name: _fragmentation,
    ForecastHeadroom.name: _forecast_headroom,
}
"""Strategy name -> factory taking the camelCase args mapping (raises ConfigError when invalid)."""


def build_strategy(name: str, args: Mapping[str, Any]) -> Strategy:
    """Build the strategy registered as ``name``; raises ConfigError for unknown names or bad args."""
    from ..errors import ConfigError

    factory = REGISTRY.get(name)
    if factory is None:
        raise ConfigError(f"unknown strategy {name!r}; known: {sorted(REGISTRY)}")
    return factory(args)
