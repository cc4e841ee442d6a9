from typing import Any

import numpy as np

from outrider_scheduler.forecast.errors import ForecastError
from outrider_scheduler.forecast.prometheus import PrometheusSource
from outrider_scheduler.forecast.publisher import FIELD_MANAGER, ForecastPublisher
from outrider_scheduler.forecast.series import StepSeries
from outrider_scheduler.forecast.service import ForecasterService, ForecastResult


class FakeRest:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.applied: list[tuple[dict[str, Any], str | None, str]] = []
        self.listed: list[str] = []

    def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        self.listed.append(path)
        if "/namespaces/" in path:
            ns = path.split("/namespaces/")[1].split("/")[0]
            return [i for i in self.items if i["metadata"]["namespace"] == ns]
        return self.items

    def apply(self, obj: dict[str, Any], *, subresource: str | None = None, field_manager: str = "") -> Any:
        self.applied.append((obj, subresource, field_manager))
        return obj


class ScriptedService(ForecasterService):
    def __init__(self) -> None:
        super().__init__(PrometheusSource("http://127.0.0.1:1"))
        self.next: list[ForecastResult] = []

    def cycle(self, now: float | None = None) -> dict[str, ForecastResult]:
        return {r.deployment: r for r in self.next}


def idf(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "m", "namespace": "ml", "generation": 3},
        "spec": {
            "model": {"name": "m", "uri": "builtin:all-minilm-l6-v2"},
            "scaling": {"forecastHorizonSeconds": 600},
        },
        "status": status or {},
    }


def result(ok: bool, p50: float = 12.5) -> ForecastResult:
    reason = "ColdStart" if ok else "MetricsUnavailable"
    return ForecastResult("ml/m", 600, p50, 15.0, 20.0, 1_800_000_000.0, ok, reason, "msg")


def test_publishes_forecast_and_condition_under_its_own_manager() -> None:
    rest, service = FakeRest([idf()]), ScriptedService()
    service.next = [result(True)]
    report = ForecastPublisher(rest, service).cycle()  # type: ignore[arg-type]
    assert report.published == 1 and service.forecasters[("ml", "m")].settings.horizon_seconds == 600
    doc, sub, manager = rest.applied[0]
    assert (sub, manager) == ("status", FIELD_MANAGER)
    assert doc["status"]["forecast"] == {
        "horizonSeconds": 600,
        "p50Rps": "12.500",
        "p90Rps": "15.000",
        "p90PeakRps": "20.000",
        "generatedAt": "2027-01-15T08:00:00Z",
    }
    cond = doc["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"], cond["observedGeneration"]) == (
        "Forecasting",
        "True",
        "ColdStart",
        3,
    )


def test_metrics_loss_keeps_last_numbers_and_never_invents_zero() -> None:
    service = ScriptedService()
    # never forecast before: no numbers at all
    rest = FakeRest([idf()])
    service.next = [result(False, p50=0.0)]
    pub = ForecastPublisher(rest, service)  # type: ignore[arg-type]
    pub.cycle()
    assert "forecast" not in rest.applied[-1][0]["status"]
    # forecast once, then lose metrics: the stored numbers are re-applied, condition goes False
    service.next = [result(True)]
    pub.cycle()
    stored = rest.applied[-1][0]["status"]
    rest.items = [idf(stored)]
    service.next = [result(False, p50=0.0)]
    pub.cycle()
    last = rest.applied[-1][0]["status"]
    assert last["forecast"] == stored["forecast"]
    assert last["conditions"][0]["status"] == "False"
    assert last["conditions"][0]["lastTransitionTime"] == "2027-01-15T08:00:00Z"


def test_deleted_deployments_are_forgotten() -> None:
    rest, service = FakeRest([idf()]), ScriptedService()
    pub = ForecastPublisher(rest, service)  # type: ignore[arg-type]
    pub.cycle()
    assert ("ml", "m") in service.forecasters
    rest.items = []
    pub.cycle()
    assert service.forecasters == {}


