"""One reconciliation pass for one InferenceDeployment: read, decide (pure), apply, report.

The pass is level-based: it reads the current object and its children, renders the desired
children with pure functions, server-side applies them (a no-op when nothing drifted) and
writes status only when it changed. Running it twice in a row changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from outrider_operator.api import labels
from outrider_operator.api.resource import name_problem, parse_spec
from outrider_operator.api.spec import InferenceDeploymentSpec
from outrider_operator.api.status import InferenceDeploymentStatus, parse_status
from outrider_operator.errors import KubeApiError
from outrider_operator.kube.cache import ObjectCache, covers
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
    ObservedPool,
    compute_status,
    invalid_spec_status,
    observe_deployment,
)
from outrider_operator.reconcile.troubles import Trouble, deployment_trouble, pod_trouble, worst_trouble

__all__ = ["ReconcileResult", "Reconciler"]

log = logging.getLogger(__name__)

IDF_API_VERSION = f"{labels.API_GROUP}/{labels.API_VERSION}"
OPERATOR_CONDITIONS = frozenset({"Ready", "Progressing", "Degraded"})
"""Conditions the operator owns; others (Forecasting, Planning) belong to their own writers."""
SERVER_ERRORS_BEFORE_APPLY_FAILED = 2
"""HTTP 500 answers in a row to applying the same child of the same generation before the object
reports ApplyFailed (one 500 may be an etcd hiccup; the same one twice is the rendering's fault)."""
FOREIGN_STATUS_FIELDS = ("forecast", "plan", "lastScalingAction", "batchSize")
"""Status fields other writers own (server-side apply keeps each writer's fields apart)."""


def _ready_reason(status: InferenceDeploymentStatus) -> str | None:
    return next((c.reason for c in status.conditions if c.type == "Ready"), None)


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
        cache: ObjectCache | None = None,
    ) -> None:
        """``cache``: the objects as the watches last saw them; with one, a pass reads the object
        and its children from it and applies only what differs (without one, it GETs each)."""
        self.rest = rest
        self.cache = cache
        self.metrics = metrics or OperatorMetrics.create()
        self.events = events or EventRecorder(rest)
        self.facts_ttl_seconds = facts_ttl_seconds
        self.pod_options = pod_options or PodOptions()
        self.clock = clock
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._facts: tuple[float, ClusterFacts] | None = None
        self._invalid: set[tuple[str, str]] = set()
        self._server_errors: dict[tuple[str, str, str, int], int] = {}
        """Consecutive HTTP 500 answers to applying one child of one generation."""

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
        body = self.cache.get(labels.KIND, namespace, name) if self.cache is not None else None
        if body is None:
            body = self.rest.get(path)
            if body is not None and self.cache is not None:
                self.cache.upsert(body)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self.forget(namespace, name)
            return ReconcileResult(found=False)
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        previous = parse_status(body.get("status"))
        spec, problems = self._validated_spec(name, body.get("spec") or {})
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
            where = f"{obj['kind']} {obj['metadata']['name']}"
            try:
                changed, current = self._apply(obj, fresh=not body.get("status"))
            except KubeApiError as exc:
                if exc.status == 500 and self._refused_again((namespace, name, where, generation)):
                    # a 500 that repeats for the same rendering is a refusal the apiserver reports
                    # badly (a rendered field its typed decoding rejects): report it, keep retrying
                    problem = SpecProblem(where, f"rejected by the apiserver (HTTP 500): {exc.message}")
                    self._report_invalid(body, path, previous, [problem], generation, REASON_APPLY_FAILED)
                    raise
                if exc.retryable or exc.status in (401, 403):
                    raise  # transient, or RBAC: retried by the handler
                # the apiserver refuses what this spec renders (400/422): retrying cannot help
                problem = SpecProblem(where, f"rejected by the apiserver: {exc.message}")
                return self._report_invalid(body, path, previous, [problem], generation, REASON_APPLY_FAILED)
            self._server_errors.pop((namespace, name, where, generation), None)
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
        trouble = None
        if not all(p.rolled_out for p in pools.values()):
            trouble = self._trouble(namespace, name, list(applied.values()), pools.values())
        status = compute_status(
            name,
            spec,
            generation,
            previous,
            pools,
            self.clock(),
            sizes,
            self.pod_options.image(spec),
            trouble,
        )
        result.status_written = self._write_status(path, body, previous, status)
        if trouble is not None and result.status_written and _ready_reason(previous) != trouble.reason:
            self._event(body, "Warning", trouble.reason, trouble.message)
        return result

    def _trouble(
        self,
        namespace: str,
        name: str,
        deployments: list[dict[str, Any]],
        pools: Iterable[ObservedPool],
    ) -> Trouble | None:
        """Why pods do not become ready: the Deployments' own conditions (no extra request), else
        the pods' scheduling and container states (one LIST, only while some pod exists unready)."""
        trouble = worst_trouble(deployment_trouble(d) for d in deployments)
        if trouble is not None or not any(p.total > p.ready for p in pools):
            return trouble
        pods = self.rest.list(
            f"/api/v1/namespaces/{namespace}/pods", label_selector=f"{labels.LABEL_DEPLOYMENT}={name}"
        )
        return worst_trouble(pod_trouble(p) for p in pods)

    def _refused_again(self, key: tuple[str, str, str, int]) -> bool:
        """Count a 500 for one child of one generation; True from the second in a row."""
        with self._locks_guard:
            if len(self._server_errors) > 10_000:  # bounded: keys of old generations are not revisited
                self._server_errors.clear()
            self._server_errors[key] = self._server_errors.get(key, 0) + 1
            return self._server_errors[key] >= SERVER_ERRORS_BEFORE_APPLY_FAILED

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is kept about a deleted InferenceDeployment (its InvalidSpec mark, its metrics)."""
        self._invalid.discard((namespace, name))
        self.metrics.invalid_specs.set(len(self._invalid))
        self.metrics.forget_deployment(namespace, name)

    def _validated_spec(
        self, name: str, raw: dict[str, Any]
    ) -> tuple[InferenceDeploymentSpec | None, list[SpecProblem]]:
        """Parse and check the spec: (spec, []) when servable, else (None, problems naming fields).

        The name is checked too: an object stored before the CRD refused such names gets no children.
        """
        bad_name = name_problem(name)
        if bad_name is not None:
            return None, [SpecProblem("metadata.name", bad_name)]
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
        self.events.record_best_effort(body, event_type, reason, message)

    def _apply(self, obj: dict[str, Any], fresh: bool = False) -> tuple[str | None, dict[str, Any]]:
        """Apply one child; return ('Kind/name' when the apiserver changed it, else None; the object now).

        With a cache, a child that already holds every rendered field is not applied at all (no
        request); one the cache does not know is read first, so a change is told from a no-op,
        unless the owner is ``fresh`` (no status yet: never reconciled, so it has no children).
        """
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        before = None
        if self.cache is not None:
            before = self.cache.get(obj["kind"], meta["namespace"], meta["name"])
            if before is not None and covers(before, obj):
                return None, before
        if before is None and not (fresh and self.cache is not None):
            before = self.rest.get(path)
        after = self.rest.apply(obj)
        if self.cache is not None:
            self.cache.upsert(after)
        before_rv = (before or {}).get("metadata", {}).get("resourceVersion")
        if before_rv != after.get("metadata", {}).get("resourceVersion"):
            verb = "created" if before is None else "updated"
            log.info("%s %s %s/%s", verb, obj["kind"], meta["namespace"], meta["name"])
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
            reply = self.rest.apply(doc, subresource="status")
        except KubeApiError as exc:
            if exc.status == 404:  # deleted while we were reconciling: nothing left to report on
                return False
            raise
        if self.cache is not None and reply:
            self.cache.upsert(reply)  # the next pass compares with what was written, not older
        return True
