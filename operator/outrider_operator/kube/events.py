"""Kubernetes Events about InferenceDeployments (what `kubectl describe infd` shows)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from outrider_operator.api import labels
from outrider_operator.errors import KubeApiError
from outrider_operator.kube.rest import KubeRest, object_path

__all__ = ["EventRecorder"]

log = logging.getLogger(__name__)

DEFAULT_COMPONENT = "outrider-operator"


class EventRecorder:
    """Posts core/v1 Events, suppressing repeats of the same message for ``dedupe_seconds``."""

    def __init__(
        self, rest: KubeRest, dedupe_seconds: float = 300.0, component: str = DEFAULT_COMPONENT
    ) -> None:
        self.rest = rest
        self.dedupe_seconds = dedupe_seconds
        self.component = component
        self._recent: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()

    def record_best_effort(self, owner: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """:meth:`record`, logging a refused Event (quota, RBAC) instead of raising: an Event must
        never block a status write or a scaling action."""
        try:
            self.record(owner, event_type, reason, message)
        except KubeApiError as exc:
            meta = owner.get("metadata") or {}
            log.warning(
                "could not post %s Event on %s/%s: %s", reason, meta.get("namespace"), meta.get("name"), exc
            )

    def record(self, owner: dict[str, Any], event_type: str, reason: str, message: str) -> bool:
        """Post an Event on ``owner`` (an InferenceDeployment body); returns False if suppressed."""
        meta = owner.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""), reason, message)
        now = time.monotonic()
        with self._lock:
            last = self._recent.get(key)
            if last is not None and now - last < self.dedupe_seconds:
                return False
            if len(self._recent) >= 256:  # forget entries past their window (bounded memory)
                cutoff = now - self.dedupe_seconds
                self._recent = {k: t for k, t in self._recent.items() if t >= cutoff}
            self._recent[key] = now
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name')}.{uuid.uuid4().hex[:12]}",
                "namespace": meta.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": f"{labels.API_GROUP}/{labels.API_VERSION}",
                "kind": labels.KIND,
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.rest.request("POST", object_path("v1", "Event", str(meta.get("namespace"))), body=event)
        except KubeApiError:
            with self._lock:
                self._recent.pop(key, None)
            raise
        return True
