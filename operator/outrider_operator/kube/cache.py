"""The operator's view of its objects, fed by the watches kopf already runs (an informer cache).

Every watch event of an InferenceDeployment or of one of its children lands here, so a
reconciliation pass reads the current objects from memory instead of GETting each one, and
applies only the children that differ from what it renders (:func:`covers`): a pass over an
unchanged object costs no API request at all. Objects are kept slim (no ``managedFields``, no
``last-applied-configuration``), since a thousand deployments mean seven thousand objects.

The cache is only as fresh as the watches; a pass that applies a child stores the apiserver's
reply, and a newer ``resourceVersion`` is never replaced by an older one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from kubernetes.utils import parse_quantity

__all__ = ["ObjectCache", "covers", "slim"]

Key = tuple[str, str, str]
"""(kind, namespace, name)."""

_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_QUANTITY_KEYS = frozenset({"cpu", "memory", "ephemeral-storage", "storage", "sizeLimit", "nvidia.com/gpu"})
"""Keys whose string values the apiserver may rewrite in canonical form ("0.5" -> "500m")."""


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without what the operator never reads (managed fields, last-applied)."""
    out = {k: v for k, v in body.items() if k != "metadata"}
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and any(a in annotations for a in _DROPPED_ANNOTATIONS):
        meta["annotations"] = {k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS}
    out["metadata"] = meta
    return out


def _same_quantity(a: str, b: str) -> bool:
    try:
        return bool(parse_quantity(a) == parse_quantity(b))  # type: ignore[no-untyped-call]
    except ValueError:
        return False


def covers(live: Any, desired: Any, key: str = "") -> bool:
    """Whether ``live`` already holds every field of ``desired`` with the same value.

    Fields the apiserver or other writers add (defaults, status, other labels) do not matter;
    lists must have the same length and each item cover its counterpart; quantities compare by
    value ("1000m" covers "1"). Applying ``desired`` onto such an object would change nothing.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(k in live and covers(live[k], v, k) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(covers(a, b, key) for a, b in zip(live, desired, strict=True))
    if live == desired and type(live) is type(desired):
        return True
    if isinstance(live, str) and isinstance(desired, str) and key in _QUANTITY_KEYS:
        return _same_quantity(live, desired)
    return False


def _version(body: Mapping[str, Any]) -> int | None:
    raw = (body.get("metadata") or {}).get("resourceVersion")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


class ObjectCache:
    """Slim objects by (kind, namespace, name); safe to use from kopf's handler threads."""

    def __init__(self) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key_of(body: Mapping[str, Any]) -> Key:
        """The cache key of an object."""
        meta = body.get("metadata") or {}
        return str(body.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", ""))

    def upsert(self, body: Mapping[str, Any]) -> None:
        """Store an object seen in a watch event or an API reply, unless a newer one is stored."""
        key = self.key_of(body)
        new = _version(body)
        with self._lock:
            old = self._objects.get(key)
            if old is not None and new is not None:
                stored = _version(old)
                if stored is not None and stored > new:
                    return
            self._objects[key] = slim(body)

    def delete(self, body: Mapping[str, Any]) -> None:
        """Forget an object (its DELETED event)."""
        with self._lock:
            self._objects.pop(self.key_of(body), None)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object, or None when none is known."""
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def keys(self, kind: str) -> Iterator[tuple[str, str]]:
        """(namespace, name) of every stored object of ``kind``."""
        with self._lock:
            found = [(ns, name) for k, ns, name in self._objects if k == kind]
        return iter(found)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)
