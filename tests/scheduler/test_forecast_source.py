import pytest

from outrider_scheduler.forecast.errors import MetricsUnavailableError
from outrider_scheduler.forecast.prometheus import PrometheusSource


class Recorded(PrometheusSource):
    """query_range answered from a fixed list of (timestamp, counter value) samples."""

    samples: list[tuple[float, float]] = []

    def query_range(self, query: str, start: float, end: float, step: int) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.samples if start <= t <= end]


def test_history_starts_at_the_first_sample_not_at_the_window_start() -> None:
    src = Recorded("http://unused")
    # a counter that appeared at t=1000 and grows by 50 per 10 s
    src.samples = [(1000.0 + 10 * i, 50.0 * i) for i in range(7)]
    series = src.fetch("ns", "d", start=0.0, end=1060.0, step=10)
    assert series.t0 == 1000.0
    assert list(series.y) == [50.0] * 6  # no leading zeros for the 100 bins before the counter existed


def test_no_samples_is_metrics_unavailable() -> None:
    src = Recorded("http://unused")
    src.samples = []
    with pytest.raises(MetricsUnavailableError, match="no samples"):
        src.fetch("ns", "d", start=0.0, end=100.0, step=10)
