"""The learned model: the numpy tree walk matches scikit-learn exactly; too few rows is cold start."""

from __future__ import annotations

import numpy as np
import pytest

from outrider_scheduler.forecast.features import FEW_WINDOWS, FeatureSet, WindowSums
from outrider_scheduler.forecast.model import LearnedModel, ModelSettings


@pytest.mark.parametrize(
    "settings",
    [
        ModelSettings(max_iter=40),
        # the level model's trees: 31 leaves, paths of very different depths
        ModelSettings(max_iter=40, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=20),
    ],
)
def test_fast_path_matches_scikit_learn_including_missing_values(settings: ModelSettings) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    z = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 3]) + rng.normal(size=2000) * 0.1
    m = LearnedModel([f"f{i}" for i in range(6)], settings)
    assert m.fit(x, z, z + 0.5, span_seconds=3600.0)
    rows = rng.normal(size=(16, 6))
    rows[rng.random(rows.shape) < 0.3] = np.nan
    fast = m.predict(rows)
    for name, model in m.models.items():
        ref = model.predict(rows[:, m.columns])
        if name == "mean_p50":
            np.testing.assert_allclose(fast[name], ref, rtol=0, atol=1e-12)
        else:  # quantiles are made monotone after prediction
            assert np.all(fast[name] >= ref - 1e-12)


def test_refuses_to_fit_on_too_few_rows() -> None:
    m = LearnedModel(["a"], ModelSettings(min_rows=60))
    x = np.arange(30, dtype=float)[:, None]
    assert not m.fit(x, x[:, 0], x[:, 0], 3600.0)
    assert not m.fitted


@pytest.mark.parametrize(
    "names",
    [
        ["level", "tod_sin", "tod_cos", "dow"],
        ["level_lag_1", "level_hour_of_day", "level_day_of_week", "dow"],
    ],
)
def test_calendar_features_need_two_days(names: list[str]) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4))
    m = LearnedModel(names, ModelSettings(max_iter=5))
    m.fit(x, x[:, 0], x[:, 0], span_seconds=86_400.0)
    assert m.columns == [0]
    m.fit(x, x[:, 0], x[:, 0], span_seconds=3 * 86_400.0)
    assert m.columns == [0, 1, 2, 3]


def test_the_minute_of_the_hour_needs_two_hours() -> None:
    names = ["level", "min_of_hour", "hour_peak"]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 3))
    m = LearnedModel(names, ModelSettings(max_iter=5))
    m.fit(x, x[:, 0], x[:, 0], span_seconds=5400.0)
    assert m.columns == [0, 2]  # the hour-ago features are NaN until an hour has passed anyway
    m.fit(x, x[:, 0], x[:, 0], span_seconds=2 * 3600.0)
    assert m.columns == [0, 1, 2]


def test_hour_ago_features_never_reach_past_the_origin() -> None:
    """With a horizon longer than an hour, the hour-ago window of the coming horizon would end after
    the origin: those features stay missing instead (changing later rates changes nothing)."""
    rng = np.random.default_rng(4)
    rates = rng.poisson(50, size=2000).astype(float)
    later = rates.copy()
    later[1500:] *= 5.0
    i = np.arange(1000, 1501, dtype=np.int64)
    for k in (30, 360, 720):  # 5 min, 1 h (the hour-ago window ends at the origin) and 2 h of 10-s steps
        a = FeatureSet(rates, 0.0, 10, k, 0.1)
        b = FeatureSet(later, 0.0, 10, k, 0.1)
        np.testing.assert_array_equal(a.build(i), b.build(i))
    hour = [FeatureSet(rates, 0.0, 10, 720, 0.1).names.index(n) for n in ("hour_next", "hour_peak")]
    assert np.isnan(FeatureSet(rates, 0.0, 10, 720, 0.1).build(i)[:, hour]).all()


def test_idle_stretches_are_measured_up_to_each_origin() -> None:
    rates = np.array([1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0])
    fs = FeatureSet(rates, 0.0, 10, 2, 0.1)
    origins = np.arange(0, 8, dtype=np.int64)
    # idle right before origin i: rows i-1, i-2, ... back to the last row with a request
    np.testing.assert_array_equal(fs.idle_seconds(origins), [0, 0, 10, 20, 30, 0, 10, 20])
    np.testing.assert_array_equal(fs.after_idle(origins, 20), [0, 0, 0, 1, 1, 0, 0, 1])
    assert not fs.after_idle(origins, 0).any()  # 0 turns the second model off


def test_one_origin_gets_the_row_a_walk_forward_gets() -> None:
    """A live forecast reads its windows from slices, a walk-forward from prefix sums: the rows agree,
    including the missing values of a short history and the windows of an idle stretch."""
    rng = np.random.default_rng(7)
    rates = rng.gamma(0.5, 40.0, size=70_000) * (rng.random(70_000) > 0.3)
    rates[20_000:26_000] = 0.0  # a night without a request
    k = 30
    many = np.arange(1, 70_001, 997, dtype=np.int64)
    rows = FeatureSet(rates, 5.0, 10, k, 0.1).build(many)
    assert len(many) > FEW_WINDOWS
    for j in (0, 1, 2, 25, 40, len(many) - 1):
        one = FeatureSet(rates, 5.0, 10, k, 0.1).build(many[j : j + 1])
        np.testing.assert_allclose(one[0], rows[j], rtol=1e-9, atol=1e-9, equal_nan=True)
    assert np.isnan(rows[0]).any() and not np.isnan(rows[-1]).any()


def test_window_sums_agree_between_slices_and_prefix_sums() -> None:
    values = np.random.default_rng(8).random(500)
    a = np.array([0, 3, 100, 499, 500, 250], dtype=np.int64)
    b = np.array([0, 10, 400, 500, 500, 250], dtype=np.int64)
    for squared in (False, True):
        few = WindowSums(values, squared)(a, b)
        many = WindowSums(values, squared)(np.tile(a, 4), np.tile(b, 4))[: len(a)]
        v = values**2 if squared else values
        want = [float(v[x:y].sum()) for x, y in zip(a, b, strict=True)]
        np.testing.assert_allclose(few, want, rtol=1e-12)
        np.testing.assert_allclose(many, want, rtol=1e-9, atol=1e-9)
