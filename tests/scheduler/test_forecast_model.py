"""The learned model: the numpy tree walk matches scikit-learn exactly; too few rows is cold start."""

from __future__ import annotations

import numpy as np

from outrider_scheduler.forecast.model import LearnedModel, ModelSettings


def test_fast_path_matches_scikit_learn_including_missing_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    z = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 3]) + rng.normal(size=2000) * 0.1
    m = LearnedModel([f"f{i}" for i in range(6)], ModelSettings(max_iter=40))
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


def test_calendar_features_need_two_days() -> None:
    names = ["level", "tod_sin", "tod_cos", "dow"]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4))
    m = LearnedModel(names, ModelSettings(max_iter=5))
    m.fit(x, x[:, 0], x[:, 0], span_seconds=86_400.0)
    assert m.columns == [0]
    m.fit(x, x[:, 0], x[:, 0], span_seconds=3 * 86_400.0)
    assert m.columns == [0, 1, 2, 3]
