"""How many active replicas the operator asks for, by scaling mode.

- reactive: ``spec.replicas.target`` (written through /scale) clamped to [min, max]; min if unset.
- predictive: the planner's recommendation in ``status.forecast.recommendedReplicas`` clamped to
  [min, max]; min until there is one. Never below the current count while the planner is silent
  (a forecast that disappears must not drop capacity).
- advisory: decisions are published, never acted on: the pool holds its current size (clamped to
  [min, max]; min for a new object), like predictive mode while the planner is silent.
"""

from __future__ import annotations

from outrider_operator.api.spec import InferenceDeploymentSpec, ScalingMode
from outrider_operator.api.status import InferenceDeploymentStatus

__all__ = ["desired_active_replicas"]


def _clamp(value: int, spec: InferenceDeploymentSpec) -> int:
    return max(spec.replicas.min, min(spec.replicas.max, value))


def desired_active_replicas(spec: InferenceDeploymentSpec, status: InferenceDeploymentStatus) -> int:
    """Return the active pool size for this spec and the current status."""
    mode = str(spec.scaling.mode)
    if mode == ScalingMode.REACTIVE.value:
        return _clamp(spec.replicas.target if spec.replicas.target is not None else spec.replicas.min, spec)
    holding = _clamp(max(status.pools.active.desired, spec.replicas.min), spec)
    if mode == ScalingMode.PREDICTIVE.value:
        recommended = status.forecast.recommended_replicas if status.forecast else None
        return holding if recommended is None else _clamp(recommended, spec)
    return holding  # advisory: never acts on a decision, so it neither grows nor shrinks the pool
