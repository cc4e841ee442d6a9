"""One reconciliation pass for one InferenceDeployment: read, decide (pure), apply, report.

The pass is level-based: it reads the current object and its children, renders the desired
children with pure functions, server-side applies them (a no-op when nothing drifted) and
writes status only when it changed. Running it twice in a row changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from outrider_operator.api import labels
from outrider_operator.api.resource import parse_spec
from outrider_operator.api.spec import InferenceDeploymentSpec
from outrider_operator.api.status import InferenceDeploymentStatus, parse_status
from outrider_operator.errors import KubeApiError
from outrider_operator.kube.events import EventRecorder
from outrider_operator.kube.rest import KubeRest, object_path
from outrider_operator.metrics import OperatorMetrics
from outrider_operator.reconcile.children import (
    POOLS,
    Owner,
    PodOptions,
    pool_deployment_name,
    render_children,
)
from outrider_operator.reconcile.scaling import desired_pool_sizes
from outrider_operator.reconcile.semantics import (
    ClusterFacts,
    SpecProblem,
    check_semantics,
    problems_from_validation_error,
)
from outrider_operator.reconcile.status import (
    REASON_APPLY_FAILED,
    REASON_INVALID_SPEC,
    compute_status,
    invalid_spec_status,
    observe_deployment,
)

__all__ = ["ReconcileResult", "Reconciler"]

log = logging.getLogger(__name__)

IDF_API_VERSION = f"{labels.API_GROUP}/{labels.API_VERSION}"
OPERATOR_CONDITIONS = frozenset({"Ready", "Progressing", "Degraded"})
"""Conditions the operator owns; others (Forecasting, Planning) belong to their own writers."""
FOREIGN_STATUS_FIELDS = ("forecast", "plan", "lastScalingAction", "batchSize")
"""Status fields other writers own (server-side apply keeps each writer's fields apart)."""


@dataclass
class ReconcileResult:
    """What one pass did."""

    found: bool = True
    changed_children: list[str] = field(default_factory=list)
    status_written: bool = False
    problems: list[SpecProblem] = field(default_factory=list)


class Reconciler:
    """Reconciles InferenceDeployments; safe to call from several threads (one pass per object at a time)."""

    def __init__(
        self,
        rest: KubeRest,
        metrics: OperatorMetrics | None = None,
        events: EventRecorder | None = None,
        facts_ttl_seconds: float = 15.0,
        pod_options: PodOptions | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(microsecond=0),
    ) -> None:
        self.rest = rest
        self.metrics = metrics or OperatorMetrics.create()
        self.events = events or EventRecorder(rest)
        self.facts_ttl_seconds = facts_ttl_seconds
        self.pod_options = pod_options or PodOptions()
        self.clock = clock
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._facts: tuple[float, ClusterFacts] | None = None
        self._invalid: set[tuple[str, str]] = set()
        self._running: set[tuple[str, str]] = set()
        self._dirty: set[tuple[str, str]] = set()

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def cluster_facts(self) -> ClusterFacts:
        """Summary of the nodes, cached for ``facts_ttl_seconds``."""
        now = time.monotonic()
        if self._facts is not None and now - self._facts[0] < self.facts_ttl_seconds:
            return self._facts[1]
        nodes = self.rest.list("/api/v1/nodes")
        facts = ClusterFacts.from_nodes(nodes, labels.GPU_RESOURCE, labels.LABEL_GPU_PRODUCT)
        self._facts = (now, facts)
        return facts

    def reconcile(self, namespace: str, name: str) -> ReconcileResult:
        """Run one pass for ``namespace/name``; raises KubeApiError on API failures."""
        key = (namespace, name)
        with self._lock(key):
            started = time.perf_counter()
            try:
                result = self._reconcile(namespace, name)
            except Exception:
                self.metrics.reconciles.labels(result="error").inc()
                raise
            finally:
                self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
            self.metrics.reconciles.labels(result="invalid_spec" if result.problems else "ok").inc()
        if not result.found:  # deleted: forget its lock, so memory does not grow with churn
            with self._locks_guard:
                self._locks.pop(key, None)
        return result

    def _reconcile(self, namespace: str, name: str) -> ReconcileResult:
        path = object_path(IDF_API_VERSION, labels.KIND, namespace, name)
        body = self.rest.get(path)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self.forget(namespace, name)
            return ReconcileResult(found=False)
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        previous = parse_status(body.get("status"))
        spec, problems = self._validated_spec(body.get("spec") or {})
        if spec is None:
            return self._report_invalid(body, path, previous, problems, generation)
        self._invalid.discard((namespace, name))
        self.metrics.invalid_specs.set(len(self._invalid))
        self.metrics.set_alert_thresholds(namespace, name, spec.monitoring.alerts)
        owner = Owner(name=name, namespace=namespace, uid=str(meta["uid"]))
        sizes = desired_pool_sizes(spec, previous)
        standby = {pool: n for pool, n in sizes.items() if pool != labels.POOL_ACTIVE}
        result = ReconcileResult()
        applied: dict[str, dict[str, Any]] = {}
        for obj in render_children(
            owner, spec, sizes[labels.POOL_ACTIVE], standby=standby, options=self.pod_options
        ):
            try:
                changed, current = self._apply(obj)
            except KubeApiError as exc:
                if exc.retryable or exc.status in (401, 403):
                    raise  # transient, or RBAC: retried by the handler
                # the apiserver refuses what this spec renders (400/422): retrying cannot help
                where = f"{obj['kind']} {obj['metadata']['name']}"
                problem = SpecProblem(where, f"rejected by the apiserver: {exc.message}")
                return self._report_invalid(body, path, previous, [problem], generation, REASON_APPLY_FAILED)
            if obj["kind"] == "Deployment":
                applied[obj["metadata"]["name"]] = current
            if changed is not None:
                result.changed_children.append(changed)
                self.metrics.children_applied.labels(kind=obj["kind"]).inc()
        if result.changed_children:
            self._event(
                body, "Normal", "ChildrenApplied", f"created or updated: {', '.join(result.changed_children)}"
            )
        # The apply replies are the Deployments as they are now, status included: no re-read.
        pools = {pool: observe_deployment(applied.get(pool_deployment_name(name, pool))) for pool in POOLS}
        status = compute_status(
            name, spec, generation, previous, pools, self.clock(), sizes, self.pod_options.image(spec)
        )
        result.status_written = self._write_status(path, body, previous, status)
        return result

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is kept about a deleted InferenceDeployment (its InvalidSpec mark, its metrics)."""
        self._invalid.discard((namespace, name))
        self.metrics.invalid_specs.set(len(self._invalid))
        self.metrics.forget_deployment(namespace, name)

    def _validated_spec(
        self, raw: dict[str, Any]
    ) -> tuple[InferenceDeploymentSpec | None, list[SpecProblem]]:
        """Parse and check the spec: (spec, []) when servable, else (None, problems naming fields)."""
        try:
            spec = parse_spec(raw)
        except ValidationError as exc:
            return None, problems_from_validation_error(exc)
        problems = check_semantics(spec, self.cluster_facts())
        return (None, problems) if problems else (spec, [])

    def _report_invalid(
        self,
        body: dict[str, Any],
        path: str,
        previous: InferenceDeploymentStatus,
        problems: list[SpecProblem],
        generation: int,
        reason: str = REASON_INVALID_SPEC,
    ) -> ReconcileResult:
        meta = body["metadata"]
        self._invalid.add((meta["namespace"], meta["name"]))
        self.metrics.invalid_specs.set(len(self._invalid))
        message = "; ".join(str(p) for p in problems)
        log.warning("%s for %s/%s: %s", reason, meta["namespace"], meta["name"], message)
        self._event(body, "Warning", reason, message)
        status = invalid_spec_status(previous, problems, generation, self.clock(), reason)
        written = self._write_status(path, body, previous, status)
        return ReconcileResult(status_written=written, problems=problems)

    def _event(self, body: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """Post an Event, best effort: a rejected Event (quota, RBAC) must never block status."""
        try:
            self.events.record(body, event_type, reason, message)
        except KubeApiError as exc:
            meta = body.get("metadata") or {}
            log.warning(
                "could not post %s Event on %s/%s: %s", reason, meta.get("namespace"), meta.get("name"), exc
            )

    def reconcile_coalesced(self, namespace: str, name: str) -> ReconcileResult | None:
        """Reconcile, folding requests that arrive while a pass for the same object is running.

        Child events come in bursts (creating six children fires six events); a request made
        during a running pass marks the object dirty and returns None, and the running caller
        makes one more pass, so the last event is always followed by a full pass.
        """
        key = (namespace, name)
        with self._locks_guard:
            if key in self._running:
                self._dirty.add(key)
                return None
            self._running.add(key)
        try:
            while True:
                result = self.reconcile(namespace, name)
                with self._locks_guard:
                    if key in self._dirty:
                        self._dirty.discard(key)
                        continue
                    self._running.discard(key)
                    return result
        except BaseException:
            with self._locks_guard:
                self._running.discard(key)
                self._dirty.discard(key)
            raise

    def _apply(self, obj: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """Apply one child; return ('Kind/name' when the apiserver changed it, else None; the object now)."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        before = self.rest.get(path)
        after = self.rest.apply(obj)
        before_rv = (before or {}).get("metadata", {}).get("resourceVersion")
        if before_rv != after.get("metadata", {}).get("resourceVersion"):
            verb = "created" if before is None else "updated"
            log.info("%s %s/%s", verb, obj["kind"], meta["name"])
            return f"{obj['kind']}/{meta['name']}", after
        return None, after

    def _write_status(
        self,
        path: str,
        body: dict[str, Any],
        previous: InferenceDeploymentStatus,
        status: InferenceDeploymentStatus,
    ) -> bool:
        if status == previous and body.get("status"):
            return False
        wire = status.to_wire()
        for foreign in FOREIGN_STATUS_FIELDS:
            wire.pop(foreign, None)
        wire["conditions"] = [c for c in wire.get("conditions", []) if c["type"] in OPERATOR_CONDITIONS]
        meta = body["metadata"]
        doc = {
            "apiVersion": IDF_API_VERSION,
            "kind": labels.KIND,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": wire,
        }
        try:
            self.rest.apply(doc, subresource="status")
        except KubeApiError as exc:
            if exc.status == 404:  # deleted while we were reconciling: nothing left to report on
                return False
            raise
        return True
