"""The learned forecaster: gradient-boosted quantile regression on scale-free features.

Three direct models share one feature row per origin: the p50 and p90 of the log-ratio of the
window's mean rate to the base level, and the p90 of the log-ratio of the window's peak rate.
Calendar features are used only when the training history spans two of their periods: time of day
and day of week after two days (the level model's clock too), the minute of the hour after two hours.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from .features import CALENDAR_FEATURES, DAY, HOUR, HOURLY_FEATURES, LEVEL_CALENDAR_FEATURES

__all__ = ["LearnedModel", "ModelSettings", "thinned_rows"]

Array = npt.NDArray[np.float64]

TARGETS = ("mean_p50", "mean_p90", "peak_p90")
"""What the three sub-models predict (log-ratios to the base level)."""


@dataclass(frozen=True)
class ModelSettings:
    """Hyper-parameters of the learned model."""

    max_iter: int = 120
    """Boosting iterations per sub-model."""
    learning_rate: float = 0.08
    """Shrinkage."""
    max_leaf_nodes: int = 5
    """Tree size. Chosen on days 1-4 of the week trace and of thinned copies of it (20% and 5% of
    the requests): 15 leaves fitted noise (see docs/forecaster.md)."""
    min_samples_leaf: int = 100
    """Minimum rows per leaf (at most 1/20 of the training rows). Larger leaves scored better still
    on days 1-4 but averaged away a daily ramp that only a few rows precede."""
    max_rows: int = 12_000
    """Training rows are thinned evenly over the history to at most this many."""
    min_rows: int = 60
    """Below this many training rows the model refuses to fit (cold start)."""
    idle_split_seconds: int = 3 * 3600
    """While the training history has idle stretches (no request) at least this long, a second
    learned model is fitted without the origins that follow them (0: never). Chosen on a week built
    with idle nights and on the 50 function series (see docs/forecaster.md)."""
    idle_split_max_rows: int = 4_000
    """Most training rows of that second model (thinned evenly, like ``max_rows``): it is a second
    fit in the same refit, and the whole refit must stay within 2 s."""
    threads: int = 1
    """OpenMP threads for fitting and predicting. One by default: the scheduler shares its cores,
    and OpenMP's spinning threads slow everything down on a busy node."""

    def without_idle(self) -> ModelSettings:
        """The second model's settings: these, with at most ``idle_split_max_rows`` rows."""
        return dataclasses.replace(self, max_rows=min(self.max_rows, self.idle_split_max_rows))


def thinned_rows(n: int, max_rows: int) -> npt.NDArray[np.int64]:
    """Indices of at most ``max_rows`` of ``n`` rows, spread evenly over them (the first and the
    last kept): how training rows are thinned."""
    return np.unique(np.linspace(0, n - 1, max_rows).astype(np.int64))


def _informative(col: Array) -> bool:
    """Whether a feature column has at least two distinct finite values (else it is dropped)."""
    finite = col[np.isfinite(col)]
    return finite.size > 0 and bool(np.ptp(finite) > 0)


class _Forest:
    """All trees of several fitted regressors as padded arrays, evaluated with numpy.

    scikit-learn's ``predict`` costs about a millisecond per call in validation and thread
    start-up; a live forecast needs three predictions for one row. Walking the same trees with a few
    vectorised numpy steps gives the identical result (same thresholds, same missing-value
    routing) in tens of microseconds. Large batches still go through scikit-learn.
    """

    def __init__(self, models: list[HistGradientBoostingRegressor]) -> None:
        trees = [(j, p.nodes) for j, m in enumerate(models) for (p,) in m._predictors]
        sizes = np.array([len(nodes) for _, nodes in trees], dtype=np.int64)
        self.start = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        """Each tree's root in the flat node arrays (trees are laid end to end)."""
        nodes = np.concatenate([nodes for _, nodes in trees])
        offset = np.repeat(self.start, sizes)
        self.leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(len(nodes), dtype=np.int64)
        # a leaf's children are itself, so a path that has ended stays where it is
        self.left = np.where(self.leaf, own, nodes["left"].astype(np.int64) + offset)
        self.right = np.where(self.leaf, own, nodes["right"].astype(np.int64) + offset)
        self.feature = nodes["feature_idx"].astype(np.int64)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.value = nodes["value"].astype(np.float64)
        self.depth = int(nodes["depth"].max())
        owner = np.array([j for j, _ in trees], dtype=np.int64)
        self.first_tree = np.searchsorted(owner, np.arange(len(models)))
        """Index of each model's first tree (trees are in model order)."""
        self.n_models = len(models)
        self.baseline = np.array([float(np.ravel(m._baseline_prediction)[0]) for m in models])

    def predict(self, x: Array) -> Array:
        """Predictions of every model for rows ``x``: shape (rows, models)."""
        n, width = x.shape
        flat = np.ascontiguousarray(x).ravel()
        row = (np.arange(n, dtype=np.int64) * width)[:, None]
        node = np.broadcast_to(self.start, (n, len(self.start))).copy()
        for _ in range(self.depth):
            if self.leaf[node].all():  # every path has ended: deep trees are rarely deep everywhere
                break
            val = flat[row + self.feature[node]]
            go_left = (val <= self.threshold[node]) | (np.isnan(val) & self.missing_left[node])
            node = np.where(go_left, self.left[node], self.right[node])
        out: Array = np.add.reduceat(self.value[node], self.first_tree, axis=1) + self.baseline[None, :]
        return out


