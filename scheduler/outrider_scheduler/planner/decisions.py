"""The decision core's data types: its settings and memory in, the :class:`Plan` it returns out.

:func:`~.core.decide` reads a :class:`~.observe.DeploymentView` with the :class:`CoreSettings`
and the deployment's :class:`Memory` of earlier cycles, and returns a :class:`Plan`: the
:class:`PodOp` operations the actuator executes, the pool targets, the :class:`Action` decisions
to report and the :class:`Numbers` they were based on.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from outrider_operator.api.status import ActionKind, ActionTrigger

__all__ = [
    "Action",
    "CoreSettings",
    "Memory",
    "Numbers",
    "OpKind",
    "Plan",
    "PodOp",
]


class OpKind(StrEnum):
    """One operation on one pod (what the actuator executes)."""

    PROMOTE = "promote"
    """Runtime to serving, then label serving (the model is loaded: instant)."""
    LOAD = "load"
    """Runtime to serving from cold (a load); the label follows once it serves."""
    LABEL_SERVING = "label-serving"
    """Finish a promotion: the runtime serves, the label follows."""
    DEMOTE = "demote"
    """Label standby and note ``demoted-at`` (traffic stops; the runtime drains)."""
    SETTLE_WARM = "settle-warm"
    """Runtime to warm (after draining, or a restarted pod back to its place)."""
    UNLOAD = "unload"
    """Runtime to cold (the next step down), ``demoted-at`` renewed."""
    RELEASE = "release"
    """Negative pod-deletion-cost: the ReplicaSet deletes this pod first when its pool shrinks."""
    RESIZE = "resize"
    """Set the runtime's max batch size."""


@dataclass(frozen=True)
class PodOp:
    """One operation for the actuator."""

    kind: OpKind
    pod: str
    batch_size: int | None = None


@dataclass(frozen=True)
class Action:
    """A reported decision: one Event, one lastScalingAction, one metric increment."""

    kind: ActionKind
    trigger: ActionTrigger
    pods: tuple[str, ...]
    from_serving: int
    to_serving: int
    message: str
    adds_capacity: bool = False
    """Whether readiness of the new capacity is measured (promote, load, add replicas)."""
    count: int = 0
    """How many pods (or replicas) the action concerns."""


@dataclass(frozen=True)
class Numbers:
    """What the decision was based on (published in status.plan and metrics)."""

    demand_rps: float = 0.0
    capacity_rps: float = math.nan
    """One replica's capacity at the chosen batch size (nan when unknown)."""
    p99_ms: float | None = None
    queue_depth: int = 0
    serving: int = 0
    incoming: int = 0
    warm: int = 0
    cold: int = 0
    promoted: int = 0
    unreachable: int = 0
    unplaced: int = 0
    """Pods that wait for a node with room (the scheduler found none)."""
    desired: int = 0
    batch_size: int = 1
    forecast_needed: int = 0
    surge_batch: int = 1
    """The batch size a surge would raise serving pods to (the largest within the p99 target)."""


@dataclass(frozen=True)
class Plan:
    """The outcome of one decision."""

    ops: tuple[PodOp, ...]
    actions: tuple[Action, ...]
    active_target: int
    warm_target: int
    cold_target: int
    numbers: Numbers
    trigger_time: float | None = None
    """When the overload behind these actions was first seen (unix seconds)."""
    expected_extra: int = 0
    reservations: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()
    """Things the user should know (unreachable pods, PDB holding a scale-down, ...)."""


@dataclass(frozen=True)
class CoreSettings:
    """Knobs of the decision rules."""

    confirm_samples: int = 2
    """Consecutive overloaded cycles before the surge path acts."""
    batch_growth: int = 4
    """The batch size may grow to this multiple of the spec's maxBatchSize (at most 4096)."""
    batch_step: float = 1.25
    """Once raised, a batch size is raised again only to at least this multiple (no 14 -> 15 churn)."""
    lower_batch_below: float = 0.6
    """Back to the spec's batch size when demand is below this share of capacity at that size."""
    calm_seconds: float = 10.0
    """How long load must stay low before the batch size goes back down."""
    drain_idle_seconds: float = 1.0
    """A demoted pod is switched to warm once no request arrived for this long."""
    drain_timeout_seconds: float = 30.0
    """... or at the latest after this long."""
    forecast_max_age_seconds: float = 120.0
    """An older forecast is not acted on."""
    min_latency_samples: int = 10
    """Requests in a pod's latency window before its p99 counts."""
    miss_window_seconds: float = 3600.0
    """The cold pool absorbs the largest load the forecast missed over this window."""
    forecast_hold_seconds: float = 60.0
    """What the forecast wanted (only that: observed load has the stabilisation window) is held this
    long on the way down. The forecast already looks a horizon ahead, so it is not held for the
    whole stabilisation window; but the capacity it is divided by moves from sample to sample (a
    pod's batch times, the latency correction), and a forecast near a multiple of it would
    otherwise promote and demote a pod every few seconds."""


@dataclass
class Memory:
    """What the planner remembers about one deployment between cycles (rebuilt after a restart)."""

    desired_history: deque[tuple[float, int]] = field(default_factory=deque)
    """(time, serving pods the observed load wanted), decreasing: its first entry is the largest of
    the window."""
    overloaded_cycles: int = 0
    overload_since: float | None = None
    calm_since: float | None = None
    batch_target: int | None = None
    absorb: int = 0
    """Cold pods added to absorb forecast misses (reported when it grows)."""
    forecast_history: deque[tuple[float, int]] = field(default_factory=deque)
    """(time, serving pods the forecast wanted) over ``forecast_hold_seconds``, decreasing."""
    misses: deque[tuple[float, float]] = field(default_factory=deque)
    """(time, requests/s above the forecast's p90 peak) over ``miss_window_seconds``, decreasing: its
    first entry is the largest miss of the window."""
    started: float | None = None
    """First cycle: the history is seeded with the pods serving then, so a restart never scales down
    before a full stabilisation window has passed."""
