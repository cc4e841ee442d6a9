"""The Outrider node GPU agent: NVML discovery, the node inventory annotation, metrics.

Facade over :mod:`.nvml` (backends), :mod:`.discovery`, :mod:`.publishing`, :mod:`.metrics`,
:mod:`.runner` and :mod:`.report`; errors in :mod:`.errors`.
"""

from __future__ import annotations

from .discovery import DEFAULT_MODEL_CACHE, discover, inventory_from_snapshot
from .errors import AgentError, FixtureError, NvmlUnavailableError, PublishError
from .metrics import AgentMetrics
from .nvml import GpuBackend, PynvmlBackend, RawGpu, RecordedBackend, Snapshot, recorded_names
from .publishing import KubernetesNodePatcher, NodePatcher, NodePublisher, node_patch
from .runner import AgentLoop

__all__ = [
    "DEFAULT_MODEL_CACHE",
    "AgentError",
    "AgentLoop",
    "AgentMetrics",
    "FixtureError",
    "GpuBackend",
    "KubernetesNodePatcher",
    "NodePatcher",
    "NodePublisher",
    "NvmlUnavailableError",
    "PublishError",
    "PynvmlBackend",
    "RawGpu",
    "RecordedBackend",
    "Snapshot",
    "discover",
    "inventory_from_snapshot",
    "node_patch",
    "recorded_names",
]
