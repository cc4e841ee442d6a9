"""A learned model's record of forecasts: live forecasts replace, refits only fill gaps, the
newest are kept, and lookups find exactly the recorded times."""

from __future__ import annotations

import numpy as np

from outrider_scheduler.forecast.records import FOLD_EVERY, ForecastRecord


def _raw(values: list[float]) -> dict[str, np.ndarray]:
    v = np.array(values, dtype=np.float64)
    return {"mean_p50": v, "mean_p90": v + 1.0, "peak_p90": v + 2.0}


def test_live_forecasts_replace_and_the_newest_are_kept() -> None:
    rec = ForecastRecord()
    for t in range(FOLD_EVERY + 10):  # some folded, some still held back
        rec.put(float(t), t, t + 1.0, t + 2.0, limit=50)
    rec.put(70.0, -1.0, -1.0, -1.0, limit=50)  # a second live forecast at 70 s replaces the first
    assert len(rec) == 50 and 23.0 not in rec and 24.0 in rec and 73.0 in rec
    found, values = rec.lookup(np.array([24.0, 70.0, 73.0, 100.0, 0.5]))
    np.testing.assert_array_equal(found, [True, True, True, False, False])
    np.testing.assert_array_equal(values[:3], [[24, 25, 26], [-1, -1, -1], [73, 74, 75]])


def test_a_refit_fills_only_the_gaps_and_pruning_drops_the_oldest() -> None:
    rec = ForecastRecord()
    for t in (10.0, 30.0):
        rec.put(t, 5.0, 6.0, 7.0, limit=100)
    times = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    rec.keep_unrecorded(times, _raw([1.0, 2.0, np.nan, 4.0, 9.0]))  # no forecast at 20 s
    found, values = rec.lookup(times)
    np.testing.assert_array_equal(found, [True, True, False, True, True])
    np.testing.assert_array_equal(values[found][:, 0], [1.0, 5.0, 5.0, 9.0])  # 10 s and 30 s kept theirs
    rec.prune_before(10.0)
    assert len(rec) == 3 and 0.0 not in rec and 40.0 in rec
    empty = ForecastRecord()
    assert len(empty) == 0 and not empty.lookup(times)[0].any() and "x" not in empty
