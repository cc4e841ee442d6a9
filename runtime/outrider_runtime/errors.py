"""Errors raised by the Outrider runtime.

The tree, by how a caller should react::

    OutriderRuntimeError (base: every error this package raises on purpose)
    ├── ConfigError            bad runtime config file; fix the file (names the field)
    ├── ModelBuildError        a model could not be built, cut or converted
    ├── InferenceError         one request failed; carries the HTTP status to answer with
    │   ├── BadRequestError        400: wrong tensor name, shape, dtype, size or encoding
    │   ├── ModelNotFoundError     404: no model of that name
    │   ├── NotServingError        503: the model exists but is cold or warm, or the server drains
    │   └── OverloadedError        429: the queue is full; retry after ``retry_after_s``
    └── StateError             an impossible state transition was asked for (400 at the API)
"""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "ConfigError",
    "InferenceError",
    "ModelBuildError",
    "ModelNotFoundError",
    "NotServingError",
    "OutriderRuntimeError",
    "OverloadedError",
    "StateError",
]


class OutriderRuntimeError(Exception):
    """Base of every error the runtime raises on purpose."""


class ConfigError(OutriderRuntimeError):
    """The runtime config is invalid; the message names the offending field."""


class ModelBuildError(OutriderRuntimeError):
    """A model could not be built, sharded or converted to the requested precision."""


class StateError(OutriderRuntimeError):
    """A model state transition that is not allowed (for example serving a cold model)."""


class InferenceError(OutriderRuntimeError):
    """A request-level failure with the HTTP status the server answers with."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(InferenceError):
    """The request is malformed: unknown tensor, wrong shape or dtype, oversized body."""

    status = 400


class ModelNotFoundError(InferenceError):
    """No model with the requested name is known to this runtime."""

    status = 404


class NotServingError(InferenceError):
    """The model is not in the ``serving`` state, or the server is draining."""

    status = 503

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OverloadedError(InferenceError):
    """The request queue is at its bound; the client should retry after ``retry_after_s``."""

    status = 429

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
