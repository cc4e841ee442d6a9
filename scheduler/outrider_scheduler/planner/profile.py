"""Capacity profiles: measured compute time per batch size for one model on one kind of hardware.

A profile is a small JSON (or YAML) file; ``make profile-runtime`` measures one against a real
runtime process and the planner ships the one measured for the builtin MiniLM model on CPU as its
default. The planner starts from the profile and replaces its points with what the serving pods'
own statistics measure (see :mod:`.capacity`)::

    {"apiVersion": "outrider.dev/v1alpha1", "kind": "CapacityProfile",
     "model": "minilm", "hardware": "cpu (2 cores)", "workers": 1,
     "points": [{"batchSize": 1, "seconds": 0.0041}, {"batchSize": 8, "seconds": 0.021}, ...]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from outrider_operator.api.base import ApiModel

from .errors import ProfileError

__all__ = [
    "DEFAULT_PROFILE",
    "MAX_BATCH",
    "MAX_POINTS",
    "MAX_SECONDS",
    "CapacityProfile",
    "ProfileBook",
    "ProfilePoint",
    "default_profile",
    "load_profile",
    "parse_profile",
]

DEFAULT_PROFILE = "minilm-cpu.json"
"""File name, in this package's ``profiles/`` folder, of the profile used when none is given."""


MAX_POINTS = 64
"""Most batch sizes one profile holds."""
MAX_BATCH = 4096
"""Largest batch size a profile point may have."""
MAX_SECONDS = 600.0
"""A point's time must stay under this (seconds)."""


class ProfilePoint(ApiModel):
    """Median compute time of one batch of ``batchSize`` rows."""

    batch_size: int = Field(ge=1, le=MAX_BATCH, description="Rows per batch.")
    seconds: float = Field(gt=0, lt=MAX_SECONDS, description="Median compute time of one batch, seconds.")


class CapacityProfile(ApiModel):
    """Measured service time per batch size of one model on one kind of hardware."""

    api_version: Literal["outrider.dev/v1alpha1"] = Field(
        default="outrider.dev/v1alpha1", description="Schema version."
    )
    kind: Literal["CapacityProfile"] = Field(default="CapacityProfile", description="Always CapacityProfile.")
    model: str = Field(min_length=1, max_length=128, description="Model name the profile was measured with.")
    uri: str | None = Field(
        default=None, max_length=1024, description="spec.model.uri it applies to (matched before the name)."
    )
    hardware: str = Field(default="", max_length=256, description="Where it was measured (free text).")
    workers: int = Field(default=1, ge=1, le=16, description="Batches that executed at once.")
    rows_per_request: float = Field(default=1.0, gt=0, description="Rows per request in the measurement.")
    points: list[ProfilePoint] = Field(
        min_length=1, max_length=MAX_POINTS, description="One point per batch size."
    )

    @field_validator("points")
    @classmethod
    def _distinct_sizes(cls, points: list[ProfilePoint]) -> list[ProfilePoint]:
        sizes = [p.batch_size for p in points]
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"batch sizes must not repeat, got {sizes}")
        return sorted(points, key=lambda p: p.batch_size)


def _format(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())


def parse_profile(text: str, where: str) -> CapacityProfile:
    """Parse profile text (JSON or YAML); raises ProfileError naming ``where`` and the bad field."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ProfileError(f"capacity profile {where} is not valid JSON/YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"capacity profile {where} must be a mapping, got {type(data).__name__}")
    try:
        return CapacityProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"capacity profile {where} is invalid: {_format(exc)}") from exc


def load_profile(path: str | Path) -> CapacityProfile:
    """Read a profile file; raises ProfileError (never anything else) when it cannot be used."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ProfileError(f"cannot read capacity profile {p}: {exc}") from exc
    return parse_profile(text, str(p))


@dataclass
class ProfileBook:
    """The profiles the planner knows, by model URI and name, and the files it could not use."""

    profiles: list[CapacityProfile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, paths: list[str | Path], include_default: bool = True) -> ProfileBook:
        """Read profile files and folders (``*.json``, ``*.yaml``); bad ones are recorded, not raised."""
        book = cls()
        for path in paths:
            p = Path(path)
            files = (
                sorted(f for f in p.iterdir() if f.suffix in (".json", ".yaml", ".yml"))
                if p.is_dir()
                else [p]
            )
            for f in files:
                try:
                    book.profiles.append(load_profile(f))
                except ProfileError as exc:
                    book.errors.append(str(exc))
        if include_default:
            book.profiles.append(default_profile())
        return book

    def find(self, uri: str, name: str) -> CapacityProfile | None:
        """The profile for a model: by URI first, then by served name (files given first win)."""
        for profile in self.profiles:
            if profile.uri is not None and profile.uri == uri:
                return profile
        for profile in self.profiles:
            if profile.uri is None and profile.model == name:
                return profile
        return None


def default_profile() -> CapacityProfile:
    """The profile shipped with the planner (builtin MiniLM, measured on CPU)."""
    text = resources.files(__package__).joinpath("profiles", DEFAULT_PROFILE).read_text()
    return parse_profile(text, f"(builtin) {DEFAULT_PROFILE}")
