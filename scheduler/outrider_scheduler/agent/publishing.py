"""Publish the inventory on the agent's Node: the annotation plus product/architecture labels.

Publishing is rate-limited: at most one patch per ``min_interval_s``, and an unchanged inventory
(ignoring the timestamp, utilisation, and memory moves under ``memory_step_mib``) is re-published
only every ``max_interval_s`` as a heartbeat. The Kubernetes call sits behind :class:`NodePatcher`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from outrider_operator.api.inventory import GpuInventory
from outrider_operator.api.labels import ANNOTATION_GPU_INVENTORY, LABEL_GPU_ARCHITECTURE, LABEL_GPU_PRODUCT

from .errors import PublishError

__all__ = ["KubernetesNodePatcher", "NodePatcher", "NodePublisher", "node_labels", "node_patch"]

log = logging.getLogger(__name__)


class NodePatcher(Protocol):
    """Applies a merge patch to a Node."""

    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        """Patch Node ``name`` with ``body``; raises PublishError on failure."""
        ...


class KubernetesNodePatcher:
    """NodePatcher through the kubernetes client (strategic merge patch)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)

    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        """Patch the Node; wraps API errors in PublishError."""
        from kubernetes.client.exceptions import ApiException

        try:
            self._core.patch_node(name, body)
        except ApiException as exc:
            raise PublishError(f"patching node {name} failed: HTTP {exc.status} {exc.reason}") from None
        except Exception as exc:
            raise PublishError(f"patching node {name} failed: {exc}") from None


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")
    return value or "unknown"


def node_labels(inventory: GpuInventory) -> dict[str, str]:
    """Product and architecture labels: the most common GPU's, or 'none' on CPU-only nodes."""
    if not inventory.gpus:
        return {LABEL_GPU_PRODUCT: "none", LABEL_GPU_ARCHITECTURE: "none"}
    product = Counter(g.short_product for g in inventory.gpus).most_common(1)[0][0]
    arch = Counter(g.architecture for g in inventory.gpus).most_common(1)[0][0]
    return {LABEL_GPU_PRODUCT: _label_value(product), LABEL_GPU_ARCHITECTURE: _label_value(arch)}


def node_patch(inventory: GpuInventory) -> dict[str, Any]:
    """The merge patch that publishes ``inventory``."""
    return {
        "metadata": {
            "annotations": {ANNOTATION_GPU_INVENTORY: inventory.to_annotation()},
            "labels": node_labels(inventory),
        }
    }


class NodePublisher:
    """Rate-limited publishing of one node's inventory."""

    def __init__(
        self,
        node_name: str,
        patcher: NodePatcher,
        *,
        min_interval_s: float = 30.0,
        max_interval_s: float = 300.0,
        memory_step_mib: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_interval_s < 0 or max_interval_s < min_interval_s:
            raise ValueError("need 0 <= min_interval_s <= max_interval_s")
        self.node_name = node_name
        self.patcher = patcher
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.memory_step_mib = max(1, memory_step_mib)
        self.clock = clock
        self._last_time: float | None = None
        self._last_fingerprint: tuple[Any, ...] | None = None

    def fingerprint(self, inventory: GpuInventory) -> tuple[Any, ...]:
        """What counts as a change worth publishing early."""
        gpus = tuple(
            (g.uuid, g.memory_total_mib, g.memory_free_mib // self.memory_step_mib, tuple(g.nvlink_peers))
            for g in inventory.gpus
        )
        return (inventory.driver, inventory.cpu_only_reason, gpus, tuple(inventory.cached_models))

    def publish(self, inventory: GpuInventory) -> str:
        """Patch the node if due; returns 'patched', 'skipped' or 'failed' (never raises)."""
        now = self.clock()
        fp = self.fingerprint(inventory)
        if self._last_time is not None:
            age = now - self._last_time
            if age < self.min_interval_s:
                return "skipped"
            if fp == self._last_fingerprint and age < self.max_interval_s:
                return "skipped"
        try:
            self.patcher.patch_node(self.node_name, node_patch(inventory))
        except PublishError as exc:
            log.warning("%s", exc)
            return "failed"
        self._last_time = now
        self._last_fingerprint = fp
        return "patched"
