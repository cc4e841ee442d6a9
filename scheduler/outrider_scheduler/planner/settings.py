"""Settings of the planner service: its loop, how it reaches pods, how it reports, and its rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from outrider_operator.reconcile.runtimeconfig import HTTP_PORT

from .capacity import CapacitySettings
from .decisions import CoreSettings

__all__ = ["PlannerSettings", "pod_ip_address"]


def pod_ip_address(pod: Mapping[str, Any]) -> str | None:
    """Where a serving pod's runtime answers: ``<pod IP>:8000`` (the port the operator renders);
    None before the pod has an IP."""
    ip = (pod.get("status") or {}).get("podIP")
    return f"{ip}:{HTTP_PORT}" if ip else None


@dataclass(frozen=True)
class PlannerSettings:
    """Settings of the planner service."""

    poll_interval_s: float = 0.5
    """Seconds between cycles (how often every pod is polled)."""
    namespaces: tuple[str, ...] = ()
    """Plan only InferenceDeployments in these namespaces (empty: all)."""
    pod_address: Callable[[Mapping[str, Any]], str | None] = pod_ip_address
    """host:port of a pod's runtime admin and inference API (tests point it at local servers)."""
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
