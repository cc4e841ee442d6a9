"""Publish forecasts into InferenceDeployment status: ``status.forecast`` and the ``Forecasting`` condition.

The forecaster is the one writer of the forecast numbers and of that condition. It writes them by
server-side apply to the status subresource under its own field manager, so the operator (which
applies Ready, Progressing, Degraded and the pool counts under ``outrider-operator``), the planner
(``status.forecast.recommendedReplicas``, ``status.plan``, under ``outrider-planner``) and the
forecaster never overwrite each other's fields. Both ends use the typed status models.

A forecast is published only once one was really made; when metrics are missing, the condition
says ``Forecasting=False`` with the reason and the last published numbers stay (a vanished
forecast must not look like zero load).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from outrider_operator.api import labels
from outrider_operator.api.resource import parse_spec
from outrider_operator.api.status import ConditionType, ForecastSummary, parse_status
from outrider_operator.errors import KubeApiError
from outrider_operator.kube.rest import KubeRest
from outrider_operator.reconcile.semantics import problems_from_validation_error
from outrider_operator.reconcile.status import set_condition
from outrider_scheduler.forecast.errors import ForecastError
from outrider_scheduler.forecast.service import ForecasterService, ForecastResult

__all__ = ["FIELD_MANAGER", "ForecastPublisher", "PublishReport", "run_forever"]

log = logging.getLogger(__name__)

FIELD_MANAGER = "outrider-forecaster"
"""Field manager that owns status.forecast and the Forecasting condition."""
_API_VERSION = f"{labels.API_GROUP}/{labels.API_VERSION}"
_LIST_ALL = f"/apis/{labels.API_GROUP}/{labels.API_VERSION}/{labels.PLURAL}"


def _decimal(value: float) -> str:
    return f"{value:.3f}"


@dataclass
class PublishReport:
    """What one publishing cycle did."""

    deployments: int = 0
    published: int = 0
    failures: list[str] = field(default_factory=list)


class ForecastPublisher:
    """Keeps one forecaster per InferenceDeployment and publishes each cycle's results."""

    def __init__(
        self,
        rest: KubeRest,
        service: ForecasterService,
        clock: Callable[[], float] | None = None,
        namespaces: tuple[str, ...] = (),
    ) -> None:
        self.rest = rest
        self.service = service
        self.clock = clock
        self.namespaces = namespaces
        """Namespaces to forecast (the operator's watchNamespaces); empty: every namespace."""

    def _list(self) -> list[dict[str, Any]]:
        if not self.namespaces:
            return self.rest.list(_LIST_ALL)
        items: list[dict[str, Any]] = []
        for ns in self.namespaces:
            items += self.rest.list(
                f"/apis/{labels.API_GROUP}/{labels.API_VERSION}/namespaces/{ns}/{labels.PLURAL}"
            )
        return items

    def cycle(self) -> PublishReport:
        """List InferenceDeployments, forecast each, apply the results; raises only if listing fails."""
        items = self._list()
        report = PublishReport(deployments=len(items))
        current: dict[str, dict[str, Any]] = {}
        for item in items:
            meta = item.get("metadata") or {}
            ns, name = str(meta.get("namespace")), str(meta.get("name"))
            try:
                spec = parse_spec(item.get("spec") or {})
                self.service.add(ns, name, spec.scaling.forecast_horizon_seconds)
            except ValidationError as exc:  # one deployment must not stop the others
                why = "; ".join(str(p) for p in problems_from_validation_error(exc))
                report.failures.append(f"{ns}/{name}: {why}")
                log.warning("cannot forecast %s/%s: %s", ns, name, why)
                continue
            except ForecastError as exc:
                report.failures.append(f"{ns}/{name}: {exc}")
                log.warning("cannot forecast %s/%s: %s", ns, name, exc)
                continue
            current[f"{ns}/{name}"] = item
        for ns, name in [k for k in self.service.forecasters if f"{k[0]}/{k[1]}" not in current]:
            self.service.remove(ns, name)
        now = self.clock() if self.clock else None
        for key, result in self.service.cycle(now).items():
            target = current.get(key)
            if target is None:
                continue
            try:
                self._publish(target, result)
                report.published += 1
            except KubeApiError as exc:
                report.failures.append(f"{key}: {exc}")
                log.warning("could not publish the forecast of %s: %s", key, exc)
        return report

    def _publish(self, item: dict[str, Any], result: ForecastResult) -> None:
        meta = item["metadata"]
        previous = parse_status(item.get("status"))
        now = datetime.fromtimestamp(int(result.generated_at), UTC)
        conditions = set_condition(
            previous.conditions,
            ConditionType.FORECASTING,
            result.forecasting,
            result.reason,
            result.message[:1024],
            int(meta.get("generation", 0)),
            now,
        )
        doc_status: dict[str, Any] = {
            "conditions": [c.to_wire() for c in conditions if c.type == ConditionType.FORECASTING.value]
        }
        forecast = self._summary(result, now)
        if forecast is None and previous.forecast is not None and previous.forecast.generated_at is not None:
            # Only this writer sets the forecast numbers: re-applying the stored ones keeps them (and
            # our ownership) across metric outages and restarts; leaving them out would delete them.
            forecast = previous.forecast.model_copy(update={"recommended_replicas": None})
        if forecast is not None:
            # recommendedReplicas belongs to the planner (its own field manager): never sent from here
            doc_status["forecast"] = forecast.model_copy(update={"recommended_replicas": None}).to_wire()
        doc = {
            "apiVersion": _API_VERSION,
            "kind": labels.KIND,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": doc_status,
        }
        self.rest.apply(doc, subresource="status", field_manager=FIELD_MANAGER)

    @staticmethod
    def _summary(result: ForecastResult, now: datetime) -> ForecastSummary | None:
        """The typed summary of a real forecast (None when none was made or a number is not finite)."""
        values = (result.p50_rps, result.p90_rps, result.peak_p90_rps)
        if not result.forecasting or not all(math.isfinite(v) for v in values):
            return None
        return ForecastSummary(
            horizon_seconds=result.horizon_seconds,
            p50_rps=_decimal(result.p50_rps),
            p90_rps=_decimal(result.p90_rps),
            p90_peak_rps=_decimal(result.peak_p90_rps),
            generated_at=now,
        )


def run_forever(publisher: ForecastPublisher, interval_seconds: float, stop: threading.Event) -> None:
    """Run cycles every ``interval_seconds`` until ``stop`` is set; a failed cycle is logged, never fatal."""
    while not stop.is_set():
        try:
            report = publisher.cycle()
            log.info(
                "forecast cycle: %d deployments, %d published, %d failures",
                report.deployments,
                report.published,
                len(report.failures),
            )
        except Exception:  # listing failed or a bug: keep the process alive and say so
            log.exception("forecast cycle failed; next try in %.0fs", interval_seconds)
        stop.wait(interval_seconds)
