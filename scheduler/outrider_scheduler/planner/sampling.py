"""Sampling one deployment: its pods from the watch cache and their runtimes' answers, as a view.

:class:`Sampling` is the part of :class:`~.service.PlannerService` that polls every reachable
pod's ``/v2/admin/load``, folds the samples into rates and the capacity model, and builds the
:class:`~.observe.DeploymentView` that :func:`~.core.decide` reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from outrider_operator.api import labels
from outrider_operator.api.spec import InferenceDeploymentSpec
from outrider_operator.api.status import ForecastSummary, parse_status

from .actuator import Actuator
from .cluster import PlannerCache
from .errors import PodCallError
from .observe import DeploymentView, ForecastView, NodeRoom, PodView
from .runtime_client import RuntimeClient
from .settings import PlannerSettings
from .state import DeploymentState

__all__ = ["Sampling", "forecast_view", "parse_time"]


def parse_time(value: Any) -> float | None:
    """Unix seconds of a Kubernetes timestamp (None when absent or not one)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _rate(value: str | None) -> float | None:
    """A published rate (a decimal string) as a float; None when absent, not a number or negative."""
    if value is None:
        return None
    try:
        rate = float(value)
    except ValueError:
        return None
    return rate if math.isfinite(rate) and rate >= 0 else None


def forecast_view(fc: ForecastSummary | None) -> ForecastView | None:
    """The forecast the planner sizes for, from ``status.forecast``: None without a usable p90 peak
    or a time; its p90 mean where one is published and usable (``scaling.forecastSizing: mean``
    falls back to the peak otherwise)."""
    if fc is None or fc.generated_at is None:
        return None
    peak = _rate(fc.p90_peak_rps)
    if peak is None:
        return None
    return ForecastView(peak, fc.horizon_seconds or 0, fc.generated_at.timestamp(), _rate(fc.p90_rps))


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _unplaced(pod: dict[str, Any]) -> bool:
    """Not bound to a node, and the scheduler said no node fits (PodScheduled False, Unschedulable)."""
    if (pod.get("spec") or {}).get("nodeName"):
        return False
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in conds
    )


def _negative(value: Any) -> bool:
    try:
        return int(str(value)) < 0
    except (TypeError, ValueError):
        return False


class Sampling:
    """Builds each deployment's view for :class:`~.service.PlannerService` (a part of it)."""

    cache: PlannerCache
    runtime: RuntimeClient
    actuator: Actuator
    settings: PlannerSettings
    wall: Callable[[], float]
    mono: Callable[[], float]

    async def _observe(
        self,
        body: dict[str, Any],
        spec: InferenceDeploymentSpec,
        state: DeploymentState,
        rooms: list[tuple[str, int, frozenset[str]]],
    ) -> tuple[DeploymentView, dict[str, str]]:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        pods = self.cache.pods(ns, name)
        endpoints = self.cache.endpoint_ready(ns, name)
        addresses: dict[str, str] = {}
        for pod in pods:
            address = self._address(pod)
            if address is not None and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                addresses[pod["metadata"]["name"]] = address
        answers = await self.runtime.load_many(addresses)
        sampled = self.mono()
        now = self.wall()
        views = []
        reachable = set()
        for pod in pods:
            pm = pod.get("metadata") or {}
            pname = str(pm.get("name"))
            key = f"{ns}/{pname}"
            answer = answers.get(pname)
            rates = None
            if (
                answer is not None
                and not isinstance(answer, PodCallError)
                and not self.actuator.failed(ns, pname)
            ):
                rates = state.signals.add(key, sampled, answer)
                state.model.observe_batches(key, answer.batch_stats, answer.boot_id)
                reachable.add(key)
            pl = pm.get("labels") or {}
            ann = pm.get("annotations") or {}
            created = parse_time(pm.get("creationTimestamp")) or 0.0
            ready = _ready(pod)
            role = str(pl.get(labels.LABEL_ROLE, labels.ROLE_STANDBY))
            young = now - created < self.settings.startup_grace_s
            cost = ann.get(labels.ANNOTATION_POD_DELETION_COST)
            views.append(
                PodView(
                    name=pname,
                    pool=str(pl.get(labels.LABEL_POOL, "")),
                    role=role,
                    created=created,
                    node=(pod.get("spec") or {}).get("nodeName"),
                    ready=ready,
                    deleting=bool(pm.get("deletionTimestamp")),
                    released=_negative(cost),
                    demoted_at=parse_time(ann.get(labels.ANNOTATION_DEMOTED_AT)),
                    endpoint_ready=pname in endpoints,
                    rates=rates,
                    busy=self.actuator.busy(ns, pname, sampled, role),
                    starting=rates is None and young and not ready,
                    unplaced=_unplaced(pod),
                )
            )
        state.signals.retain(reachable)
        state.model.retain(reachable)
        served = [v.rates for v in views if v.rates is not None and v.rates.rows_per_request is not None]
        rows = sum(r.rows_per_request or 0 for r in served) / len(served) if served else None
        workers = max((v.rates.load.workers for v in views if v.rates), default=state.model.workers)
        state.model.observe_workers(workers, rows)
        status = parse_status(body.get("status"))
        fc = status.forecast
        forecast = forecast_view(fc)
        model_name = spec.model.name
        view = DeploymentView(
            namespace=ns,
            name=name,
            spec=spec,
            pods=tuple(views),
            now=now,
            forecast=forecast,
            recommended_active=fc.recommended_replicas if fc is not None else None,
            disruptions_allowed=self.cache.disruptions_allowed(ns, name),
            rooms=tuple(NodeRoom(n, free, model_name in cached) for n, free, cached in rooms),
        )
        return view, addresses

    def _address(self, pod: dict[str, Any]) -> str | None:
        return self.settings.pod_address(pod)
