"""The Outrider kube-scheduler extender: GPU-, shard- and cache-aware placement.

Public facade; the layers live in their own modules:

- :mod:`.protocol` — ExtenderArgs / ExtenderFilterResult / HostPriority (Go PascalCase keys)
- :mod:`.requirements` — what a pod needs; :mod:`.nodes` — what a node offers
- :mod:`.cache` — the watch-based node/pod/InferenceDeployment cache
- :mod:`.strategies` — one module per strategy; :mod:`.engine` — weighted combination
- :mod:`.server` — the aiohttp service; :mod:`.config`, :mod:`.metrics`, :mod:`.errors`
"""

from __future__ import annotations

from .cache import CacheWatcher, ClusterCache
from .config import ExtenderConfig, StrategySettings
from .engine import Engine
from .errors import BadRequestError, ConfigError, ExtenderError, MalformedRequestError, UnknownNodesError
from .metrics import ExtenderMetrics
from .protocol import ExtenderArgs, ExtenderFilterResult, HostPriority
from .requirements import PodRequirements
from .server import ExtenderService, create_app

__all__ = [
    "BadRequestError",
    "CacheWatcher",
    "ClusterCache",
    "ConfigError",
    "Engine",
    "ExtenderArgs",
    "ExtenderConfig",
    "ExtenderError",
    "ExtenderFilterResult",
    "ExtenderMetrics",
    "ExtenderService",
    "HostPriority",
    "MalformedRequestError",
    "PodRequirements",
    "StrategySettings",
    "UnknownNodesError",
    "create_app",
]
