"""How many pods the operator asks for in each pool, by scaling mode.

Active pool:

- reactive: ``spec.replicas.target`` (written through /scale) clamped to [min, max]; min if unset.
- predictive: the planner's recommendation in ``status.forecast.recommendedReplicas`` clamped to
  [min, max]; min until there is one. Never below the current count while the planner is silent
  (a forecast that disappears must not drop capacity).
- advisory: decisions are published, never acted on: the pool holds its current size (clamped to
  [min, max]; min for a new object), like predictive mode while the planner is silent.

Standby pools (warm, cold): ``spec.standby`` sizes, except in predictive mode, where the planner
may ask for more in ``status.plan.warmReplicas`` / ``coldReplicas`` to refill a pool whose pods it
promoted to serving. Those are honoured between the spec size and the spec size plus
``replicas.max`` (a promoted pod stays in its pool's Deployment, so a refill never exceeds the
number of pods that can serve at once). A planner that stops writing leaves the last sizes in
place: the operator holds them.
"""

from __future__ import annotations

from outrider_operator.api import labels
from outrider_operator.api.spec import InferenceDeploymentSpec, ScalingMode
from outrider_operator.api.status import InferenceDeploymentStatus

__all__ = ["desired_active_replicas", "desired_pool_sizes", "desired_standby_replicas"]


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


def desired_standby_replicas(
    spec: InferenceDeploymentSpec, status: InferenceDeploymentStatus
) -> dict[str, int]:
    """Return the warm and cold pools' sizes: the spec's, or the planner's refills in predictive mode."""
    sizes = {labels.POOL_WARM: spec.standby.warm, labels.POOL_COLD: spec.standby.cold}
    if str(spec.scaling.mode) != ScalingMode.PREDICTIVE.value or status.plan is None:
        return sizes
    asked = {labels.POOL_WARM: status.plan.warm_replicas, labels.POOL_COLD: status.plan.cold_replicas}
    for pool, base in list(sizes.items()):
        wanted = asked[pool]
        if wanted is not None:
            sizes[pool] = max(base, min(base + spec.replicas.max, wanted))
    return sizes


def desired_pool_sizes(spec: InferenceDeploymentSpec, status: InferenceDeploymentStatus) -> dict[str, int]:
    """Return the size of every pool's Deployment (active, warm, cold)."""
    return {
        labels.POOL_ACTIVE: desired_active_replicas(spec, status),
        **desired_standby_replicas(spec, status),
    }
