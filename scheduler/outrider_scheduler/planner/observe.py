"""What the planner sees of one InferenceDeployment: its pods, each pod's runtime, the forecast.

These are plain frozen values built by the I/O layer (:mod:`.cluster`, the poller) and consumed
by the pure decision core (:mod:`.core`); a simulator can build them from a trace instead.
:func:`classify` names the one situation a pod is in, from its labels and its runtime's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from outrider_operator.api import labels
from outrider_operator.api.runtime import ModelState
from outrider_operator.api.spec import ForecastSizing, InferenceDeploymentSpec

from .signals import LoadRates

__all__ = ["DeploymentView", "ForecastView", "NodeRoom", "PodKind", "PodView", "classify"]


class PodKind(StrEnum):
    """The situation of one pod, as far as the planner is concerned."""

    SERVING = "serving"
    """Labelled serving and its runtime serves: capacity."""
    LOADING_UP = "loading-up"
    """Asked to serve and on its way (a new pod loading, a cold pod being loaded)."""
    UNLABELLED = "unlabelled"
    """Its runtime serves but the label still says standby: a promotion to finish."""
    MISMATCH = "mismatch"
    """Labelled serving but its runtime was asked for warm or cold (for example a promoted pod whose
    container restarted into its pool's start state)."""
    DRAINING = "draining"
    """Demoted (label standby, ``demoted-at`` set) while its runtime still serves the last requests."""
    WARM = "warm"
    """Standby with the model loaded: promotable in well under a second."""
    COLD = "cold"
    """Standby with nothing loaded: a load away from serving."""
    MOVING = "moving"
    """On its way to warm or cold (a load or unload running)."""
    UNREACHABLE = "unreachable"
    """Its runtime admin API did not answer: skipped."""
    UNPLACED = "unplaced"
    """Pending with no node that fits it (the scheduler said Unschedulable): it takes a replica's
    place but is neither capacity nor on its way, so it holds no scale-down."""
    GONE = "gone"
    """Being deleted."""


@dataclass(frozen=True)
class PodView:
    """One pod of the deployment with its runtime's latest load rates."""

    name: str
    pool: str
    """Pool (Deployment) it belongs to: active, warm or cold."""
    role: str
    """serving or standby (the label the Service selects)."""
    created: float = 0.0
    """Creation time, unix seconds."""
    node: str | None = None
    ready: bool = False
    """The pod's Ready condition (readiness probe: the runtime is in its requested state)."""
    deleting: bool = False
    released: bool = False
    """Marked for removal on a scale-down (negative pod-deletion-cost set by the planner)."""
    demoted_at: float | None = None
    """When it left serving on a scale-down (unix seconds), while it is on its way down."""
    endpoint_ready: bool = False
    """A ready endpoint of the deployment's Service (traffic can reach it)."""
    rates: LoadRates | None = None
    """Latest runtime sample and rates; None when the admin API did not answer."""
    busy: str | None = None
    """An operation the actuator is carrying out on this pod (or finished after the latest sample)."""
    starting: bool = False
    """Not yet reachable because it is still starting (no pod IP yet, or young and not ready)."""
    unplaced: bool = False
    """Not bound to a node, and the scheduler found none with room (PodScheduled False,
    reason Unschedulable)."""

    @property
    def key(self) -> str:
        """The pod's name (pods of one deployment share its namespace)."""
        return self.name


@dataclass(frozen=True)
class ForecastView:
    """The forecast the planner sizes ahead for."""

    peak_rps: float
    """p90 of the peak request rate over the horizon."""
    horizon_seconds: int
    generated_at: float
    """Unix seconds."""
    mean_rps: float | None = None
    """p90 of the mean request rate over the horizon (None when the forecast has none)."""

    def _on_mean(self, sizing: str) -> bool:
        return sizing == ForecastSizing.MEAN.value and self.mean_rps is not None

    def sized_rps(self, sizing: str) -> float:
        """The rate serving pods are sized for under ``scaling.forecastSizing`` (``peak`` or
        ``mean``); the peak where the mean is asked for but unknown."""
        return self.mean_rps if self.mean_rps is not None and self._on_mean(sizing) else self.peak_rps

    def sized_label(self, sizing: str) -> str:
        """What :meth:`sized_rps` returns, in words (for decision reasons)."""
        return "forecast p90 mean" if self._on_mean(sizing) else "forecast p90 peak"


@dataclass(frozen=True)
class NodeRoom:
    """Free GPUs on one node, and whether the deployment's model is cached there."""

    node: str
    free_gpus: int
    cached: bool = False


@dataclass(frozen=True)
class DeploymentView:
    """Everything the decision core needs about one InferenceDeployment at one moment."""

    namespace: str
    name: str
    spec: InferenceDeploymentSpec
    pods: tuple[PodView, ...]
    now: float
    """Unix seconds."""
    forecast: ForecastView | None = None
    recommended_active: int | None = None
    """The planner's last recommendation in status (what the operator applies)."""
    disruptions_allowed: int | None = None
    """The PodDisruptionBudget's status.disruptionsAllowed (None when unknown)."""
    rooms: tuple[NodeRoom, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


_UPWARD = frozenset({"promote", "load", "label-serving"})
"""Operations (``core.OpKind`` values) that bring a pod to serving."""


def classify(pod: PodView) -> PodKind:
    """The situation of ``pod`` from its labels and its runtime's state."""
    if pod.deleting:
        return PodKind.GONE
    if pod.unplaced:
        return PodKind.UNPLACED
    if pod.busy is not None:
        return PodKind.LOADING_UP if pod.busy in _UPWARD else PodKind.MOVING
    if pod.starting:  # an active-pool pod starts serving by itself; standby ones start as standby
        return PodKind.LOADING_UP if pod.role == labels.ROLE_SERVING else PodKind.MOVING
    if pod.rates is None:
        return PodKind.UNREACHABLE
    load = pod.rates.load
    state, asked = load.state, load.requested_state
    if pod.role == labels.ROLE_SERVING:
        if state == ModelState.SERVING and asked == ModelState.SERVING:
            return PodKind.SERVING
        if asked == ModelState.SERVING:
            return PodKind.LOADING_UP
        return PodKind.MISMATCH
    if state == ModelState.SERVING and asked == ModelState.SERVING:
        return PodKind.DRAINING if pod.demoted_at is not None else PodKind.UNLABELLED
    if asked == ModelState.SERVING:
        return PodKind.LOADING_UP
    if load.loading or state != asked:
        return PodKind.MOVING
    return PodKind.WARM if state == ModelState.WARM else PodKind.COLD
