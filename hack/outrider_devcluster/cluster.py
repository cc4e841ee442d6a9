"""The local cluster: start etcd, kube-apiserver, kube-controller-manager, two kube-schedulers and
KWOK as processes on 127.0.0.1, create the simulated nodes, start the real nodes (kubelet +
containerd, :mod:`.realnode`) with the images built from the Dockerfile, report status and stop it all.

Layout of the cluster folder (``.cluster/`` by default)::

    kubeconfig              admin kubeconfig (system:masters client certificate)
    pki/                    CA, apiserver serving cert, client certs, service-account key pair
    config/                 per-component kubeconfigs, scheduler configs, kwok config
    etcd/                   etcd data
    nodes/<name>/           a real node's configs, kubelet root, containerd root, pod IPAM
    logs/<component>.log    each component's output
    pids/<component>.pid    PID and start time of each process this tooling started
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .binaries import CONTROL_PLANE, NODE, Binaries, ensure_binaries, locate
from .certs import CLIENTS, Pki, make_pki
from .commands import CommandBuilder
from .configs import audit_policy, kwok_config, render_kubeconfig, scheduler_config, write_yaml
from .errors import BinaryError, ClusterError, StaleClusterError
from .images import ensure_images
from .kube import (
    admin_ssl_context,
    api_client,
    create_nodes,
    http_ok,
    publish_apiserver_endpoint,
    wait_nodes_ready,
)
from .processes import ManagedProcess, ProcessTable, check_port_free, rss_bytes
from .realnode import RealNodes, other_real_node_clusters
from .routes import RouteGuard
from .settings import ClusterSettings
from .topology import Topology

__all__ = ["COMPONENTS", "Cluster", "StatusReport"]

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-scheduler-outrider",
    "kwok",
)
"""Processes of a running cluster, in start order."""


@dataclass
class StatusReport:
    """What ``status`` found."""

    processes: dict[str, tuple[int | None, bool]] = field(default_factory=dict)
    """Component -> (pid, alive)."""
    apiserver_ready: bool = False
    """Whether /readyz answered 200."""
    nodes_ready: int = 0
    """Nodes with Ready=True."""
    nodes_total: int = 0
    """All nodes."""
    rss_bytes: int = 0
    """Summed resident memory of the live processes."""

    @property
    def healthy(self) -> bool:
        """Every component alive and the apiserver ready."""
        return (
            self.apiserver_ready
            and all(c in self.processes for c in COMPONENTS)
            and all(alive for _, alive in self.processes.values())
        )

    def lines(self) -> list[str]:
        """Human-readable report."""
        out = [f"{'component':<26}{'pid':>8}  state"]
        extra = sorted(c for c in self.processes if c not in COMPONENTS)  # real nodes, demo processes
        for component in (*COMPONENTS, *extra):
            pid, alive = self.processes.get(component, (None, False))
            out.append(f"{component:<26}{pid or '-':>8}  {'running' if alive else 'stopped'}")
        out.append(
            f"apiserver ready: {self.apiserver_ready}; nodes Ready: {self.nodes_ready}/{self.nodes_total}"
        )
        out.append(f"resident memory: {self.rss_bytes / 2**20:.0f} MiB")
        return out


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Cluster:
    """Start, inspect and stop the local cluster described by ``settings``."""

    def __init__(self, settings: ClusterSettings, *, say: Callable[[str], None] = _say) -> None:
        self.settings = settings
        self.say = say
        root = settings.cluster_dir
        self.pki = Pki(root / "pki")
        self.config_dir = root / "config"
        self.table = ProcessTable(root / "pids", root / "logs")
        self.routes = RouteGuard(root, say)
        self.real_nodes = RealNodes(settings, self.pki, self.table, self.config_dir, say)

    # ------------------------------------------------------------------ queries

    def live_processes(self) -> list[ManagedProcess]:
        """Recorded processes that still run."""
        return [p for p in self.table.recorded() if p.alive()]

    def apiserver_ready(self) -> bool:
        """True when /readyz answers 200 with the admin credentials."""
        if not self.pki.ca_cert.exists():
            return False
        return http_ok(f"{self.settings.server}/readyz", admin_ssl_context(self.pki))

    def healthy(self) -> bool:
        """Every component recorded and alive, and the apiserver ready."""
        recorded = {p.component: p for p in self.table.recorded()}
        return (
            all(c in recorded and recorded[c].alive() for c in COMPONENTS)
            and self.settings.kubeconfig.exists()
            and self.apiserver_ready()
        )

    def status(self) -> StatusReport:
        """Inspect processes, apiserver readiness and nodes."""
        report = StatusReport()
        for proc in self.table.recorded():
            alive = proc.alive()
            report.processes[proc.component] = (proc.pid, alive)
            report.rss_bytes += rss_bytes(proc.pid) if alive else 0
        report.apiserver_ready = self.apiserver_ready()
        if report.apiserver_ready:
            from kubernetes import client as k8s

            from .kube import node_ready

            with api_client(self.settings.kubeconfig) as api:
                nodes = k8s.CoreV1Api(api).list_node().items
            report.nodes_total = len(nodes)
            report.nodes_ready = sum(1 for n in nodes if node_ready(n))
        return report

    # ------------------------------------------------------------------ up

    def up(self, topology: Topology, *, build: bool = True) -> float:
        """Start the cluster (or reuse a healthy one) and create ``topology``'s nodes.

        Returns the seconds from the first process start to all nodes Ready (0 when reused).
        """
        if self._reuse_or_clean():
            self.say("==> a healthy cluster is already running; reusing it")
            self._create_nodes(topology)
            self.routes.install()
            return 0.0
        self._check_ports()
        needed = (*CONTROL_PLANE, *NODE) if self.real_nodes.nodes else CONTROL_PLANE
        cni_dir = self.real_nodes.preflight() if self.real_nodes.nodes else ""
        binaries = ensure_binaries(self.settings, needed) if build else locate(self.settings)
        missing = binaries.missing(needed)
        if missing:
            raise BinaryError(
                f"missing binaries: {', '.join(missing)}; run `make binaries` (builds them into "
                f"{self.settings.bin_cache}) or set KUBEBUILDER_ASSETS"
            )
        archives = ensure_images(self.settings, say=self.say) if self.real_nodes.nodes else {}
        started = time.monotonic()
        try:
            self._start_all(binaries)
            self._create_nodes(topology)
            self.routes.install()
            self._start_real_nodes(binaries, archives, cni_dir)
        except BaseException:
            self.say("==> start-up failed; stopping the processes started so far")
            self._stop_all()
            raise
        elapsed = time.monotonic() - started
        timings = {"up_s": round(elapsed, 2), **self.real_nodes.timings}
        (self.settings.cluster_dir / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
        nodes = topology.node_count + len(self.real_nodes.nodes)
        self.say(
            f"==> cluster ready in {elapsed:.1f}s with {nodes} nodes ({len(self.real_nodes.nodes)} real)"
        )
        self.say(f"    export KUBECONFIG={self.settings.kubeconfig}")
        return elapsed

    def _reuse_or_clean(self) -> bool:
        """True if a healthy cluster runs; clean a dead one; refuse a half-dead one."""
        recorded = self.table.recorded()
        for p in [p for p in recorded if p.component.startswith("outrider-") and not p.alive()]:
            # a demo process (operator, extender, runtime ...) that died is no part of the cluster:
            # forget it instead of calling the whole cluster half-dead
            self.say(f"==> {p.component} (pid {p.pid}) is gone; forgetting it (log: {p.log})")
            (self.table.pid_dir / f"{p.component}.pid").unlink(missing_ok=True)
            recorded.remove(p)
        alive = [p for p in recorded if p.alive()]
        if recorded and len(alive) == len(recorded) and self.healthy():
            return True
        if alive and len(alive) == len(recorded):
            raise ClusterError(
                f"the cluster processes in {self.settings.cluster_dir} run but the apiserver is not ready; "
                f"see {self.table.log_for('kube-apiserver')}, or run `make cluster-down` and start again"
            )
        if alive:
            dead = [p for p in recorded if not p.alive()]
            dead_desc = ", ".join(f"{p.component} (log: {p.log})" for p in dead) or "none"
            alive_desc = ", ".join(f"{p.component} (pid {p.pid})" for p in alive)
            raise StaleClusterError(
                f"a cluster in {self.settings.cluster_dir} is only partly running: alive {alive_desc}; "
                f"stopped {dead_desc}; run `make cluster-down` and then `make cluster-up`"
            )
        root = self.settings.cluster_dir
        leftovers = [root / d for d in ("pids", "etcd", "pki", "config", "kubeconfig") if (root / d).exists()]
        if leftovers:
            self.say(f"==> removing a stale cluster folder left by an earlier run (no process alive): {root}")
            self._wipe(keep_logs=True)
        return False

    def _check_ports(self) -> None:
        for component, ports in self.settings.ports.by_component().items():
            for port in ports:
                check_port_free(component, port)

    def _start_all(self, binaries: Binaries) -> None:
        s = self.settings
        p = s.ports
        self._rotate_logs()
        self.say(f"==> cluster folder {s.cluster_dir}")
        pki = make_pki(self.pki.folder)
        cmd = CommandBuilder(s, pki, self.config_dir)
        for client in CLIENTS:
            write_yaml(cmd.kubeconfig(client), render_kubeconfig(s, pki, client))
        shutil.copyfile(cmd.kubeconfig("admin"), s.kubeconfig)
        sched_kubeconfig = cmd.kubeconfig("kube-scheduler")
        configs = {
            "kube-scheduler": scheduler_config(sched_kubeconfig, "default-scheduler", None),
            "kube-scheduler-outrider": scheduler_config(sched_kubeconfig, "outrider", s.extender_url),
        }
        kwok_cfg = write_yaml(self.config_dir / "kwok.yaml", *kwok_config(s))
        write_yaml(self.config_dir / "audit-policy.yaml", audit_policy())

        etcd = self.table.start("etcd", cmd.etcd(binaries["etcd"]))
        self._wait("etcd", etcd, lambda: http_ok(f"{cmd.etcd_url}/health"))
        apiserver = self.table.start("kube-apiserver", cmd.apiserver(binaries["kube-apiserver"]))
        ctx = admin_ssl_context(pki)
        self._wait("kube-apiserver", apiserver, lambda: http_ok(f"{s.server}/readyz", ctx))

        waits: list[tuple[str, ManagedProcess, str]] = []
        cm = self.table.start(
            "kube-controller-manager", cmd.controller_manager(binaries["kube-controller-manager"])
        )
        waits.append(("kube-controller-manager", cm, f"https://127.0.0.1:{p.controller_manager}/healthz"))
        for name, port in (
            ("kube-scheduler", p.scheduler_default),
            ("kube-scheduler-outrider", p.scheduler_outrider),
        ):
            config = write_yaml(self.config_dir / f"{name}.yaml", configs[name])
            proc = self.table.start(name, cmd.scheduler(binaries["kube-scheduler"], name, config, port))
            waits.append((name, proc, f"https://127.0.0.1:{port}/healthz"))
        kwok = self.table.start("kwok", cmd.kwok(binaries["kwok"], kwok_cfg))
        waits.append(("kwok", kwok, f"http://127.0.0.1:{p.kwok}/healthz"))
        for name, proc, url in waits:
            self._wait(name, proc, lambda url=url: http_ok(url))  # type: ignore[misc]

    def _wait(self, component: str, proc: ManagedProcess, probe: Callable[[], bool]) -> None:
        waited = proc.wait_until(probe, self.settings.ready_timeout_s, "did not become ready", every_s=0.2)
        self.say(f"    ok  {component} (pid {proc.pid}) ready in {waited:.1f}s")

    def _create_nodes(self, topology: Topology) -> None:
        nodes = topology.nodes()
        self.say(f"==> creating {len(nodes)} simulated nodes")
        procs = self.live_processes()

        def check() -> None:
            for proc in procs:
                proc.ensure_running()

        with api_client(self.settings.kubeconfig) as api:
            created = create_nodes(
                api, nodes, progress=lambda d, t: self.say(f"    ... {d}/{t} nodes created")
            )
            try:
                waited = wait_nodes_ready(
                    api,
                    [n["metadata"]["name"] for n in nodes],
                    timeout_s=max(60.0, len(nodes) * 0.2),
                    check=check,
                )
            except TimeoutError as exc:
                raise ClusterError(f"kwok: {exc}; see its log: {self.table.log_for('kwok')}") from exc
        self.say(f"    ok  {created} nodes created, all {len(nodes)} Ready after {waited:.1f}s")

    def _start_real_nodes(self, binaries: Binaries, archives: dict[str, Path], cni_dir: str) -> None:
        if not self.real_nodes.nodes:
            return
        names = [n.name for n in self.real_nodes.nodes]
        self.say(f"==> starting {len(names)} real node(s): {', '.join(names)} (kubelet + containerd + runc)")
        started = time.monotonic()
        self.real_nodes.start(binaries, archives, cni_dir)
        with api_client(self.settings.kubeconfig) as api:
            try:
                wait_nodes_ready(api, names, timeout_s=90.0, check=self.real_nodes.check_running)
            except TimeoutError as exc:
                logs = ", ".join(str(self.table.log_for(f"kubelet-{n}")) for n in names)
                raise ClusterError(f"real nodes: {exc}; see the kubelet log(s): {logs}") from exc
            publish_apiserver_endpoint(api, self.settings.ports.apiserver)
        elapsed = time.monotonic() - started
        self.real_nodes.timings["real nodes Ready"] = round(elapsed, 2)
        self.say(f"    ok  {len(names)} real node(s) Ready after {elapsed:.1f}s")

    # ------------------------------------------------------------------ down

    def down(self, *, keep_data: bool = False) -> list[str]:
        """Stop every recorded process (only those, by PID) and remove the cluster state, and the
        unreachable routes unless another live cluster holds them."""
        stopped = self._stop_all()
        self.routes.remove()
        if stopped:
            self.say(f"==> stopped: {', '.join(stopped)}")
        else:
            self.say("==> no cluster process was running")
        if not keep_data:
            self._wipe(keep_logs=True)
        return stopped

    def _stop_all(self) -> list[str]:
        stopped = self.real_nodes.stop(last_cluster=not other_real_node_clusters(self.settings.cluster_dir))
        order = {name: i for i, name in enumerate(COMPONENTS)}
        recorded = sorted(
            self.table.recorded(), key=lambda p: order.get(p.component, len(order)), reverse=True
        )
        for proc in recorded:
            if proc.stop():
                stopped.append(f"{proc.component} (pid {proc.pid})")
            self.table.forget(proc.component)
        return stopped

    def _wipe(self, *, keep_logs: bool) -> None:
        root = self.settings.cluster_dir
        if not root.exists():
            return
        for child in root.iterdir():
            if keep_logs and child.name == "logs":
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _rotate_logs(self) -> None:
        log_dir = self.table.log_dir
        if not log_dir.exists():
            return
        for log in log_dir.glob("*.log"):
            log.replace(log.with_suffix(".log.1"))
