"""Outrider's own components as local processes against the local cluster, each as its chart ServiceAccount.

Tests and benchmarks run the operator, the planner (and the extender) the way the chart does, but
as processes on this machine: the chart is installed with its in-cluster replicas of those
components at zero, and each process authenticates with a bound token of the chart's
ServiceAccount, so what is exercised is the chart's RBAC. Every process logs to a file and is
stopped (SIGTERM, then SIGKILL) when the stack stops.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .binaries import Binaries
from .kube import api_client, request_token, token_kubeconfig
from .nodeconfig import REAL_NODE_LABEL
from .topology import STAND_IN_LABEL

__all__ = [
    "RELEASE_NAMESPACE",
    "Component",
    "Stack",
    "free_port",
    "real_node_deployment",
    "stand_in_deployment",
]

RELEASE_NAMESPACE = "outrider-system"
"""Namespace the chart is installed in."""
REPO = Path(__file__).resolve().parents[2]


def _placed_deployment(
    name: str, namespace: str, label: str, runtime: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    """An InferenceDeployment of the builtin MiniLM whose pods tolerate and select node ``label``."""
    return {
        "apiVersion": "outrider.dev/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
            "runtime": runtime,
            "placement": {
                "nodeSelector": {label: "true"},
                "tolerations": [{"key": label, "operator": "Exists", "effect": "NoSchedule"}],
            },
            **spec,
        },
    }


def stand_in_deployment(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """An InferenceDeployment of the builtin MiniLM placed on the stand-in nodes (1 GPU, 1 CPU per pod).

    Its pods get real runtimes once a :class:`~.standins.StandInHost` runs; ``spec`` adds or replaces
    top-level spec fields (replicas, standby, batching, scaling, ...).
    """
    runtime = {"gpusPerReplica": 1, "resources": {"cpu": "1", "memory": "1Gi"}}
    return _placed_deployment(name, namespace, STAND_IN_LABEL, runtime, spec)


def real_node_deployment(name: str, namespace: str, *, cpu: str = "500m", **spec: Any) -> dict[str, Any]:
    """An InferenceDeployment of the builtin MiniLM on the real nodes: CPU pods of the runtime image.

    ``cpu`` is each pod's request and limit (the real node has this machine's cores); ``spec`` adds or
    replaces top-level spec fields; a ``runtime`` given there replaces the CPU default whole.
    """
    runtime = {"gpusPerReplica": 0, "maxWorkers": 2, "resources": {"cpu": cpu, "memory": "1536Mi"}}
    return _placed_deployment(name, namespace, REAL_NODE_LABEL, runtime, spec)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Component:
    """One running component."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int] = field(default_factory=dict)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        """Signal it and wait (SIGKILL after ``timeout_s``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, chars: int = 4000) -> str:
        """The end of its log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class Stack:
    """Installs the chart and runs components locally; :meth:`stop` ends them all."""

    def __init__(self, kubeconfig: Path, binaries: Binaries, workdir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.binaries = binaries
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.components: list[Component] = []

    def run(
        self, exe: str, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl or helm as admin."""
        argv = [str(self.binaries[exe]), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=300, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{exe} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def install(self, *sets: str) -> None:
        """Apply the CRDs and install the chart with the locally run components at zero replicas."""
        self.run("kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        crd = "crd/inferencedeployments.outrider.dev"
        self.run("kubectl", "wait", "--for=condition=Established", "--timeout=30s", crd)
        args = ["upgrade", "--install", "outrider", str(REPO / "charts" / "outrider"), "--namespace"]
        args += [RELEASE_NAMESPACE, "--create-namespace", "--set", "operator.replicas=0", "--wait"]
        for s in sets:
            args += ["--set", s]
        self.run("helm", *args)

    def account_kubeconfig(self, account: str) -> Path:
        """A kubeconfig authenticating as the chart's ServiceAccount ``account``."""
        with api_client(self.kubeconfig) as api:
            token = request_token(api, RELEASE_NAMESPACE, account)
        path = self.workdir / f"{account}.kubeconfig"
        path.write_text(yaml.safe_dump(token_kubeconfig(self.kubeconfig, token)))
        return path

    def start(
        self, name: str, account: str, argv: list[str], ports: dict[str, int] | None = None
    ) -> Component:
        """Start ``argv`` (with ``--kubeconfig`` of ``account`` appended) and check it stays up a second."""
        kubeconfig = self.account_kubeconfig(account)
        log = self.workdir / f"{name}.log"
        proc = subprocess.Popen(
            [*argv, "--kubeconfig", str(kubeconfig)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            cwd=REPO,
        )
        component = Component(name, proc, log, ports or {})
        self.components.append(component)
        time.sleep(1.0)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{component.tail()}")
        return component

    def operator(self, namespaces: list[str], resync_s: float = 3.0) -> Component:
        """The operator, watching ``namespaces``."""
        ports = {"metrics": free_port(), "health": free_port()}
        argv = [sys.executable, "-m", "outrider_operator.main", "--resync-seconds", str(resync_s)]
        argv += ["--metrics-port", str(ports["metrics"]), "--health-port", str(ports["health"])]
        for ns in namespaces:
            argv += ["--namespace", ns]
        return self.start("operator", "outrider-operator", argv, ports)

    def planner(self, name: str, namespaces: list[str], *extra: str) -> Component:
        """A planner reaching pods at their stand-in endpoints, planning ``namespaces``."""
        ports = {"metrics": free_port(), "health": free_port()}
        argv = [sys.executable, "-m", "outrider_cli", "planner", "serve", "--pod-endpoint-annotation"]
        argv += ["--metrics-port", str(ports["metrics"]), "--health-port", str(ports["health"])]
        argv += ["--bind-address", "127.0.0.1", "--lease-namespace", RELEASE_NAMESPACE, "--identity", name]
        for ns in namespaces:
            argv += ["--namespace", ns]
        return self.start(name, "outrider-planner", [*argv, *extra], ports)

    def stop(self) -> None:
        """Stop every component, newest first."""
        for c in reversed(self.components):
            c.stop()
        self.components.clear()
