"""Leader election on a ``coordination.k8s.io/v1`` Lease, so two planner replicas never both act.

Uses the kubernetes client's own ``LeaderElection`` (client-go's algorithm: acquire when the
holder's lease has not been renewed within its duration as *this* process observed it, renew
every ``retry_period``, give up after ``renew_deadline`` without a renewal). Its ``LeaseLock``
uses the client's default configuration; :class:`_Lock` binds it to the planner's own ApiClient.
Losing the lease is final for a process: the planner stops acting at once and exits, and the
kubelet restarts it as a follower (the usual practice for controllers).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

__all__ = ["LeaderElector"]

log = logging.getLogger(__name__)


class _Lock(LeaseLock):
    def __init__(self, name: str, namespace: str, identity: str, api_client: Any) -> None:
        super().__init__(name, namespace, identity)  # type: ignore[no-untyped-call]
        self.api_instance = client.CoordinationV1Api(api_client)
        self.refuse = False
        """Set on release: the election thread must not take the lease back before the process exits."""

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        return False if self.refuse else bool(super().create(name, namespace, election_record))  # type: ignore[no-untyped-call]

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        return False if self.refuse else bool(super().update(name, namespace, updated_record))  # type: ignore[no-untyped-call]


class LeaderElector:
    """Runs the election in a daemon thread; :meth:`leading` says whether to act now."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: int = 15,
        renew_deadline: int = 10,
        retry_period: int = 2,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.identity = identity
        self._leading = threading.Event()
        self._lost = threading.Event()
        self._on_lost = on_lost
        lock = _Lock(name, namespace, identity, api_client)
        self._lock = lock
        config = electionconfig.Config(  # type: ignore[no-untyped-call]
            lock,
            lease_duration,
            renew_deadline,
            retry_period,
            onstarted_leading=self._started,
            onstopped_leading=self._stopped,
        )
        self._election = leaderelection.LeaderElection(config)  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    def start(self) -> None:
        """Start campaigning."""
        self._thread.start()

    def leading(self) -> bool:
        """True while this process holds the lease."""
        return self._leading.is_set() and not self._lost.is_set()

    @property
    def lost(self) -> bool:
        """True once this process held the lease and lost it."""
        return self._lost.is_set()

    def release(self) -> bool:
        """Give the lease up on a clean shutdown (holder cleared), so a follower takes over at its next
        retry instead of waiting for the lease to expire. Returns whether this process held it."""
        self._lock.refuse = True
        if not self.leading():
            return False
        self._leading.clear()
        api = self._lock.api_instance
        try:
            lease = api.read_namespaced_lease(self._lock.name, self._lock.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return False
            lease.spec.holder_identity = None
            api.replace_namespaced_lease(self._lock.name, self._lock.namespace, lease)
        except Exception as exc:  # the lease simply expires then
            log.warning("could not release the planner lease: %s", exc)
            return False
        log.info("%s released the planner lease", self.identity)
        return True

    def _run(self) -> None:
        try:
            self._election.run()  # type: ignore[no-untyped-call]
        except Exception:
            log.exception("leader election stopped")
        if self._leading.is_set() and not self._lost.is_set():
            self._stopped()

    def _started(self) -> None:
        log.info("%s now holds the planner lease and acts", self.identity)
        self._leading.set()

    def _stopped(self) -> None:
        if self._lost.is_set():
            return
        log.warning("%s lost the planner lease: it stops acting", self.identity)
        self._lost.set()
        self._leading.clear()
        if self._on_lost is not None:
            self._on_lost()
