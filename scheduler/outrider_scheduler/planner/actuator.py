"""Carry out a plan's pod operations: runtime admin calls and pod label/annotation patches.

Order matters for zero failed requests: a promoted pod's runtime switches to serving *before*
its label makes the Service route to it; a demoted pod's label goes first (traffic stops) and its
runtime switches to warm only once drained (a later operation). A load from cold takes seconds,
so it runs in the background; the label follows when the runtime serves (``label-serving``).

The actuator remembers what it is doing per pod, so the core never decides twice on a pod
whose operation has not shown up in a fresh sample yet (:meth:`Actuator.busy`), and which pods
just failed, so the core skips them for a while and uses others (:meth:`Actuator.failed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from outrider_operator.api import labels
from outrider_operator.api.runtime import BatchingUpdate, ModelState
from outrider_operator.errors import KubeApiError
from outrider_operator.kube.rest import KubeRest, object_path

from .decisions import OpKind, PodOp
from .errors import PodCallError
from .runtime_client import RuntimeClient

__all__ = ["RELEASE_COST", "Actuator", "OpResult"]

log = logging.getLogger(__name__)

RELEASE_COST = -1000
"""pod-deletion-cost of a pod released on a scale-down (lower goes first)."""
_ROLE_AFTER = {
    OpKind.PROMOTE: labels.ROLE_SERVING,
    OpKind.LABEL_SERVING: labels.ROLE_SERVING,
    OpKind.DEMOTE: labels.ROLE_STANDBY,
}


@dataclass(frozen=True)
class OpResult:
    """The outcome of one operation."""

    namespace: str
    deployment: str
    op: PodOp
    ok: bool
    error: str = ""
    seconds: float = 0.0


@dataclass
class _Track:
    op: OpKind
    started: float
    done: float | None = None
    role: str | None = None


_UNSET: Any = object()


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Actuator:
    """Executes pod operations; tracks them per pod."""

    def __init__(
        self,
        rest: KubeRest,
        runtime: RuntimeClient,
        *,
        failure_cooldown_s: float = 10.0,
        settle_timeout_s: float = 5.0,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rest = rest
        self.runtime = runtime
        self.failure_cooldown_s = failure_cooldown_s
        self.settle_timeout_s = settle_timeout_s
        self.wall = wall
        self.mono = mono
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._failed: dict[tuple[str, str], tuple[float, str]] = {}
        self._background: set[asyncio.Task[OpResult]] = set()
        self.completed: list[OpResult] = []
        """Results of background operations finished since the last :meth:`drain_completed`."""

    # ---- what the core must know ---------------------------------------------------------------
    def busy(self, namespace: str, pod: str, sampled_at: float, role: str) -> str | None:
        """The operation still under way on ``pod``, as the core should see it (None when settled).

        An operation counts until it has finished, a sample taken after it shows its effect, and
        the pod's label (from the watch) says what the operation set; at most ``settle_timeout_s``.
        """
        track = self._tracks.get((namespace, pod))
        if track is None:
            return None
        if track.done is None:
            return track.op.value
        settled = sampled_at > track.done and (track.role is None or track.role == role)
        if settled or self.mono() - track.done > self.settle_timeout_s:
            del self._tracks[(namespace, pod)]
            return None
        return track.op.value

    def failed(self, namespace: str, pod: str) -> str | None:
        """Why ``pod``'s last operation failed, while its cooldown lasts (the core skips it)."""
        entry = self._failed.get((namespace, pod))
        if entry is None:
            return None
        if self.mono() - entry[0] > self.failure_cooldown_s:
            del self._failed[(namespace, pod)]
            return None
        return entry[1]

    def forget(self, namespace: str, pods: set[str]) -> None:
        """Drop the records of pods that no longer exist."""
        for key in [k for k in (*self._tracks, *self._failed) if k[0] == namespace and k[1] not in pods]:
            self._tracks.pop(key, None)
            self._failed.pop(key, None)

    def drain_completed(self) -> list[OpResult]:
        """Background results since the last call."""
        out, self.completed = self.completed, []
        return out

    # ---- doing ---------------------------------------------------------------------------------
    async def execute(
        self, namespace: str, deployment: str, ops: list[PodOp], addresses: dict[str, str]
    ) -> list[OpResult]:
        """Run ``ops`` (one per pod: the first wins) and return the results of those that finished.

        A ``load`` returns at once and finishes in the background (see :attr:`completed`). Pods
        without an address (no pod IP yet) fail their operation.
        """
        seen: set[str] = set()
        quick: list[asyncio.Task[OpResult]] = []
        for op in ops:
            key = (namespace, op.pod)
            if op.pod in seen or (key in self._tracks and self._tracks[key].done is None):
                continue
            seen.add(op.pod)
            self._tracks[key] = _Track(op.kind, self.mono(), role=_ROLE_AFTER.get(op.kind))
            task = asyncio.create_task(self._run(namespace, deployment, op, addresses.get(op.pod)))
            if op.kind is OpKind.LOAD:
                self._background.add(task)
                task.add_done_callback(self._background_done)
            else:
                quick.append(task)
        return list(await asyncio.gather(*quick)) if quick else []

    def _background_done(self, task: asyncio.Task[OpResult]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is None:
            self.completed.append(task.result())

    async def _run(self, namespace: str, deployment: str, op: PodOp, address: str | None) -> OpResult:
        started = self.mono()
        key = (namespace, op.pod)
        try:
            if address is None:
                raise PodCallError(op.pod, "no address yet (no pod IP)")
            await self._do(namespace, op, address)
        except (PodCallError, KubeApiError) as exc:
            message = exc.message if isinstance(exc, PodCallError) else str(exc)
            log.warning("%s %s/%s failed: %s", op.kind.value, namespace, op.pod, message)
            self._failed[key] = (self.mono(), message)
            self._tracks.pop(key, None)
            return OpResult(namespace, deployment, op, False, message, self.mono() - started)
        track = self._tracks.get(key)
        if track is not None:
            track.done = self.mono()
        return OpResult(namespace, deployment, op, True, "", self.mono() - started)

    async def _do(self, namespace: str, op: PodOp, address: str) -> None:
        pod, rt = op.pod, self.runtime
        if op.kind is OpKind.PROMOTE:
            if op.batch_size is not None:
                await rt.set_batching(pod, address, BatchingUpdate(max_batch_size=op.batch_size))
            await rt.set_state(pod, address, ModelState.SERVING)
            await self._patch(namespace, pod, role=labels.ROLE_SERVING, demoted_at=None, cost=None)
        elif op.kind is OpKind.LOAD:
            await rt.set_state(pod, address, ModelState.SERVING)
        elif op.kind is OpKind.LABEL_SERVING:
            await self._patch(namespace, pod, role=labels.ROLE_SERVING, demoted_at=None, cost=None)
        elif op.kind is OpKind.DEMOTE:
            await self._patch(namespace, pod, role=labels.ROLE_STANDBY, demoted_at=_stamp(self.wall()))
        elif op.kind is OpKind.SETTLE_WARM:
            await rt.set_state(pod, address, ModelState.WARM)
        elif op.kind is OpKind.UNLOAD:
            await rt.set_state(pod, address, ModelState.COLD)
            await self._patch(namespace, pod, demoted_at=_stamp(self.wall()))
        elif op.kind is OpKind.RELEASE:
            await self._patch(namespace, pod, cost=str(RELEASE_COST))
        elif op.kind is OpKind.RESIZE:
            assert op.batch_size is not None
            await rt.set_batching(pod, address, BatchingUpdate(max_batch_size=op.batch_size))

    async def _patch(
        self,
        namespace: str,
        pod: str,
        *,
        role: str | None = None,
        demoted_at: Any = _UNSET,
        cost: Any = _UNSET,
    ) -> None:
        """Merge-patch the pod's role label and planner annotations (None deletes an annotation)."""
        meta: dict[str, Any] = {}
        if role is not None:
            meta["labels"] = {labels.LABEL_ROLE: role}
        annotations: dict[str, Any] = {}
        if demoted_at is not _UNSET:
            annotations[labels.ANNOTATION_DEMOTED_AT] = demoted_at
        if cost is not _UNSET:
            annotations[labels.ANNOTATION_POD_DELETION_COST] = cost
        if annotations:
            meta["annotations"] = annotations
        path = object_path("v1", "Pod", namespace, pod)
        await asyncio.to_thread(
            self.rest.request,
            "PATCH",
            path,
            body={"metadata": meta},
            content_type="application/merge-patch+json",
        )

    async def close(self) -> None:
        """Cancel background operations (a load keeps going in the runtime; its label will follow later)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