class LearnedModel:
    """Three quantile regressors over the feature matrix from ``features.FeatureSet``."""

    def __init__(self, feature_names: list[str], settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()
        self.feature_names = feature_names
        self.columns: list[int] = []
        self.models: dict[str, HistGradientBoostingRegressor] = {}
        self._forest: _Forest | None = None
        self.fit_seconds = 0.0
        self.trained_rows = 0
        self.train_end = 0
        """Step index by which every training window had ended (walk-forward bookkeeping)."""

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` has succeeded."""
        return bool(self.models)

    def fit(self, x: Array, z_mean: Array, z_peak: Array, span_seconds: float, seed: int = 0) -> bool:
        """Fit on rows ``x`` with targets; return False (and stay unfitted) if there are too few rows."""
        s = self.settings
        ok = np.isfinite(z_mean) & np.isfinite(z_peak)
        x, z_mean, z_peak = x[ok], z_mean[ok], z_peak[ok]
        if len(x) < s.min_rows:
            return False
        if len(x) > s.max_rows:
            idx = thinned_rows(len(x), s.max_rows)
            x, z_mean, z_peak = x[idx], z_mean[idx], z_peak[idx]
        # a calendar feature means something once the history holds its period twice: before that
        # the trees would only learn which hour or day the history happened to start on
        too_short: set[str] = set()
        if span_seconds < 2 * DAY:
            too_short.update(CALENDAR_FEATURES, LEVEL_CALENDAR_FEATURES)
        if span_seconds < 2 * HOUR:
            too_short.update(HOURLY_FEATURES)
        self.columns = [
            j for j, name in enumerate(self.feature_names) if name not in too_short and _informative(x[:, j])
        ]
        if not self.columns:  # nothing varies (an idle deployment): stay with the simple predictors
            return False
        xs = x[:, self.columns]
        leaf = int(min(s.min_samples_leaf, max(5, len(xs) // 20)))
        started = time.perf_counter()
        models: dict[str, HistGradientBoostingRegressor] = {}
        for name, quantile, target in (
            ("mean_p50", 0.5, z_mean),
            ("mean_p90", 0.9, z_mean),
            ("peak_p90", 0.9, z_peak),
        ):
            model = HistGradientBoostingRegressor(
                loss="quantile",
                quantile=quantile,
                max_iter=s.max_iter,
                learning_rate=s.learning_rate,
                max_leaf_nodes=s.max_leaf_nodes,
                min_samples_leaf=leaf,
                early_stopping=False,
                random_state=seed,
            )
            with threadpool_limits(limits=self.settings.threads):
                model.fit(xs, target)
            models[name] = model
        self.models = models
        self._forest = _Forest(list(models.values()))
        self.fit_seconds = time.perf_counter() - started
        self.trained_rows = len(xs)
        return True

    def predict(self, x: Array) -> dict[str, Array]:
        """Predicted log-ratios per target for rows ``x`` (p90 never below p50)."""
        xs = np.ascontiguousarray(x[:, self.columns], dtype=np.float64)
        if len(xs) <= 16 and self._forest is not None:
            both = self._forest.predict(xs)
            out = {name: both[:, j] for j, name in enumerate(self.models)}
        else:
            with threadpool_limits(limits=self.settings.threads):
                out = {name: np.asarray(m.predict(xs), dtype=np.float64) for name, m in self.models.items()}
        out["mean_p90"] = np.maximum(out["mean_p90"], out["mean_p50"])
        out["peak_p90"] = np.maximum(out["peak_p90"], out["mean_p90"])
        return out
