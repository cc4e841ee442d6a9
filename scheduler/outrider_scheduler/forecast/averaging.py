"""Quantile averaging: the convex combination of candidates' quantiles with the least pinball loss.

The ensemble's exponential weights favour the single best recent candidate: at best they match
it. Two candidates that err differently (the learned model's own quantiles and the direct
autoregression, say) can do better together than either alone, and a weighted mean whose weights
are fitted to minimise the pinball loss over the loss window finds that mix ("quantile regression
averaging"). The weights are non-negative and sum to one, so the result stays a weighted mean of
the candidates' forecasts (the calibrated ones, and the learned model's own quantiles as they
are), in their units; the fit is a linear program (scipy's HiGHS, solved in
its dual form), over at most ``max_rows`` resolved origins.

With few windows such a fit follows noise (on the first day of week-long traces it cost 8-15%
against the exponential weights), so the ensemble uses it only once its loss window is full.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linprog

__all__ = ["fit_averaging_weights"]

Array = npt.NDArray[np.float64]


def fit_averaging_weights(forecasts: Array, actual: Array, tau: float, max_rows: int) -> Array | None:
    """Weights ``w >= 0`` with ``sum(w) == 1`` minimising ``sum(pinball(actual, forecasts @ w))``.

    ``forecasts`` is rows x candidates and ``actual`` holds one value per row; rows where anything
    is not finite are left out, and of the rest every ``ceil(rows / max_rows)``-th is used. Returns
    None when no row is usable or the solver fails.
    """
    ok = np.isfinite(actual) & np.all(np.isfinite(forecasts), axis=1)
    rows = np.flatnonzero(ok)
    if len(rows) == 0 or forecasts.shape[1] == 0:
        return None
    rows = rows[:: max(1, -(-len(rows) // max(max_rows, 1)))]
    f, y = forecasts[rows], actual[rows]
    unit = max(float(np.mean(np.abs(y))), 1e-12)  # the solution is the same; the numbers are tamer
    f, y = f / unit, y / unit
    n, m = f.shape
    # The primal (min sum of tau * under + (1 - tau) * over, with f @ w + under - over = y, w >= 0,
    # sum(w) = 1) has a constraint per row. Its dual has one per candidate, which HiGHS solves about
    # ten times faster: max y @ d + e subject to f.T @ d + e <= 0 and tau - 1 <= d <= tau. The
    # weights are the duals of its m constraints.
    result = linprog(
        np.concatenate([-y, [-1.0]]),
        A_ub=np.hstack([f.T, np.ones((m, 1))]),
        b_ub=np.zeros(m),
        bounds=[(tau - 1.0, tau)] * n + [(None, None)],
        method="highs",
    )
    if not result.success:
        return None
    w = np.maximum(-np.asarray(result.ineqlin.marginals, dtype=np.float64), 0.0)
    total = float(w.sum())
    return w / total if total > 0 else None