def test_a_restarted_forecaster_keeps_the_stored_forecast_while_metrics_are_down() -> None:
    stored = {
        "horizonSeconds": 600,
        "p50Rps": "9.000",
        "p90Rps": "11.000",
        "p90PeakRps": "14.000",
        "generatedAt": "2027-01-15T07:00:00Z",
    }
    rest, service = FakeRest([idf({"forecast": stored})]), ScriptedService()
    service.next = [result(False, p50=0.0)]
    ForecastPublisher(rest, service).cycle()  # type: ignore[arg-type]
    assert rest.applied[-1][0]["status"]["forecast"] == stored  # omitting it would delete it (SSA)


def test_an_edited_horizon_takes_effect_and_keeps_the_history() -> None:
    rest, service = FakeRest([idf()]), ScriptedService()
    pub = ForecastPublisher(rest, service)  # type: ignore[arg-type]
    pub.cycle()
    old = service.forecasters[("ml", "m")]
    old.observe(StepSeries(t0=0.0, step_seconds=10, y=np.ones(100)))
    rest.items[0]["spec"]["scaling"]["forecastHorizonSeconds"] = 120
    pub.cycle()
    new = service.forecasters[("ml", "m")]
    assert new.settings.horizon_seconds == 120
    assert new.series is not None and len(new.series.y) == 100


def test_a_horizon_off_the_step_grid_is_rounded_and_never_stops_the_others() -> None:
    other = idf()
    other["metadata"] = {"name": "n", "namespace": "ml", "generation": 1}
    odd = idf()
    odd["spec"]["scaling"]["forecastHorizonSeconds"] = 45  # the CRD allows 30..3600; the step is 10 s
    rest, service = FakeRest([odd, other]), ScriptedService()
    pub = ForecastPublisher(rest, service)  # type: ignore[arg-type]
    report = pub.cycle()
    assert report.failures == []
    assert service.forecasters[("ml", "m")].settings.horizon_seconds == 40
    assert service.forecasters[("ml", "n")].settings.horizon_seconds == 600


def test_a_forecaster_that_cannot_start_is_reported_and_the_rest_go_on() -> None:
    class Refusing(ScriptedService):
        def add(self, namespace: str, name: str, horizon_seconds: int | None = None) -> Any:
            if name == "m":
                raise ForecastError("cannot forecast this one")
            return super().add(namespace, name, horizon_seconds)

    other = idf()
    other["metadata"] = {"name": "n", "namespace": "ml", "generation": 1}
    rest, service = FakeRest([idf(), other]), Refusing()
    service.next = [ForecastResult("ml/n", 600, 1.0, 2.0, 3.0, 1_800_000_000.0, True, "ColdStart", "msg")]
    report = ForecastPublisher(rest, service).cycle()  # type: ignore[arg-type]
    assert report.failures == ["ml/m: cannot forecast this one"]
    assert report.published == 1 and rest.applied[0][0]["metadata"]["name"] == "n"


def test_a_spec_that_does_not_validate_is_reported_and_the_rest_go_on() -> None:
    """The spec is read through the API's typed model, not picked out of a dict."""
    bad = idf()
    bad["metadata"] = {"name": "bad", "namespace": "ml", "generation": 1}
    bad["spec"]["scaling"]["forecastHorizonSeconds"] = "soon"
    rest, service = FakeRest([bad, idf()]), ScriptedService()
    report = ForecastPublisher(rest, service).cycle()  # type: ignore[arg-type]
    assert len(report.failures) == 1 and report.failures[0].startswith("ml/bad: ")
    assert "scaling.forecastHorizonSeconds" in report.failures[0]
    assert list(service.forecasters) == [("ml", "m")]


def test_only_the_watched_namespaces_are_forecast() -> None:
    other = idf()
    other["metadata"] = {**other["metadata"], "namespace": "elsewhere"}
    rest, service = FakeRest([idf(), other]), ScriptedService()
    report = ForecastPublisher(rest, service, namespaces=("ml",)).cycle()  # type: ignore[arg-type]
    assert report.deployments == 1 and list(service.forecasters) == [("ml", "m")]
    assert rest.listed == ["/apis/outrider.dev/v1alpha1/namespaces/ml/inferencedeployments"]
    everywhere = FakeRest([idf(), other])
    assert ForecastPublisher(everywhere, ScriptedService()).cycle().deployments == 2  # type: ignore[arg-type]
