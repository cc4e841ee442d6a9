"""Errors of the operator.

Exception tree::

    OperatorError
    ├── KubeApiError          an apiserver call failed (status, reason, message); retried
    └── KubeConfigError       no usable credentials (a bad kubeconfig, or not in a pod); fatal

The operator's work queue is the boundary: a pass that raises one is logged and retried with backoff.
"""

from __future__ import annotations

import json

__all__ = ["KubeApiError", "KubeConfigError", "OperatorError"]


class OperatorError(Exception):
    """Base of every error the operator raises on purpose."""


class KubeApiError(OperatorError):
    """A Kubernetes API request failed."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_body(cls, status: int, body: bytes | None) -> KubeApiError:
        """Build from an apiserver reply, using the Status object's message when present."""
        text = (body or b"").decode("utf-8", "replace")
        try:
            doc = json.loads(text)
            return cls(status, str(doc.get("message", text)), str(doc.get("reason", "")))
        except (ValueError, AttributeError):
            return cls(status, text[:500])

    @property
    def retryable(self) -> bool:
        """Conflicts, throttling, timeouts and server errors are worth retrying."""
        return self.status in (0, 408, 409, 410, 429) or self.status >= 500


class KubeConfigError(OperatorError):
    """The kubeconfig (or the in-cluster service account) cannot be used; the message says which."""
