"""The extender's own cache of nodes, bound pods and InferenceDeployments.

kube-scheduler sends only node names to a node-cache-capable extender, so the extender keeps
its own copy of the cluster. :class:`ClusterCache` is fed with plain JSON dicts (``upsert_*`` /
``delete_*``) — by :class:`CacheWatcher` (list + watch through the kubernetes client, one thread
per resource) in production, or directly by tests and benchmarks.

Writers serialise on a lock; readers (the HTTP handlers) read without it, which is safe because
every update replaces whole values.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from outrider_operator.api.labels import API_GROUP, API_VERSION, PLURAL, POOL_COLD, POOL_WARM
from outrider_operator.api.status import parse_status
from outrider_operator.kube.listwatch import ListWatch

from .errors import BadRequestError, MalformedRequestError
from .nodes import NodeShape, NodeState, node_from_object
from .requirements import PodRequirements, gpu_request

__all__ = ["CacheWatcher", "ClusterCache", "PodRecord"]

log = logging.getLogger(__name__)

_DONE_PHASES = {"Succeeded", "Failed"}


@dataclass(frozen=True, slots=True)
class PodRecord:
    """What the cache keeps of a pod bound to a node."""

    node: str
    gpus: int
    model: str | None
    pool: str | None
    deployment: str | None


class ClusterCache:
    """Nodes, bound pods and InferenceDeployments, with interned node shapes.

    Writers hold the lock; readers (the request path) do not, so writes are published in forms a
    lock-free reader always sees whole: a node is replaced by one dict assignment (never removed
    and re-added), the per-model node maps are copied on write (a reader iterating one keeps an
    unchanging dict), and shape ids are never reused (a request's per-shape memo cannot confuse
    two shapes when interning compacts).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeState] = {}
        self._pods: dict[str, PodRecord] = {}
        self._pods_by_node: dict[str, dict[str, PodRecord]] = {}
        self._deployments: dict[str, dict[str, Any]] = {}
        self._planned: dict[str, tuple[tuple[str, int], ...]] = {}
        self._reservations: dict[str, dict[str, int]] = {}
        self._model_nodes: dict[str, dict[str, int]] = {}
        self._shape_ids: dict[NodeShape, int] = {}
        self._next_shape_id = 0
        self.generation = 0
        """Bumped on every change; lets callers notice that the cache moved."""

    # ---- reads -------------------------------------------------------------------------------
    def node(self, name: str) -> NodeState | None:
        """The node called ``name``, or None."""
        return self._nodes.get(name)

    def node_names(self) -> list[str]:
        """Names of every cached node."""
        return list(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def lookup(self, names: Iterable[str]) -> tuple[list[NodeState], list[str]]:
        """Resolve names to nodes; returns (known nodes in order, unknown names).

        Raises MalformedRequestError when a name is not a string.
        """
        names = list(names)
        get = self._nodes.get
        try:
            found = [get(name) for name in names]
        except TypeError:
            raise MalformedRequestError("node names must be strings") from None
        if None not in found:
            return found, []  # type: ignore[return-value]
        known = [s for s in found if s is not None]
        unknown = [str(n) for n, s in zip(names, found, strict=True) if s is None]
        return known, unknown

    def model_nodes(self, model: str) -> Mapping[str, int]:
        """Nodes holding ``model``: 2 when a warm/cold standby pod of it runs there, 1 when cached."""
        return self._model_nodes.get(model, {})

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A cached InferenceDeployment as a plain dict, or None."""
        return self._deployments.get(f"{namespace}/{name}")

    def reservations(self) -> Mapping[str, Mapping[str, int]]:
        """Node -> deployment name -> GPUs the planner holds back there (``status.plan.reservations``)."""
        return self._reservations

    @property
    def shape_count(self) -> int:
        """How many distinct node shapes are interned."""
        return len(self._shape_ids)

    def transient_node(self, obj: Mapping[str, Any]) -> NodeState:
        """A NodeState for a Node sent whole in a request (not stored), with the cache's pods applied."""
        state = node_from_object(obj)
        with self._lock:
            self._apply_pods(state)
        return state

    # ---- writes ------------------------------------------------------------------------------
    def upsert_node(self, obj: Mapping[str, Any]) -> NodeState:
        """Insert or replace a node from its v1 Node dict; raises MalformedRequestError if invalid."""
        state = node_from_object(obj)
        if state.inventory_problem:
            log.debug("node %s: %s", state.name, state.inventory_problem)
        with self._lock:
            self._apply_pods(state)
            self._replace(state.name, state)
        return state

    def delete_node(self, name: str) -> None:
        """Forget a node (its pods stay recorded until they are deleted)."""
        with self._lock:
            self._replace(name, None)

    def upsert_pod(self, obj: Mapping[str, Any]) -> None:
        """Record a pod; only pods bound to a node and not finished count against the node."""
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        node = spec.get("nodeName")
        if not node or phase in _DONE_PHASES:
            self.delete_pod_key(key)
            return
        try:
            req = PodRequirements.from_pod(obj)
        except BadRequestError as exc:
            log.debug("pod %s: placement hints ignored by the cache: %s", key, exc)
            req = None
        if req is not None:
            gpus = req.gpus
        else:  # a bad hint annotation must not hide the GPUs the pod holds
            try:
                gpus = gpu_request(spec)
            except BadRequestError:
                gpus = 0
        record = PodRecord(
            node=str(node),
            gpus=gpus,
            model=req.model if req else None,
            pool=req.pool if req else None,
            deployment=req.deployment if req else None,
        )
        with self._lock:
            old = self._pods.get(key)
            if old == record:
                return
            self._pods[key] = record
            if old is not None and old.node != record.node:
                self._pods_by_node.get(old.node, {}).pop(key, None)
                self._refresh(old.node)
            self._pods_by_node.setdefault(record.node, {})[key] = record
            self._refresh(record.node)

    def delete_pod(self, obj: Mapping[str, Any]) -> None:
        """Forget a pod given as its dict."""
        meta = obj.get("metadata") or {}
        self.delete_pod_key(f"{meta.get('namespace', 'default')}/{meta.get('name')}")

    def delete_pod_key(self, key: str) -> None:
        """Forget a pod by ``namespace/name``."""
        with self._lock:
            old = self._pods.pop(key, None)
            if old is None:
                return
            self._pods_by_node.get(old.node, {}).pop(key, None)
            self._refresh(old.node)

    def upsert_deployment(self, obj: Mapping[str, Any]) -> None:
        """Record an InferenceDeployment (a plain dict; optional input) and its planned reservations."""
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
        plan = parse_status(dict(obj.get("status") or {})).plan
        planned = tuple((r.node, r.gpus) for r in plan.reservations) if plan is not None else ()
        with self._lock:
            self._deployments[key] = dict(obj)
            if self._planned.get(key, ()) != planned:
                self._planned[key] = planned
                self._rebuild_reservations()

    def delete_deployment(self, obj: Mapping[str, Any]) -> None:
        """Forget an InferenceDeployment."""
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
        with self._lock:
            self._deployments.pop(key, None)
            if self._planned.pop(key, ()):
                self._rebuild_reservations()

    def _rebuild_reservations(self) -> None:
        """Recompute node -> deployment -> GPUs and publish it whole (lock-free readers)."""
        merged: dict[str, dict[str, int]] = {}
        for key, planned in self._planned.items():
            name = key.partition("/")[2]
            for node, gpus in planned:
                per = merged.setdefault(node, {})
                per[name] = per.get(name, 0) + gpus
        self._reservations = merged

    # ---- internals (call with the lock held) -------------------------------------------------
    def _refresh(self, node_name: str) -> None:
        state = self._nodes.get(node_name)
        if state is None:
            return
        fresh = NodeState(
            name=state.name,
            host_json=state.host_json,
            allocatable_gpus=state.allocatable_gpus,
            labels=state.labels,
            inventory=state.inventory,
            inventory_problem=state.inventory_problem,
            cached_models=state.cached_models,
        )
        self._apply_pods(fresh)
        self._replace(node_name, fresh)

    def _replace(self, name: str, state: NodeState | None) -> None:
        old = self._nodes.get(name)
        before = old.model_codes() if old is not None else {}
        after = state.model_codes() if state is not None else {}
        if state is not None:
            self._nodes[name] = state  # one assignment: readers see the old or the new node
        else:
            self._nodes.pop(name, None)
        for model in before.keys() | after.keys():
            code = after.get(model)
            if before.get(model) == code:
                continue
            holders = dict(self._model_nodes.get(model, {}))  # copy on write
            if code is None:
                holders.pop(name, None)
            else:
                holders[name] = code
            if holders:
                self._model_nodes[model] = holders
            else:
                self._model_nodes.pop(model, None)
        self.generation += 1

    def _apply_pods(self, state: NodeState) -> None:
        pods = self._pods_by_node.get(state.name, {})
        state.requested_gpus = sum(p.gpus for p in pods.values())
        standby: dict[str, int] = {}
        cached = set(state.cached_models)
        for p in pods.values():
            if not p.model:
                continue
            if p.pool in (POOL_WARM, POOL_COLD):
                standby[p.model] = standby.get(p.model, 0) + 1
            else:
                cached.add(p.model)
        state.standby_models = standby
        state.cached_models = frozenset(cached)
        state.shape = state.compute_shape()
        state.shape_id = self._intern(state.shape)

    def _intern(self, shape: NodeShape) -> int:
        found = self._shape_ids.get(shape)
        if found is not None:
            return found
        if len(self._shape_ids) > 4 * len(self._nodes) + 4096:
            self._compact()
        self._shape_ids[shape] = self._next_shape_id
        self._next_shape_id += 1
        return self._shape_ids[shape]

    def _compact(self) -> None:
        """Forget shapes no node has any more; live shapes keep their ids (ids are never reused)."""
        live = {state.shape for state in self._nodes.values()}
        self._shape_ids = {shape: sid for shape, sid in self._shape_ids.items() if shape in live}


class CacheWatcher:
    """Keeps a ClusterCache in step with the apiserver: list, then watch, per resource, in threads."""

    def __init__(self, cache: ClusterCache, api_client: Any, *, watch_deployments: bool = True) -> None:
        self.cache = cache
        self.api_client = api_client
        self.watch_deployments = watch_deployments
        self._watches: dict[str, ListWatch] = {}

    def start(self) -> None:
        """Start one daemon thread per watched resource."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        custom = client.CustomObjectsApi(self.api_client)
        bad = (BadRequestError,)
        self._watches = {
            "nodes": ListWatch("nodes", core.list_node, self._upsert_node, self._delete_node, tolerated=bad),
            "pods": ListWatch(
                "pods",
                core.list_pod_for_all_namespaces,
                self.cache.upsert_pod,
                self.cache.delete_pod,
                tolerated=bad,
            ),
        }
        if self.watch_deployments:

            def list_deployments(**kw: Any) -> Any:
                return custom.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL, **kw)

            self._watches["inferencedeployments"] = ListWatch(
                "inferencedeployments",
                list_deployments,
                self.cache.upsert_deployment,
                self.cache.delete_deployment,
                optional=True,
                tolerated=bad,
            )
        for w in self._watches.values():
            w.start()

    def _upsert_node(self, obj: Mapping[str, Any]) -> None:
        self.cache.upsert_node(obj)

    def _delete_node(self, obj: Mapping[str, Any]) -> None:
        self.cache.delete_node(str((obj.get("metadata") or {}).get("name")))

    def wait_synced(self, timeout: float) -> bool:
        """Wait until nodes and pods were listed once (deployments are optional)."""
        return all(w.synced.wait(timeout) for n, w in self._watches.items() if n != "inferencedeployments")

    def stop(self) -> None:
        """Ask the threads to stop (they exit at their next watch timeout)."""
        for w in self._watches.values():
            w.stop()
