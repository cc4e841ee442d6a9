"""Why a rollout is stuck, read from the objects that hold the cause (pure functions).

A Deployment whose pods cannot be created says so in its ``ReplicaFailure`` condition (a Pod
Security refusal, a missing PriorityClass, a quota); a pod that cannot be placed says so in its
``PodScheduled`` condition (the scheduler's and the extender's reasons); a container that cannot
start says so in its waiting state (an image that cannot be pulled or named, a crash loop). The
operator lifts the most telling of these onto the InferenceDeployment's ``Ready`` condition and
into an Event, instead of an opaque "0/N pods ready".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Trouble", "deployment_trouble", "pod_trouble", "worst_trouble"]

MESSAGE_LIMIT = 600
"""Characters of a cause's message kept (scheduler messages list every node's reason)."""

_IMAGE = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_CONTAINER = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
_RANK = {
    "ReplicaFailure": 0,
    "Unschedulable": 1,
    "ImagePullFailed": 2,
    "ContainerFailed": 3,
    "CrashLooping": 4,
}
"""Which cause to show first when several are present: the earliest in a pod's life first."""


@dataclass(frozen=True)
class Trouble:
    """One reason pods do not become ready: a condition reason and a human message."""

    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def deployment_trouble(deployment: dict[str, Any] | None) -> Trouble | None:
    """The Deployment's own account of failing to create pods or to progress, if any."""
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Trouble("ReplicaFailure", _short(f"{cond.get('reason', '')}: {cond.get('message', '')}"))
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Trouble("ReplicaFailure", _short(str(cond.get("message", "progress deadline exceeded"))))
    return None


def pod_trouble(pod: dict[str, Any]) -> Trouble | None:
    """Why this pod is not running and ready, when its status names a cause; else None."""
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name", "?")
    for cond in status.get("conditions") or []:
        unschedulable = cond.get("status") == "False" and cond.get("reason") == "Unschedulable"
        if cond.get("type") == "PodScheduled" and unschedulable:
            return Trouble("Unschedulable", _short(f"pod {name}: {cond.get('message', '')}"))
    containers = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    for c in containers:
        waiting = (c.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason", ""))
        detail = f"pod {name}, container {c.get('name', '?')}: {reason}: {waiting.get('message', '')}"
        if reason in _IMAGE:
            return Trouble("ImagePullFailed", _short(detail))
        if reason in _CONTAINER:
            return Trouble("ContainerFailed", _short(detail))
        if reason == "CrashLoopBackOff":
            return Trouble("CrashLooping", _short(detail))
    return None


def worst_trouble(troubles: Iterable[Trouble | None]) -> Trouble | None:
    """The cause to report among several (``ReplicaFailure`` before scheduling before images...)."""
    found = [t for t in troubles if t is not None]
    if not found:
        return None
    first = min(found, key=lambda t: _RANK.get(t.reason, len(_RANK)))
    same = sum(1 for t in found if t.reason == first.reason)
    if same > 1:
        return Trouble(first.reason, _short(f"{first.message} (and {same - 1} more like it)"))
    return first
