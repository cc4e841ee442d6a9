"""Errors raised by the scheduler extender.

The tree, by who is at fault and what the HTTP layer does with it::

    ExtenderError                      base of everything below
    ├── ConfigError                    bad configuration; raised at construction, the service refuses to start
    └── BadRequestError                the caller sent something unusable; answered with HTTP 400
        ├── MalformedRequestError      not JSON, or JSON of the wrong shape / missing fields
        └── UnknownNodesError          node names the extender's cache has never seen

Scoring never raises: a node without usable data fails soft (minimum score, a log line).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BadRequestError",
    "ConfigError",
    "ExtenderError",
    "MalformedRequestError",
    "UnknownNodesError",
]


class ExtenderError(Exception):
    """Base class of every error the extender raises."""


class ConfigError(ExtenderError):
    """The extender configuration (weights, strategy arguments, listen address) is invalid."""


class BadRequestError(ExtenderError):
    """A request that kube-scheduler (or anyone) sent cannot be answered; HTTP 400."""


class MalformedRequestError(BadRequestError):
    """The request body is not JSON or lacks a field the protocol requires."""


class UnknownNodesError(BadRequestError):
    """The request names nodes that the extender's node cache does not hold."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        shown = ", ".join(self.names[:5])
        more = f" and {len(self.names) - 5} more" if len(self.names) > 5 else ""
        super().__init__(f"unknown nodes (not in the extender's node cache): {shown}{more}")
