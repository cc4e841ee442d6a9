"""List-then-watch one resource in a thread, feeding plain JSON dicts to callbacks.

Used by the scheduler extender's cache and the planner's cache: list, hand every object to
``upsert``, then watch from the list's resourceVersion; on 410 Gone (or any failure) list again
and hand objects that vanished meanwhile to ``delete``. Watches end on the server after 30 s and
on this side after 60 s, so a half-open connection cannot stall a cache.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ListWatch"]

log = logging.getLogger(__name__)

Callback = Callable[[Mapping[str, Any]], None]


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class ListWatch:
    """One resource's list+watch loop (call :meth:`start`, then :meth:`stop`)."""

    def __init__(
        self,
        name: str,
        lister: Callable[..., Any],
        upsert: Callback,
        delete: Callback,
        *,
        optional: bool = False,
        tolerated: tuple[type[Exception], ...] = (),
        lister_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        """``lister``: a kubernetes-client list function (called with ``_preload_content=False``).

        ``optional``: a 404 (the resource type is not installed) is waited out quietly.
        ``tolerated``: exceptions a callback may raise for one malformed object (logged, skipped).
        ``lister_kwargs``: extra arguments for every list and watch call (label selectors...).
        """
        self.name = name
        self.lister = lister
        self.upsert = upsert
        self.delete = delete
        self.optional = optional
        self.tolerated = tolerated
        self.lister_kwargs = dict(lister_kwargs or {})
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the daemon thread."""
        self._thread = threading.Thread(target=self.run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop (it exits at its next watch timeout)."""
        self._stop.set()

    def _call(self, fn: Callback, obj: Mapping[str, Any]) -> None:
        try:
            fn(obj)
        except self.tolerated as exc:
            log.warning("ignoring malformed %s object: %s", self.name, exc)

    def run(self) -> None:
        """List, then watch from the list's resourceVersion; relist (dropping vanished objects) on 410."""
        from kubernetes import watch as k8s_watch
        from kubernetes.client.exceptions import ApiException

        watch: Any = k8s_watch
        known: dict[tuple[str, str], dict[str, Any]] = {}
        backoff = 1.0
        kw = self.lister_kwargs
        while not self._stop.is_set():
            try:
                body = json.loads(self.lister(_preload_content=False, _request_timeout=(10, 120), **kw).data)
                listed = {_key(item): item for item in body.get("items", [])}
                for key in set(known) - set(listed):
                    self._call(self.delete, known[key])
                for item in listed.values():
                    self._call(self.upsert, item)
                known = {k: {"metadata": v.get("metadata", {})} for k, v in listed.items()}
                self.synced.set()
                version = body.get("metadata", {}).get("resourceVersion")
                while not self._stop.is_set():
                    w = watch.Watch()
                    for event in w.stream(
                        self.lister,
                        resource_version=version,
                        timeout_seconds=30,
                        allow_watch_bookmarks=True,
                        _request_timeout=(10, 60),
                        **kw,
                    ):
                        if self._stop.is_set():
                            w.stop()
                            break
                        obj = event.get("raw_object") or {}
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        kind = event.get("type")
                        if kind == "DELETED":
                            known.pop(_key(obj), None)
                            self._call(self.delete, obj)
                        elif kind in ("ADDED", "MODIFIED"):
                            known[_key(obj)] = {"metadata": obj.get("metadata", {})}
                            self._call(self.upsert, obj)
                    backoff = 1.0
            except ApiException as exc:
                if exc.status == 404 and self.optional:
                    log.info("%s: the resource is not installed; looking again in 60 s", self.name)
                    self.synced.set()
                    self._stop.wait(60)
                    continue
                if exc.status == 410:
                    log.info("watch %s expired (410 Gone); relisting", self.name)
                    continue
                log.warning("watch %s failed (HTTP %s); relisting in %.0fs", self.name, exc.status, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:
                log.warning("watch %s failed (%s); relisting in %.0fs", self.name, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
