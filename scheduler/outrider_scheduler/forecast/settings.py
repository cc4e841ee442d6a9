"""Settings of the live forecaster (one set per deployment; the learned model and ensemble nest theirs)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .ensemble import EnsembleSettings
from .errors import ForecastError
from .level import LEVEL_SETTINGS
from .model import ModelSettings

__all__ = ["MAX_RECALIBRATION_SECONDS", "ForecasterSettings"]

MAX_RECALIBRATION_SECONDS = 600
"""Longest recalibration cadence: calibration offsets older than that follow a change of load
too late, and the OutriderForecastCalibrationStale alert counts on it (it fires at twice this)."""


@dataclass(frozen=True)
class ForecasterSettings:
    """Settings of the live forecaster."""

    horizon_seconds: int = 300
    """``forecastHorizonSeconds`` of the deployment."""
    step_seconds: int = 10
    """Step of the query grid and of the peak bins."""
    history_seconds: int = 8 * 86_400
    """History kept and read from Prometheus."""
    learned_min_history_seconds: int = 3 * 3600
    """History needed before the learned model becomes a candidate (cold start until then)."""
    refit_interval_seconds: int = 3600
    """How often the learned model is refitted."""
    ets_window_seconds: int = 6 * 3600
    """History the ETS candidate's parameters are fitted on (refitted with the learned model)."""
    autoreg_window_seconds: int = 6 * 3600
    """Origins (seconds of them) the direct autoregression is fitted on (refitted with the learned
    model)."""
    recalibrate_interval_seconds: int = 60
    """How often calibration offsets and ensemble weights are recomputed (see
    ``with_recalibration``)."""
    accuracy_window: int = 720
    """Resolved forecasts (one per predict call) that the live accuracy metrics cover."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Learned-model settings."""
    level: ModelSettings | None = field(default_factory=lambda: LEVEL_SETTINGS)
    """Level-model settings (``level.py``; None: no level model). It is fitted on the learned
    model's schedule, a recalibration after it."""
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)
    """Ensemble settings."""

    def with_recalibration(self, seconds: int) -> ForecasterSettings:
        """These settings, recalibrating every ``seconds``: live, and in the calibration's own
        schedule of origins, so that a recalibration also computes fewer offsets. Longer cadences
        cost far less CPU (docs/forecaster.md, "Sizing")."""
        step = self.step_seconds
        if seconds < step or seconds > MAX_RECALIBRATION_SECONDS or seconds % step:
            raise ForecastError(
                f"recalibration every {seconds} s: must be a multiple of the {step} s step "
                f"between {step} s and {MAX_RECALIBRATION_SECONDS} s"
            )
        return replace(
            self,
            recalibrate_interval_seconds=seconds,
            ensemble=replace(self.ensemble, recalibrate_seconds=seconds),
        )
