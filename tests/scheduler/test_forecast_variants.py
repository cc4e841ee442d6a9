"""The built week-long variants and the untuned reference model of ``bench/forecast_variants.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from outrider_scheduler.forecast.traces import Trace

DAY = 86_400


@pytest.fixture(scope="module")
def variants(bench_module: Callable[[str], ModuleType]) -> ModuleType:
    return bench_module("forecast_variants")


def _week_like(days: float = 2.0) -> Trace:
    """10-s counts with a daily cycle between about 100 and 500 per bin, Poisson noise."""
    t = np.arange(int(days * DAY) // 10) * 10.0
    rate = 300 + 200 * np.sin(2 * np.pi * t / DAY)
    return Trace("week-like", 0, 10, np.random.default_rng(0).poisson(rate).astype(np.float64))


def test_the_built_variants_are_reproducible_and_have_the_shapes_they_claim(variants: ModuleType) -> None:
    week = _week_like()
    for name, build in variants.VARIANTS.items():
        a = build(week, np.random.default_rng(variants.SEED))
        b = build(week, np.random.default_rng(variants.SEED))
        assert np.array_equal(a, b), name
        assert len(a) == len(week.counts) and (a >= 0).all(), name
    sharp = variants.diurnal_sharp(week, np.random.default_rng(1))
    assert sharp.mean() / 10 == pytest.approx(5.0, rel=0.05)
    hourly = lambda c: c.reshape(-1, 360).mean(axis=1)  # noqa: E731
    # the day/night contrast is the source's to the power 2.5 (5x here, so about 55x)
    contrast = lambda c: hourly(c).max() / hourly(c).min()  # noqa: E731
    assert contrast(sharp) > contrast(week.counts) ** 2
    bursty = variants.bursts(week, np.random.default_rng(1))
    ratio = bursty / (0.1 * week.counts)
    assert np.percentile(ratio, 99) > 2.5  # bursts of 1.5-4x
    on_off = variants.on_off(week, np.random.default_rng(1))
    # on or off: bins inside a burst (over 30) and bins of the low base (5 or under), few between
    assert 0.3 < (on_off > 30).mean() < 0.7 and (on_off <= 5).mean() > 0.3
    assert ((on_off > 5) & (on_off <= 30)).mean() < 0.1
    poisson = variants.poisson_level(week, np.random.default_rng(1))
    expected = variants.level(week.counts)
    assert poisson.mean() == pytest.approx(expected.mean(), rel=0.01)
    assert np.var(poisson - expected) / expected.mean() == pytest.approx(1.0, abs=0.1)  # Poisson
    office = variants.working_hours(week, np.random.default_rng(1))
    assert office.mean() / 10 == pytest.approx(10.0, rel=0.05)
    by_hour = hourly(office)  # day 0 is a Sunday, day 1 a Monday
    night, sunday, monday = by_hour[24:30].mean(), by_hour[9:17].mean(), by_hour[33:41].mean()
    assert 5 < monday / night < 12 and 1.5 < sunday / by_hour[0:6].mean() < 3.5
    assert by_hour[32] > 4 * by_hour[30]  # the weekday ramp, between 7:30 and 8:30


def test_the_untuned_reference_never_sees_the_future(variants: ModuleType) -> None:
    week = _week_like(0.75)
    before = variants.untuned_gbm(week, 10)
    # origin 9 h + 20 s: just after the second fit (at 9 h), whose forecasts run to the third (15 h); a
    # fit that trained on windows not over at 9 h (they end up to 5 min later) would read the
    # scrambled counts and change the forecasts of origins 9 h and 9 h + 10 s
    cut = 9 * 360 + 2
    scrambled = week.counts.copy()
    scrambled[cut:] = np.random.default_rng(3).permutation(scrambled[cut:]) * 3
    after = variants.untuned_gbm(Trace("scrambled", 0, 10, scrambled), 10)
    # origin i (row i - 1) sees counts[:i]: forecasts up to origin ``cut`` cannot change
    assert np.isnan(before[: 3 * 360 - 1]).all()  # nothing before the first fit, at 3 h
    assert np.isfinite(before[3 * 360 :]).all()
    assert np.array_equal(before[:cut], after[:cut], equal_nan=True)
    assert not np.allclose(before[cut + 10 :], after[cut + 10 :])  # and it does read the history


def test_the_location_check_scores_the_expected_mean_as_irreducible(variants: ModuleType) -> None:
    week = _week_like(1.0)
    expected = variants.level(week.counts)
    counts = variants.poisson_level(week, np.random.default_rng(2))
    trace = Trace("poisson", 0, 10, counts)
    k = variants.HORIZON // 10
    o = np.arange(400, len(counts) - k)
    cs = np.concatenate(([0.0], np.cumsum(counts / 10)))
    ce = np.concatenate(([0.0], np.cumsum(expected / 10)))
    truth = (ce[o + k] - ce[o]) / k
    plot = {
        "t": o * 10.0,
        "actual_mean": (cs[o + k] - cs[o]) / k,
        "forecasts": {"outrider": {"mean_p50": truth}},
    }
    check = variants.location_check(trace, expected, 10, plot)
    assert check["outrider_p50_mae_vs_irreducible"] == pytest.approx(1.0)
    assert check["moving_average_mae_vs_irreducible"] > 1.0
    # fitted in hindsight on the same origins, a linear predictor comes close to it, under the average
    assert 0.95 < check["hindsight_linear_mae_vs_irreducible"] < check["moving_average_mae_vs_irreducible"]


def test_an_unknown_variant_is_refused_and_nothing_is_written(
    variants: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "variants.json"
    assert variants.main(["--only", "bogus", "--out", str(out)]) == 2
    assert "bogus" in capsys.readouterr().err
    assert not out.exists()
