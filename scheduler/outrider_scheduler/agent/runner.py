"""The agent loop: discover, update metrics, publish (rate-limited), sleep; never crash-loops."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from outrider_operator.api.inventory import GpuInventory

from .discovery import discover
from .metrics import AgentMetrics
from .nvml import GpuBackend
from .publishing import NodePublisher

__all__ = ["AgentLoop"]

log = logging.getLogger(__name__)


class AgentLoop:
    """Periodic discovery and publishing for one node."""

    def __init__(
        self,
        backend: GpuBackend,
        publisher: NodePublisher,
        metrics: AgentMetrics,
        *,
        interval_s: float = 10.0,
        cache_dir: Path | None = None,
    ) -> None:
        self.backend = backend
        self.publisher = publisher
        self.metrics = metrics
        self.interval_s = interval_s
        self.cache_dir = cache_dir
        self.stop_event = threading.Event()
        self.last: GpuInventory | None = None

    def step(self) -> str:
        """One discovery + publish round; returns the publish result."""
        inventory = discover(self.backend, self.cache_dir)
        if self.last is None or bool(self.last.gpus) != bool(inventory.gpus):
            if inventory.gpus:
                log.info("discovered %d GPUs (driver %s)", len(inventory.gpus), inventory.driver)
            else:
                log.warning("CPU-only node: %s", inventory.cpu_only_reason)
        self.last = inventory
        self.metrics.observe(inventory)
        result = self.publisher.publish(inventory)
        self.metrics.publishes.labels(result).inc()
        return result

    def run(self) -> None:
        """Loop until ``stop_event`` is set; unexpected errors are logged and retried next round."""
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:
                log.exception("agent round failed; retrying in %.0fs", self.interval_s)
            self.stop_event.wait(self.interval_s)
