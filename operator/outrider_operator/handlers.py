"""The kopf handlers: thin adapters from kopf's watch events to a queue of :class:`Reconciler` passes.

kopf runs the watches (InferenceDeployments, their children, their pods); each event updates the
operator's object cache and, when a pass may be needed, puts the InferenceDeployment on the work
queue: a new object or a spec not yet reconciled (``generation`` ahead of
``status.observedGeneration``), a child edited, deleted or changing status, a pod that cannot be
scheduled or started, a new planner decision (the surge path has seconds, not a resync period).
A timer queues every object again each resync period. Passes that fail are retried by the queue
with backoff; no handler blocks on the API and none writes kopf's bookkeeping onto user objects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from outrider_operator.api import labels
from outrider_operator.config import OperatorConfig
from outrider_operator.kube.cache import ObjectCache
from outrider_operator.reconcile.troubles import Trouble, pod_trouble
from outrider_operator.reconciler import Reconciler
from outrider_operator.workqueue import WorkQueue

__all__ = ["register_handlers", "resync_loop"]

log = logging.getLogger(__name__)

_CHILD_RESOURCES = [
    ("apps", "v1", "deployments"),
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
]


def _owner_name(body: Any) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == labels.KIND and str(ref.get("apiVersion", "")).startswith(
            labels.API_GROUP + "/"
        ):
            return str(ref.get("name"))
    return None


def planner_sizes(body: Any) -> tuple[Any, Any, Any]:
    """The pool sizes the planner asks for in an InferenceDeployment's status (None where unset)."""
    status = body.get("status") or {}
    forecast = status.get("forecast") or {}
    plan = status.get("plan") or {}
    return forecast.get("recommendedReplicas"), plan.get("warmReplicas"), plan.get("coldReplicas")


async def resync_loop(cache: ObjectCache, config: OperatorConfig, queue: WorkQueue) -> None:
    """Every ``resync_seconds``, queue a pass for every InferenceDeployment the watches know (drift
    repair, status refresh), spread over half the period so a thousand do not all run at once.

    A loop of our own rather than a kopf timer: kopf timers put a finalizer on every object,
    which would block deleting InferenceDeployments whenever the operator is not running.
    """
    while True:
        await asyncio.sleep(config.resync_seconds)
        keys = list(cache.keys(labels.KIND))
        spread = config.resync_seconds / 2 / max(1, len(keys))
        for i, (namespace, name) in enumerate(keys):
            queue.add(namespace, name, delay_s=i * spread)
        log.debug("resync queued %d InferenceDeployments", len(keys))


def register_handlers(
    registry: kopf.OperatorRegistry, reconciler: Reconciler, config: OperatorConfig
) -> WorkQueue:
    """Register every handler of the operator in ``registry``; returns the queue of passes.

    Every handler is a watch-event handler that updates the cache and, when a pass may be needed
    (a new or changed spec, a child's or a pod's event, a planner decision, the resync timer),
    puts the owner on the work queue and returns at once: kopf's event streams never wait on the
    API, and no kopf bookkeeping (annotations, finalizers) is written on the user's objects.
    """
    resource = (labels.API_GROUP, labels.API_VERSION, labels.PLURAL)
    cache = reconciler.cache
    if cache is None:
        raise ValueError("the handlers feed the reconciler's object cache: build it with one")
    queue = WorkQueue(reconciler.reconcile, workers=config.reconcile_workers)

    seen_sizes: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    @kopf.on.event(*resource, registry=registry, id="inferencedeployments")
    async def on_deployment(body: Any, namespace: str | None, name: str, type: str | None, **_: Any) -> None:
        """Queue a pass for an object seen for the first time, with a spec not yet reconciled
        (``generation`` ahead of ``status.observedGeneration``) or a new planner decision."""
        if namespace is None:
            return
        key = (namespace, name)
        if type == "DELETED":
            seen_sizes.pop(key, None)
            cache.delete(body)
            reconciler.forget(namespace, name)
            return
        cache.upsert(body)
        meta = body.get("metadata") or {}
        pending = meta.get("generation") != (body.get("status") or {}).get("observedGeneration")
        sizes = planner_sizes(body)
        first = key not in seen_sizes
        decided = not first and seen_sizes[key] != sizes and sizes != (None, None, None)
        seen_sizes[key] = sizes
        if first or pending or decided or meta.get("deletionTimestamp"):
            queue.add(namespace, name, urgent=True)

    resync_tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry, id="start-resync")
    async def start_resync(**_: Any) -> None:
        queue.start()
        resync_tasks.append(asyncio.create_task(resync_loop(cache, config, queue)))

    @kopf.on.cleanup(registry=registry, id="stop-resync")
    async def stop_resync(**_: Any) -> None:
        for task in resync_tasks:
            task.cancel()
        await asyncio.gather(*resync_tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, queue.stop)

    pod_troubles: dict[str, Trouble | None] = {}

    @kopf.on.event(
        "",
        "v1",
        "pods",
        registry=registry,
        id="pod-troubles",
        labels={labels.LABEL_MANAGED_BY: labels.MANAGED_BY},
    )
    async def on_pod(body: Any, namespace: str | None, type: str | None, **_: Any) -> None:
        """A pod that cannot be scheduled or started (or recovers) makes its owner report why.

        Only a change of a pod's trouble queues a pass: healthy pods' status churn costs nothing.
        """
        uid = str((body.get("metadata") or {}).get("uid", ""))
        if type == "DELETED":
            pod_troubles.pop(uid, None)
            return
        trouble = pod_trouble(body)
        if pod_troubles.get(uid) == trouble or (trouble is None and uid not in pod_troubles):
            return
        pod_troubles[uid] = trouble
        owner = ((body.get("metadata") or {}).get("labels") or {}).get(labels.LABEL_DEPLOYMENT)
        if owner is not None and namespace is not None:
            queue.add(namespace, owner)

    for group, version, plural in _CHILD_RESOURCES:

        @kopf.on.event(
            group,
            version,
            plural,
            registry=registry,
            id=f"child-{plural}",
            labels={labels.LABEL_MANAGED_BY: labels.MANAGED_BY},
        )
        async def on_child(body: Any, namespace: str | None, type: str | None, **_: Any) -> None:
            owner = _owner_name(body)
            if owner is None or namespace is None:
                return
            if type == "DELETED":
                cache.delete(body)
            else:
                cache.upsert(body)
            queue.add(namespace, owner)

    return queue
