"""The kopf handlers: thin adapters from kopf's events to :class:`Reconciler` passes.

Changes to an InferenceDeployment's spec (create, update, resume) trigger a pass with kopf's
retries; a timer repeats the pass for every object (drift repair, status refresh); events on
owned children (someone edits or deletes one, or pods become ready) trigger a pass for their
owner; a new planner decision in status (the pool sizes it asks for) triggers one at once, since
the surge path has seconds, not a resync period. Errors become ``kopf.TemporaryError`` here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from outrider_operator.api import labels
from outrider_operator.config import OperatorConfig
from outrider_operator.errors import KubeApiError
from outrider_operator.kube.rest import object_path
from outrider_operator.reconcile.troubles import Trouble, pod_trouble
from outrider_operator.reconciler import Reconciler

__all__ = ["register_handlers", "resync_loop"]

log = logging.getLogger(__name__)

_CHILD_RESOURCES = [
    ("apps", "v1", "deployments"),
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
]


def _run(reconciler: Reconciler, namespace: str, name: str, config: OperatorConfig, logger: Any) -> None:
    try:
        result = reconciler.reconcile(namespace, name)
    except KubeApiError as exc:
        if exc.retryable:
            raise kopf.TemporaryError(
                f"API error, will retry: {exc}", delay=config.retry_delay_seconds
            ) from exc
        raise kopf.TemporaryError(f"API error: {exc}", delay=config.retry_delay_seconds * 6) from exc
    if result.problems:
        logger.warning("spec cannot be served: %s", "; ".join(str(p) for p in result.problems))
    elif result.changed_children:
        logger.info("applied %s", ", ".join(result.changed_children))


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


def _resync_once(reconciler: Reconciler, config: OperatorConfig) -> int:
    api_version = f"{labels.API_GROUP}/{labels.API_VERSION}"
    if config.namespaces:
        paths = [object_path(api_version, labels.KIND, ns) for ns in config.namespaces]
    else:
        paths = [f"/apis/{labels.API_GROUP}/{labels.API_VERSION}/{labels.PLURAL}"]
    count = 0
    for path in paths:
        for item in reconciler.rest.list(path):
            meta = item.get("metadata") or {}
            try:
                reconciler.reconcile(str(meta.get("namespace")), str(meta.get("name")))
                count += 1
            except KubeApiError as exc:
                log.warning("resync of %s/%s failed: %s", meta.get("namespace"), meta.get("name"), exc)
    return count


async def resync_loop(reconciler: Reconciler, config: OperatorConfig) -> None:
    """Every ``resync_seconds``, reconcile every InferenceDeployment (drift repair, status refresh).

    A loop of our own rather than a kopf timer: kopf timers put a finalizer on every object,
    which would block deleting InferenceDeployments whenever the operator is not running.
    """
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(config.resync_seconds)
        try:
            count = await loop.run_in_executor(None, _resync_once, reconciler, config)
            log.debug("resync reconciled %d InferenceDeployments", count)
        except KubeApiError as exc:
            log.warning("resync listing failed, next try in %.0fs: %s", config.resync_seconds, exc)
        except Exception:  # the loop must survive anything one pass throws
            log.exception("resync pass failed unexpectedly; next try in %.0fs", config.resync_seconds)


def register_handlers(
    registry: kopf.OperatorRegistry, reconciler: Reconciler, config: OperatorConfig
) -> None:
    """Register every handler of the operator in ``registry``."""
    resource = (labels.API_GROUP, labels.API_VERSION, labels.PLURAL)

    @kopf.on.resume(*resource, registry=registry, id="reconcile-resume")
    @kopf.on.create(*resource, registry=registry, id="reconcile-create")
    @kopf.on.update(*resource, registry=registry, id="reconcile-update", field="spec")
    def on_spec(namespace: str | None, name: str, logger: Any, **_: Any) -> None:
        if namespace is not None:
            _run(reconciler, namespace, name, config, logger)

    seen_sizes: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    @kopf.on.event(*resource, registry=registry, id="planner-sizes")
    def on_planner_sizes(
        body: Any, namespace: str | None, name: str, type: str | None, logger: Any, **_: Any
    ) -> None:
        if namespace is None:
            return
        key = (namespace, name)
        if type == "DELETED":
            seen_sizes.pop(key, None)
            reconciler.forget(namespace, name)
            return
        sizes = planner_sizes(body)
        if seen_sizes.get(key) == sizes:
            return
        first = key not in seen_sizes
        seen_sizes[key] = sizes
        if first or sizes == (None, None, None):
            return  # the spec handlers cover creation and resume
        try:
            reconciler.reconcile_coalesced(namespace, name)
        except KubeApiError as exc:
            logger.warning("reconcile after a planner decision failed: %s", exc)

    resync_tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry, id="start-resync")
    async def start_resync(**_: Any) -> None:
        resync_tasks.append(asyncio.create_task(resync_loop(reconciler, config)))

    @kopf.on.cleanup(registry=registry, id="stop-resync")
    async def stop_resync(**_: Any) -> None:
        for task in resync_tasks:
            task.cancel()
        await asyncio.gather(*resync_tasks, return_exceptions=True)

    pod_troubles: dict[str, Trouble | None] = {}

    @kopf.on.event(
        "",
        "v1",
        "pods",
        registry=registry,
        id="pod-troubles",
        labels={labels.LABEL_MANAGED_BY: labels.MANAGED_BY},
    )
    def on_pod(body: Any, namespace: str | None, type: str | None, logger: Any, **_: Any) -> None:
        """A pod that cannot be scheduled or started (or recovers) makes its owner report why.

        Only a change of a pod's trouble starts a pass: healthy pods' status churn costs nothing.
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
        if owner is None or namespace is None:
            return
        try:
            reconciler.reconcile_coalesced(namespace, owner)
        except KubeApiError as exc:
            logger.warning("reconcile of %s/%s after a pod event failed: %s", namespace, owner, exc)

    for group, version, plural in _CHILD_RESOURCES:

        @kopf.on.event(
            group,
            version,
            plural,
            registry=registry,
            id=f"child-{plural}",
            labels={labels.LABEL_MANAGED_BY: labels.MANAGED_BY},
        )
        def on_child(body: Any, namespace: str | None, logger: Any, **_: Any) -> None:
            owner = _owner_name(body)
            if owner is None or namespace is None:
                return
            try:
                reconciler.reconcile_coalesced(namespace, owner)
            except KubeApiError as exc:
                logger.warning("reconcile of owner %s after a child event failed: %s", owner, exc)
