"""Settings of the live forecaster (one set per deployment; the learned model and ensemble nest theirs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .ensemble import EnsembleSettings
from .level import LEVEL_SETTINGS
from .model import ModelSettings

__all__ = ["ForecasterSettings"]


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
    """How often calibration offsets and ensemble weights are recomputed."""
    accuracy_window: int = 720
    """Resolved forecasts (one per predict call) that the live accuracy metrics cover."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Learned-model settings."""
    level: ModelSettings | None = field(default_factory=lambda: LEVEL_SETTINGS)
    """Level-model settings (``level.py``; None: no level model). It is fitted on the learned
    model's schedule, a recalibration after it."""
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)
    """Ensemble settings."""
