"""A Prometheus on this machine for the local cluster: scrapes the pods of the real nodes.

Prometheus stays a host process (Debian's package), as beside a user's cluster. Debian builds it
without Kubernetes service discovery, so pods are found here: :class:`TargetWriter` lists the pods
on this machine's real nodes that carry ``prometheus.io/scrape: "true"`` and are Running with an IP,
and writes them to a ``file_sd_configs`` file (atomically; Prometheus watches it). Only real-node
pods are listed: a KWOK pod's IP leads nowhere, and test traffic must not leave the machine. Each
target has ``namespace``, ``deployment`` (the ``outrider.dev/deployment`` label) and ``pod``
labels, which the forecaster's query expects.

Prometheus listens on the address pods reach this machine at (:data:`APISERVER_POD_ADDRESS`), so a
forecaster running as a pod on a real node queries it there, as do tools on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from .errors import BuildError
from .settings import APISERVER_POD_ADDRESS

__all__ = [
    "PROMETHEUS_PORT",
    "TargetWriter",
    "pod_targets",
    "prometheus_argv",
    "prometheus_url",
    "scrape_config",
]

PROMETHEUS_PORT = 19090
"""Port Prometheus listens on (at :data:`APISERVER_POD_ADDRESS`)."""
_DEPLOYMENT_LABEL = "outrider.dev/deployment"


def prometheus_url() -> str:
    """Where Prometheus answers, for pods on the real nodes and for this machine alike."""
    return f"http://{APISERVER_POD_ADDRESS}:{PROMETHEUS_PORT}"


def scrape_config(targets: Path, interval_s: float = 2.0) -> dict[str, Any]:
    """A ``prometheus.yml`` scraping the pods listed in ``targets`` (a file_sd file)."""
    return {
        "global": {"scrape_interval": f"{interval_s:g}s", "evaluation_interval": f"{interval_s:g}s"},
        "scrape_configs": [
            {
                "job_name": "outrider-pods",
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "5s"}],
            }
        ],
    }


def pod_targets(pods: list[dict[str, Any]], real_nodes: set[str]) -> list[dict[str, Any]]:
    """file_sd entries for the annotated, Running pods with an IP on ``real_nodes`` (sorted)."""
    entries = []
    for pod in pods:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        annotations = meta.get("annotations") or {}
        if spec.get("nodeName") not in real_nodes or status.get("phase") != "Running":
            continue
        if annotations.get("prometheus.io/scrape") != "true" or not status.get("podIP"):
            continue
        port = annotations.get("prometheus.io/port")
        if not (port and port.isdigit()):
            continue
        target_labels = {"namespace": str(meta.get("namespace")), "pod": str(meta.get("name"))}
        deployment = (meta.get("labels") or {}).get(_DEPLOYMENT_LABEL)
        if deployment:
            target_labels["deployment"] = deployment
        path = annotations.get("prometheus.io/path")
        if path:
            target_labels["__metrics_path__"] = path
        entries.append({"targets": [f"{status['podIP']}:{port}"], "labels": target_labels})
    return sorted(entries, key=lambda e: (e["labels"]["namespace"], e["labels"]["pod"]))


class TargetWriter:
    """Keeps a file_sd file listing the scrapable pods of the real nodes (a thread, or :meth:`run`)."""

    def __init__(self, api: k8s.ApiClient, path: Path, real_nodes: list[str], every_s: float = 2.0) -> None:
        self.core = k8s.CoreV1Api(api)
        self.path = path
        self.real_nodes = set(real_nodes)
        self.every_s = every_s
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = ""

    def write_once(self) -> int:
        """List the pods and rewrite the file when the targets changed; returns how many there are."""
        pods: list[dict[str, Any]] = []
        for node in sorted(self.real_nodes):
            listed = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
            pods += self.core.api_client.sanitize_for_serialization(listed)
        entries = pod_targets(pods, self.real_nodes)
        text = json.dumps(entries, indent=1)
        if text != self._last:
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text(text)
            os.replace(partial, self.path)
            self._last = text
        return len(entries)

    def run(self) -> None:
        """Rewrite the file every ``every_s`` until stopped (an apiserver error waits a round)."""
        while not self.stop_event.is_set():
            try:
                self.write_once()
            except Exception as exc:  # a listing failure must not stop discovery
                print(f"target writer: listing pods failed: {exc}", flush=True)
            self.stop_event.wait(self.every_s)

    def start(self) -> TargetWriter:
        """Write the file once, then keep it current in a daemon thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write_once()
        self._thread = threading.Thread(target=self.run, name="prometheus-targets", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def prometheus_argv(config: Path, data: Path) -> list[str]:
    """The command line of a Prometheus reading ``config``, storing under ``data``."""
    exe = shutil.which("prometheus")
    if exe is None:
        raise BuildError(
            "find prometheus",
            "prometheus is not installed (Debian package prometheus); run `make setup-system`",
        )
    return [
        exe,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={APISERVER_POD_ADDRESS}:{PROMETHEUS_PORT}",
        "--storage.tsdb.retention.time=2h",
    ]
