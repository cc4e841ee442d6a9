"""The planner's view of the cluster, kept by watches: InferenceDeployments, their pods, the ready
endpoints of their Services, their PodDisruptionBudgets, and the nodes' free GPUs.

Pods and nodes also feed the scheduler extender's :class:`ClusterCache` (free GPUs per node and
the models cached there), so the planner reserves GPUs with the same accounting the extender
places pods with. Each EndpointSlice update records, per pod, when it first became a ready
endpoint: that is the moment traffic can reach new capacity, which ``readySeconds`` measures to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from outrider_operator.api import labels
from outrider_operator.kube.listwatch import ListWatch
from outrider_scheduler.extender.cache import ClusterCache
from outrider_scheduler.extender.errors import BadRequestError

__all__ = ["PlannerCache"]

_SERVICE_LABEL = "kubernetes.io/service-name"


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class PlannerCache:
    """Watched state; writers take the lock, readers get copies."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.nodes = ClusterCache()
        self._lock = threading.Lock()
        self._deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self._pods: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._pod_owner: dict[tuple[str, str], str] = {}
        self._slices: dict[tuple[str, str], tuple[str, set[str]]] = {}
        self._ready_since: dict[tuple[str, str], float] = {}
        self._pdbs: dict[tuple[str, str], int | None] = {}
        self._watches: list[ListWatch] = []
        self.changed = threading.Event()
        """Set on every change of a deployment or its pods (the loop may wake early)."""

    # ---- feeding -------------------------------------------------------------------------------
    def upsert_deployment(self, obj: Mapping[str, Any]) -> None:
        """Add or replace an InferenceDeployment."""
        with self._lock:
            self._deployments[_meta(obj)] = dict(obj)
        self.changed.set()

    def delete_deployment(self, obj: Mapping[str, Any]) -> None:
        """Forget an InferenceDeployment."""
        with self._lock:
            self._deployments.pop(_meta(obj), None)
        self.changed.set()

    def upsert_pod(self, obj: Mapping[str, Any]) -> None:
        """Add or replace a pod (every pod feeds the GPU accounting; managed ones are kept whole)."""
        self.nodes.upsert_pod(obj)
        ns, name = _meta(obj)
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(labels.LABEL_DEPLOYMENT)
        managed = ((obj.get("metadata") or {}).get("labels") or {}).get(
            labels.LABEL_MANAGED_BY
        ) == labels.MANAGED_BY
        with self._lock:
            previous = self._pod_owner.pop((ns, name), None)
            if previous is not None:
                self._pods.get((ns, previous), {}).pop(name, None)
            if owner and managed:
                self._pods.setdefault((ns, owner), {})[name] = dict(obj)
                self._pod_owner[(ns, name)] = owner
        self.changed.set()

    def delete_pod(self, obj: Mapping[str, Any]) -> None:
        """Forget a pod."""
        self.nodes.delete_pod(obj)
        ns, name = _meta(obj)
        with self._lock:
            owner = self._pod_owner.pop((ns, name), None)
            if owner is not None:
                pods = self._pods.get((ns, owner), {})
                pods.pop(name, None)
                if not pods:
                    self._pods.pop((ns, owner), None)
            self._ready_since.pop((ns, name), None)
        self.changed.set()

    def _upsert_node(self, obj: Mapping[str, Any]) -> None:
        self.nodes.upsert_node(obj)

    def upsert_slice(self, obj: Mapping[str, Any]) -> None:
        """Record which pods an EndpointSlice lists as ready endpoints, and since when."""
        ns, name = _meta(obj)
        service = ((obj.get("metadata") or {}).get("labels") or {}).get(_SERVICE_LABEL)
        if not service:
            return
        ready: set[str] = set()
        for ep in obj.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            if ref.get("kind") == "Pod" and (ep.get("conditions") or {}).get("ready"):
                ready.add(str(ref.get("name")))
        now = self.clock()
        with self._lock:
            before = self._slices.get((ns, name), ("", set()))[1]
            self._slices[(ns, name)] = (service, ready)
            for pod in ready - before:
                self._ready_since.setdefault((ns, pod), now)
            for pod in before - ready:
                if not any(pod in pods for s, pods in self._slices.values() if s == service):
                    self._ready_since.pop((ns, pod), None)

    def delete_slice(self, obj: Mapping[str, Any]) -> None:
        """Forget an EndpointSlice."""
        ns, name = _meta(obj)
        with self._lock:
            _, ready = self._slices.pop((ns, name), ("", set()))
            for pod in ready:
                self._ready_since.pop((ns, pod), None)

    def upsert_pdb(self, obj: Mapping[str, Any]) -> None:
        """Record a PodDisruptionBudget's disruptionsAllowed."""
        allowed = (obj.get("status") or {}).get("disruptionsAllowed")
        with self._lock:
            self._pdbs[_meta(obj)] = int(allowed) if isinstance(allowed, int) else None

    def delete_pdb(self, obj: Mapping[str, Any]) -> None:
        """Forget a PodDisruptionBudget."""
        with self._lock:
            self._pdbs.pop(_meta(obj), None)

    # ---- reading -------------------------------------------------------------------------------
    def deployments(self) -> list[dict[str, Any]]:
        """Every InferenceDeployment (copies of the references; do not mutate)."""
        with self._lock:
            return list(self._deployments.values())

    def pods(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        """Managed pods of one InferenceDeployment."""
        with self._lock:
            return list(self._pods.get((namespace, deployment), {}).values())

    def endpoint_ready(self, namespace: str, service: str) -> dict[str, float]:
        """Pods that are ready endpoints of ``service``, with the time each first became one."""
        with self._lock:
            pods = set().union(*(ready for s, ready in self._slices.values() if s == service and ready))
            return {p: self._ready_since.get((namespace, p), 0.0) for p in pods}

    def disruptions_allowed(self, namespace: str, name: str) -> int | None:
        """The deployment's PodDisruptionBudget's disruptionsAllowed (None when unknown)."""
        with self._lock:
            return self._pdbs.get((namespace, name))

    # ---- watching ------------------------------------------------------------------------------
    def start(self, api_client: Any) -> None:
        """Start the watches (one thread each)."""
        from kubernetes import client

        core = client.CoreV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)
        discovery = client.DiscoveryV1Api(api_client)
        policy = client.PolicyV1Api(api_client)

        def list_deployments(**kw: Any) -> Any:
            return custom.list_cluster_custom_object(
                labels.API_GROUP, labels.API_VERSION, labels.PLURAL, **kw
            )

        managed = {"label_selector": f"{labels.LABEL_MANAGED_BY}={labels.MANAGED_BY}"}
        bad = (BadRequestError,)
        self._watches = [
            ListWatch(
                "inferencedeployments", list_deployments, self.upsert_deployment, self.delete_deployment
            ),
            ListWatch(
                "pods", core.list_pod_for_all_namespaces, self.upsert_pod, self.delete_pod, tolerated=bad
            ),
            ListWatch(
                "nodes",
                core.list_node,
                self._upsert_node,
                lambda o: self.nodes.delete_node(_meta(o)[1]),
                tolerated=bad,
            ),
            ListWatch(
                "endpointslices",
                discovery.list_endpoint_slice_for_all_namespaces,
                self.upsert_slice,
                self.delete_slice,
            ),
            ListWatch(
                "poddisruptionbudgets",
                policy.list_pod_disruption_budget_for_all_namespaces,
                self.upsert_pdb,
                self.delete_pdb,
                lister_kwargs=managed,
            ),
        ]
        for w in self._watches:
            w.start()

    def wait_synced(self, timeout: float) -> bool:
        """Wait until every watch listed once."""
        deadline = time.monotonic() + timeout
        return all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in self._watches)

    def synced(self) -> bool:
        """Whether every watch has listed once."""
        return bool(self._watches) and all(w.synced.is_set() for w in self._watches)

    def stop(self) -> None:
        """Stop the watches."""
        for w in self._watches:
            w.stop()
