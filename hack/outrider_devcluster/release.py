"""A chart release whose components run as pods of the Dockerfile's images on the real node.

The e2e tests install the chart this way instead of running the operator, the planner or the
extender as processes on this machine: ``helm upgrade --install`` with values from
:func:`release_values`, wait for every pod, and hand the tests a :class:`Release` to read the
components' metrics (through the apiserver's pod proxy), logs, scale them and crash them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from .binaries import Binaries
from .incluster import COMPONENTS, in_cluster_values

__all__ = [
    "RELEASE",
    "RELEASE_NAMESPACE",
    "Kube",
    "LocalKube",
    "Release",
    "in_cluster_release",
    "ready",
    "release_values",
]

REPO = Path(__file__).resolve().parents[2]
RELEASE_NAMESPACE = "outrider-system"
"""Namespace of the release."""
RELEASE = "outrider"
"""Release name (so the chart's objects are ``outrider-operator``, ``outrider-planner`` ...)."""
METRICS_PORTS = {"operator": 8080, "planner": 9404, "forecaster": 9403, "scheduler": 8766}
"""Each component's metrics port in its pod (the chart's)."""


class Kube(Protocol):
    """What a release needs of a cluster handle: kubectl and helm as admin."""

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl."""

    def helm(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run helm."""


@dataclass
class LocalKube:
    """kubectl and helm from the located binaries, as the admin of ``kubeconfig``."""

    binaries: Binaries
    kubeconfig: Path
    timeout_s: float = 300.0
    """How long one command may run (subprocess.TimeoutExpired beyond it)."""
    error: type[Exception] = RuntimeError
    """Raised with the command's status and output when it fails and ``check`` (the e2e tests use
    AssertionError, so a failed command fails the test rather than erroring it)."""

    def _run(
        self, exe: str, args: tuple[str, ...], check: bool, input: str | None
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binaries[exe]), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=self.timeout_s, check=False
        )
        if check and proc.returncode != 0:
            raise self.error(
                f"{exe} {' '.join(args)} failed with status {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; ``error`` with its output when it fails and ``check``."""
        return self._run("kubectl", args, check, input)

    def helm(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run helm; ``error`` with its output when it fails and ``check``."""
        return self._run("helm", args, check, input)


def ready(pod: dict[str, Any]) -> bool:
    """Whether the pod's Ready condition is True."""
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


@dataclass
class Release:
    """The installed chart: its namespace and scheduler profile, and handles on its pods."""

    kube: Kube
    namespace: str
    scheduler: str
    """The scheduler profile the release's kube-scheduler serves (and its operator gives pods)."""

    def pods(self, component: str) -> list[dict[str, Any]]:
        """The component's pods that are Ready and not being deleted."""
        selector = f"app.kubernetes.io/component={component}"
        out = self.kube.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return [p for p in items if ready(p) and not p["metadata"].get("deletionTimestamp")]

    def pod(self, component: str) -> dict[str, Any]:
        """The component's (first) Ready pod; AssertionError when there is none."""
        pods = self.pods(component)
        assert pods, f"no Ready {component} pod in {self.namespace}"
        return pods[0]

    def scrape(self, component: str, pod: str | None = None) -> str:
        """A component pod's /metrics through the apiserver's pod proxy (apiserver -> the real node)."""
        return self.get_raw(component, METRICS_PORTS[component], "/metrics", pod)

    def logs(self, component: str, tail: int = 60) -> str:
        """The last lines of every container of the component's pods."""
        selector = f"app.kubernetes.io/component={component}"
        args = ("logs", "-n", self.namespace, "-l", selector, "--all-containers", "--prefix", "--tail")
        out = self.kube.kubectl(*args, str(tail), check=False)
        return out.stdout + out.stderr

    def get_raw(self, component: str, port: int, path: str, pod: str | None = None) -> str:
        """GET ``path`` on a component pod's ``port`` through the apiserver's pod proxy."""
        name = pod or self.pod(component)["metadata"]["name"]
        url = f"/api/v1/namespaces/{self.namespace}/pods/{name}:{port}/proxy{path}"
        return str(self.kube.kubectl("get", "--raw", url).stdout)

    def scale(self, component: str, replicas: int) -> None:
        """Set the component's Deployment to ``replicas`` and wait for the rollout."""
        deployment = f"deployment/{RELEASE}-{component}"
        self.kube.kubectl("scale", "-n", self.namespace, deployment, f"--replicas={replicas}")
        self.kube.kubectl("rollout", "status", "-n", self.namespace, deployment, "--timeout=180s")

    @staticmethod
    def crash(pod: dict[str, Any]) -> int:
        """SIGKILL the processes of ``pod``'s first container on this machine: a crash, no clean exit.

        The pod runs on this machine's real node; its container's processes are found by the
        container ID in their cgroup path. The kubelet restarts the container. Returns how many
        processes were killed.
        """
        container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
        killed = 0
        for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
            with contextlib.suppress(OSError):
                if container_id in cgroup.read_text():
                    os.kill(int(cgroup.parent.name), signal.SIGKILL)
                    killed += 1
        if not killed:
            raise RuntimeError(f"no process of container {container_id} ({pod['metadata']['name']}) here")
        return killed


def release_values(
    namespaces: list[str], scheduler: str, *components: str, resync_s: float = 3.0, **extra: Any
) -> dict[str, Any]:
    """Chart values: the operator and the scheduler always, plus ``components``, on the real node.

    The forecaster, the planner and the agent run only when named; ``extra`` merges into a
    component's values (``planner={"replicas": 2}``). The forecaster reads a Prometheus nobody
    listens on unless ``forecaster={"prometheusUrl": ...}`` says otherwise.
    """
    values = in_cluster_values(namespaces, prometheus_url="http://127.0.0.1:1", scheduler_name=scheduler)
    values["operator"]["resyncSeconds"] = resync_s
    for optional in ("forecaster", "planner", "agent"):
        values[optional]["enabled"] = optional in components
    for component, more in extra.items():
        values[component].update(more)
    return values


@contextlib.contextmanager
def in_cluster_release(kube: Kube, workdir: Path, values: dict[str, Any]) -> Iterator[Release]:
    """``helm upgrade --install`` the chart with ``values`` and wait for every pod; uninstall after.

    The CRDs are applied first. When the release goes, each component's log is printed, the
    release is uninstalled and its namespace deleted (and waited for), so the next user starts
    from nothing.
    """
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    crd = "crd/inferencedeployments.outrider.dev"
    kube.kubectl("wait", "--for=condition=Established", "--timeout=30s", crd)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    release = Release(kube, RELEASE_NAMESPACE, str(values["scheduler"]["name"]))
    started = time.monotonic()
    try:
        kube.helm(
            "upgrade", "--install", RELEASE, str(REPO / "charts" / "outrider"), "--namespace",
            RELEASE_NAMESPACE, "--create-namespace", "-f", str(path), "--wait", "--timeout", "300s",
        )  # fmt: skip
        print(f"\n[release] helm install --wait: every pod Ready in {time.monotonic() - started:.1f}s")
        yield release
    finally:
        for component in COMPONENTS:
            print(f"--- {component} log ---\n{release.logs(component)[-4000:]}")
        kube.helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait", check=False)
        kube.kubectl("delete", "namespace", RELEASE_NAMESPACE, "--wait=true", "--timeout=120s", check=False)
