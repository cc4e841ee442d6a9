"""What the planner loop keeps: per-deployment state, actions waiting for capacity, reported actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .capacity import CapacityModel
from .decisions import Action, Memory
from .signals import SignalBook

__all__ = ["ActionRecord", "DeploymentState", "PendingAction"]


@dataclass(frozen=True)
class ActionRecord:
    """One reported action with exact times (unix seconds), kept for ``GET /debug/actions``."""

    namespace: str
    deployment: str
    action: str
    trigger: str
    advisory: bool
    pods: tuple[str, ...]
    count: int
    trigger_at: float
    decided_at: float
    ready_at: float | None
    message: str

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON, with the two durations the status shows."""
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "action": self.action,
            "trigger": self.trigger,
            "advisory": self.advisory,
            "pods": list(self.pods),
            "count": self.count,
            "triggerAt": self.trigger_at,
            "decidedAt": self.decided_at,
            "readyAt": self.ready_at,
            "decisionSeconds": round(self.decided_at - self.trigger_at, 3),
            "readySeconds": round(self.ready_at - self.trigger_at, 3) if self.ready_at is not None else None,
            "message": self.message,
        }


@dataclass
class PendingAction:
    """An action that adds capacity, waiting until that capacity serves."""

    action: Action
    trigger_at: float
    decided_at: float
    pods: set[str]
    baseline: set[str]
    """Active-pool pods that existed when the action was decided (AddReplicas counts new ones)."""


@dataclass
class DeploymentState:
    """Per-deployment state of the loop."""

    model: CapacityModel
    signals: SignalBook
    memory: Memory = field(default_factory=Memory)
    pending: list[PendingAction] = field(default_factory=list)
    advisory_seen: dict[tuple[Any, ...], float] = field(default_factory=dict)
