"""Builders for planner tests: runtime samples, pods and deployment views."""

from __future__ import annotations

from typing import Any

import pytest

from outrider_operator.api import labels
from outrider_operator.api.resource import parse_spec
from outrider_operator.api.runtime import BatchingSettings, LatencyWindow, ModelState, RuntimeLoad
from outrider_operator.api.spec import InferenceDeploymentSpec
from outrider_scheduler.planner.capacity import CapacityModel
from outrider_scheduler.planner.observe import DeploymentView, PodView
from outrider_scheduler.planner.profile import CapacityProfile, ProfilePoint
from outrider_scheduler.planner.signals import LoadRates


def load(
    state: str = "serving",
    requested: str | None = None,
    *,
    batch: int = 16,
    p99: float | None = None,
    count: int = 0,
    queue: int = 0,
    inflight: int = 0,
    loading: bool = False,
    received: int = 0,
    boot: str = "b1",
) -> RuntimeLoad:
    return RuntimeLoad(
        model="minilm",
        state=ModelState(state),
        requested_state=ModelState(requested or state),
        loading=loading,
        boot_id=boot,
        uptime_seconds=100.0,
        received=received,
        completed=received,
        failed=0,
        rejected=0,
        rows_completed=received,
        inflight=inflight,
        queue_depth=queue,
        queue_limit=1024,
        workers=1,
        latency=LatencyWindow(window_seconds=2.0, count=count, p99_ms=p99, p50_ms=p99),
        batching=BatchingSettings(
            model="minilm", max_batch_size=batch, min_batch_delay_ms=10, lookahead_window=3, dynamic="Enabled"
        ),
    )


def pod(
    name: str,
    pool: str = labels.POOL_ACTIVE,
    role: str | None = None,
    state: str | None = None,
    *,
    rps: float = 0.0,
    idle: float = 0.0,
    demoted_at: float | None = None,
    created: float = 0.0,
    unreachable: bool = False,
    ready: bool = True,
    **kw: Any,
) -> PodView:
    if role is None:
        role = labels.ROLE_SERVING if pool == labels.POOL_ACTIVE else labels.ROLE_STANDBY
    if state is None:
        state = {labels.POOL_ACTIVE: "serving", labels.POOL_WARM: "warm", labels.POOL_COLD: "cold"}[pool]
    rates = None
    if not unreachable:
        sample = load(state, **kw)
        rates = LoadRates(sample, rps, rps, 0.0, 1.0, idle, 1.0)
    return PodView(
        name=name,
        pool=pool,
        role=role,
        created=created,
        ready=ready,
        demoted_at=demoted_at,
        endpoint_ready=role == labels.ROLE_SERVING,
        rates=rates,
    )


def spec(**over: Any) -> InferenceDeploymentSpec:
    raw: dict[str, Any] = {
        "model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
        "replicas": {"min": 1, "max": 8},
        "standby": {"warm": 2, "cold": 1},
        "batching": {"maxBatchSize": 8, "minBatchDelayMs": 10},
        "scaling": {"targetLatencyP99Ms": 200, "scaleDownStabilizationSeconds": 60},
    }
    for key, value in over.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_spec(raw)


def view(pods: list[PodView], now: float = 1000.0, **kw: Any) -> DeploymentView:
    s = kw.pop("spec", None) or spec()
    return DeploymentView(namespace="ml", name="m", spec=s, pods=tuple(pods), now=now, **kw)


def profile(per_row_ms: float = 5.0, fixed_ms: float = 5.0) -> CapacityProfile:
    """Service time fixed + per_row * b: batch 1 = 10 ms (100 req/s), batch 8 = 45 ms (178 req/s)."""
    return CapacityProfile(
        model="minilm",
        points=[
            ProfilePoint(batch_size=b, seconds=(fixed_ms + per_row_ms * b) / 1000)
            for b in (1, 2, 4, 8, 16, 32)
        ],
    )


class Builders:
    """The builders above, handed to tests as the ``mk`` fixture (conftest is not importable)."""

    load = staticmethod(load)
    pod = staticmethod(pod)
    spec = staticmethod(spec)
    view = staticmethod(view)
    profile = staticmethod(profile)


@pytest.fixture
def mk() -> type[Builders]:
    return Builders


@pytest.fixture
def model() -> CapacityModel:
    return CapacityModel.from_profile(profile())
