"""The published-forecast buffer: it keeps the newest forecasts in order and scores them exactly."""

from __future__ import annotations

import numpy as np

from outrider_scheduler.forecast.ensemble import COVER_TOLERANCE_REQUESTS
from outrider_scheduler.forecast.published import PublishedForecasts
from outrider_scheduler.forecast.series import StepSeries


def test_the_buffer_keeps_the_newest_forecasts_oldest_first() -> None:
    pub = PublishedForecasts(4)
    assert len(pub) == 0 and pub.rows().shape == (0, 4)
    for t in range(7):
        pub.append(float(t), t + 0.5, t + 0.9, t + 1.0)
    assert len(pub) == 4
    np.testing.assert_array_equal(pub.rows()[:, 0], [3, 4, 5, 6])
    np.testing.assert_array_equal(pub.rows()[:, 3], [4, 5, 6, 7])


def test_accuracy_scores_only_windows_that_are_over() -> None:
    rng = np.random.default_rng(3)
    step, k = 10, 3
    y = rng.poisson(40, size=60).astype(float)
    series = StepSeries(100.0, step, y)
    pub = PublishedForecasts(50)
    forecasts = []
    for i in range(30, 62):  # the last ones' windows reach past the history: not scored yet
        p50, p90 = rng.uniform(3.0, 5.0), rng.uniform(4.0, 6.0)
        peak = p90 + rng.uniform(0.0, 2.0)
        pub.append(100.0 + i * step, p50, p90, peak)
        forecasts.append((i, p50, p90, peak))
    acc = pub.accuracy(series, k, window=20, eps=0.01)
    scored = [f for f in forecasts if f[0] + k <= 60][-20:]
    assert acc["windows"] == 20 and scored[-1][0] == 57
    mean = np.array([y[i : i + k].mean() / step for i, *_ in scored])
    peak = np.array([y[i : i + k].max() / step for i, *_ in scored])
    p50 = np.array([f[1] for f in scored])
    p90 = np.array([f[2] for f in scored])
    top = np.array([f[3] for f in scored])
    tolerance = COVER_TOLERANCE_REQUESTS / step
    assert acc["coverage_p90"] == np.mean(mean <= p90 + tolerance)
    assert acc["peak_under_rate"] == np.mean(peak <= top + tolerance)
    loss90 = np.maximum(0.9 * (mean - p90), -0.1 * (mean - p90)).mean() / mean.mean()
    loss50 = (0.5 * np.abs(mean - p50)).mean() / mean.mean()
    assert np.isclose(acc["pinball_p90"], loss90) and np.isclose(acc["pinball_p50"], loss50)
    assert PublishedForecasts(5).accuracy(series, k, 20, 0.01) == {}
