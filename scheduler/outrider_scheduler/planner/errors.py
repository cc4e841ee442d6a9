"""Errors of the planner.

The tree, by how a caller should react::

    PlannerError (base: every error this package raises on purpose)
    ├── ProfileError       a capacity profile cannot be read or is invalid; names the file and field
    ├── PodCallError       one pod's runtime admin API failed or timed out; that pod is skipped
    └── SettingsError      bad planner settings (command line); exit with a message
"""

from __future__ import annotations

__all__ = ["PlannerError", "PodCallError", "ProfileError", "SettingsError"]


class PlannerError(Exception):
    """Base of every error the planner raises on purpose."""


class ProfileError(PlannerError):
    """A capacity profile cannot be used; the message names the file and the offending field."""


class SettingsError(PlannerError):
    """The planner's settings are invalid."""


class PodCallError(PlannerError):
    """A call to one pod's runtime admin API failed."""

    def __init__(self, pod: str, message: str) -> None:
        super().__init__(f"{pod}: {message}")
        self.pod = pod
        self.message = message
