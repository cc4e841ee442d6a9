"""The live forecaster: one ``DeploymentForecaster`` per InferenceDeployment, run by ``ForecasterService``.

Predictions are cheap and never wait for a refit: a refit (learned model plus conformal calibration
over recent history) runs in a background thread and swaps in a new frozen state when done. With
little history the forecaster uses the simple predictors only and says so (``reason=ColdStart``
and ``outrider_forecaster_learned_model_active 0``); once there is enough it adds the learned
model (``reason=Learned``). If Prometheus is down or returns nothing, the result carries
``forecasting=False`` with ``reason=MetricsUnavailable`` and the last good forecast (if any); no
exception leaves ``ForecasterService.cycle``.

The parts live in modules of their own and are re-exported here: :mod:`.result`
(``ForecastResult``, ``REASONS``), :mod:`.settings` (``ForecasterSettings``) and :mod:`.forecaster`
(``DeploymentForecaster``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import MetricsUnavailableError
from .forecaster import DeploymentForecaster
from .metrics import ForecastMetrics
from .prometheus import CountSource
from .result import REASONS, ForecastResult
from .series import effective_horizon
from .settings import ForecasterSettings

__all__ = [
    "REASONS",
    "DeploymentForecaster",
    "ForecastResult",
    "ForecasterService",
    "ForecasterSettings",
]

log = logging.getLogger(__name__)
Array = npt.NDArray[np.float64]


class ForecasterService:
    """Forecasts many deployments from Prometheus, refitting them in a background thread."""

    def __init__(
        self,
        source: CountSource,
        settings: ForecasterSettings | None = None,
        metrics: ForecastMetrics | None = None,
        clock: Callable[[], float] = time.time,
        refit_workers: int = 1,
    ) -> None:
        self.source = source
        self.settings = settings or ForecasterSettings()
        self.metrics = metrics or ForecastMetrics()
        self.clock = clock
        self.forecasters: dict[tuple[str, str], DeploymentForecaster] = {}
        self._executor = ThreadPoolExecutor(max_workers=refit_workers, thread_name_prefix="forecast-refit")
        self._pending: dict[tuple[str, str], Future[None]] = {}

    def add(self, namespace: str, name: str, horizon_seconds: int | None = None) -> DeploymentForecaster:
        """Start forecasting ``namespace/name`` (optionally with its own horizon).

        Called again with another horizon (the user edited ``forecastHorizonSeconds``), it starts
        a forecaster for the new horizon that keeps the request history; models are refit. A horizon
        that is not a whole number of steps is rounded to the nearest one (at least one step); the
        published ``status.forecast.horizonSeconds`` shows the horizon actually used.
        """
        key = (namespace, name)
        requested = self.settings.horizon_seconds if horizon_seconds is None else horizon_seconds
        horizon = effective_horizon(requested, self.settings.step_seconds)
        existing = self.forecasters.get(key)
        if existing is not None and existing.settings.horizon_seconds == horizon:
            return existing
        fc = DeploymentForecaster(
            f"{namespace}/{name}", replace(self.settings, horizon_seconds=horizon), self.metrics
        )
        if existing is not None and existing.series is not None:
            fc.observe(existing.series)
        self.forecasters[key] = fc
        return fc

    def remove(self, namespace: str, name: str) -> None:
        """Stop forecasting ``namespace/name`` and drop its metrics."""
        fc = self.forecasters.pop((namespace, name), None)
        if fc is not None:
            self.metrics.forget(fc.name, REASONS)

    def cycle(self, now: float | None = None) -> dict[str, ForecastResult]:
        """Read new counts, forecast every deployment and schedule due refits; never raises."""
        now = self.clock() if now is None else now
        out: dict[str, ForecastResult] = {}
        for key, fc in list(self.forecasters.items()):
            try:
                out[fc.name] = self._one(key, fc, now)
            except MetricsUnavailableError as exc:
                out[fc.name] = fc.unavailable(str(exc), now)
            except Exception as exc:  # a bug must not take the scheduler down; report it instead
                log.exception("forecast of %s failed", fc.name)
                out[fc.name] = fc.unavailable(f"internal error: {exc}", now)
                out[fc.name] = replace(out[fc.name], reason="Error")
        return out

    def _one(self, key: tuple[str, str], fc: DeploymentForecaster, now: float) -> ForecastResult:
        step = self.settings.step_seconds
        end = float(np.floor(now / step) * step)
        last_end = fc.end_time()
        start = end - self.settings.history_seconds if last_end is None else last_end - 2 * step
        if end - start >= step:
            fc.observe(self.source.fetch(key[0], key[1], start, end, step))
        pending = self._pending.get(key)
        if fc.refit_due(now) and (pending is None or pending.done()):
            self._pending[key] = self._executor.submit(self._safe_refit, fc, now)
        return fc.predict(now)

    @staticmethod
    def _safe_refit(fc: DeploymentForecaster, now: float) -> None:
        try:
            fc.refit(now)
        except Exception:
            log.exception("refit of %s failed", fc.name)

    def wait_for_refits(self, timeout: float | None = None) -> None:
        """Block until the scheduled refits are done (tests and benchmarks)."""
        for f in list(self._pending.values()):
            f.result(timeout=timeout)

    def close(self) -> None:
        """Stop the background refit thread."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def snapshot(self) -> dict[str, Any]:
        """Latest result of every deployment, as plain dicts."""
        return {fc.name: fc.last.__dict__ if fc.last else None for fc in self.forecasters.values()}
