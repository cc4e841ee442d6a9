"""What the planner reads of ``status.forecast``."""

from __future__ import annotations

from datetime import UTC, datetime

from outrider_operator.api.status import ForecastSummary
from outrider_scheduler.planner.sampling import forecast_view

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_the_forecast_view_carries_the_peak_and_the_mean() -> None:
    fc = ForecastSummary(horizon_seconds=300, p90_rps="120.5", p90_peak_rps="180.000", generated_at=AT)
    view = forecast_view(fc)
    assert view is not None
    assert (view.peak_rps, view.mean_rps, view.horizon_seconds) == (180.0, 120.5, 300)
    assert view.generated_at == AT.timestamp()
    assert view.sized_rps("mean") == 120.5 and view.sized_rps("peak") == 180.0


def test_an_unusable_mean_leaves_the_peak_to_size_on() -> None:
    for mean in (None, "lots", "-3", "nan", "inf"):
        fc = ForecastSummary(horizon_seconds=300, p90_rps=mean, p90_peak_rps="180", generated_at=AT)
        view = forecast_view(fc)
        assert view is not None and view.mean_rps is None, mean
        assert view.sized_rps("mean") == 180.0 and view.sized_label("mean") == "forecast p90 peak"


def test_no_forecast_without_a_usable_peak_or_a_time() -> None:
    assert forecast_view(None) is None
    assert forecast_view(ForecastSummary(p90_peak_rps="180")) is None  # no generatedAt
    for peak in (None, "x", "-1", "nan"):
        assert forecast_view(ForecastSummary(p90_rps="100", p90_peak_rps=peak, generated_at=AT)) is None, peak
