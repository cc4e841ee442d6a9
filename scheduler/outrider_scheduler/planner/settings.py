"""Settings of the planner service: its loop, how it reaches pods, how it reports, and its rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from .capacity import CapacitySettings
from .decisions import CoreSettings

__all__ = ["PlannerSettings"]


@dataclass(frozen=True)
class PlannerSettings:
    """Settings of the planner service."""

    poll_interval_s: float = 0.5
    """Seconds between cycles (how often every pod is polled)."""
    namespaces: tuple[str, ...] = ()
    """Plan only InferenceDeployments in these namespaces (empty: all)."""
    pod_endpoint_annotation: bool = False
    """Reach pods at their ``outrider.dev/stand-in-endpoint`` annotation (development clusters only)."""
    startup_grace_s: float = 300.0
    """A young pod that is not ready and does not answer yet counts as starting, not unreachable."""
    ready_timeout_s: float = 600.0
    """An action whose capacity is not serving after this long is reported as late and dropped."""
    advisory_repeat_s: float = 60.0
    """An unchanged advisory decision is reported again after this long."""
    core: CoreSettings = field(default_factory=CoreSettings)
    """Decision rules."""
    capacity: CapacitySettings = field(default_factory=CapacitySettings)
    """Capacity model."""
