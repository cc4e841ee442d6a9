"""Real nodes: containerd + runc + bridge CNI + kubelet per node, one kube-proxy, on this machine.

``start`` checks the tools, records the host settings it will change (:mod:`.hoststate`), gives
each node an address of its own on :data:`NODE_ADDRESS_IF`, starts its containerd, imports the
images, starts its kubelet, then kube-proxy, and waits for the nodes to be Ready. Every failure
names its step and the log to read. ``stop`` kills the nodes' pods (by cgroup) and shims, stops the
processes, unmounts what pods left, removes bridges, network namespaces, cgroups and CNI cache
entries, the nodes' addresses and, when no other cluster runs real nodes, the iptables chains and
the saved tunables.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .binaries import Binaries
from .certs import Pki, node_client
from .configs import render_kubeconfig, write_yaml
from .errors import ClusterError
from .hoststate import (
    HostState,
    kill_cgroup_processes,
    remove_cgroups,
    remove_unused_netns,
    unmount_under,
    write_sysctl,
)
from .nodeconfig import (
    CNI_BIN_DIRS,
    REAL_NODE_LABEL,
    RUN_ROOT,
    NodeLayout,
    cni_json,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
    node_layouts,
)
from .processes import ManagedProcess, ProcessTable
from .settings import APISERVER_POD_ADDRESS, ClusterSettings

__all__ = ["NODE_ADDRESS_IF", "RealNodes", "other_real_node_clusters", "shim_pids"]

NODE_ADDRESS_IF = "lo"
"""Interface holding the real nodes' own addresses (10.245.255.N/32): local, reachable only from
this machine (this kernel has no dummy interfaces)."""
_CNI_PLUGINS = ("bridge", "host-local", "loopback")
_CNI_CACHE = Path("/var/lib/cni/results")


def _ip() -> str:
    return shutil.which("ip") or "/usr/sbin/ip"


class RealNodes:
    """Starts and stops the real nodes of one cluster."""

    def __init__(
        self,
        settings: ClusterSettings,
        pki: Pki,
        table: ProcessTable,
        config_dir: Path,
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.pki = pki
        self.table = table
        self.config_dir = config_dir
        self.say = say
        self.nodes = node_layouts(settings)
        self.host = HostState(say)
        self.timings: dict[str, float] = {}
        """Seconds of the last start's steps: ``<node> import <image>``, ``<node> containerd``."""

    # ------------------------------------------------------------------ checks

    def preflight(self) -> str:
        """Check the tools real nodes need; return the CNI plugin folder. Raises ClusterError."""
        if os.geteuid() != 0:
            raise ClusterError(
                "real nodes need root (a kubelet, containerd, bridges, iptables); run as root, or set "
                "OUTRIDER_REAL_NODES=0 for a cluster of simulated nodes only"
            )
        missing = [
            f"{cmd} (package {pkg})"
            for cmd, pkg in (
                ("containerd", "containerd"),
                ("ctr", "containerd"),
                ("runc", "runc"),
                ("iptables", "iptables"),
                ("buildah", "buildah"),
                ("socat", "socat"),
            )
            if not shutil.which(cmd)
        ]
        cni_dir = next((d for d in CNI_BIN_DIRS if all((Path(d) / p).is_file() for p in _CNI_PLUGINS)), None)
        if cni_dir is None:
            missing.append(f"CNI plugins {', '.join(_CNI_PLUGINS)} in {' or '.join(CNI_BIN_DIRS)} "
                           "(package containernetworking-plugins)")  # fmt: skip
        if missing or cni_dir is None:
            raise ClusterError(
                "real nodes: missing " + "; ".join(missing) + ". Run `make setup-system` (root), or set "
                "OUTRIDER_REAL_NODES=0 for a cluster of simulated nodes only"
            )
        if not Path("/proc/sys/net/bridge").is_dir():
            raise ClusterError(
                "real nodes: the kernel has no bridge netfilter (br_netfilter); pods' Services would not work"
            )
        return cni_dir

    # ------------------------------------------------------------------ start

    def start(self, binaries: Binaries, archives: dict[str, Path], cni_dir: str) -> None:
        """Start every real node and kube-proxy, and import ``archives`` into each node."""
        if not self.nodes:
            return
        self.host.save()
        self._host_network()
        for node in self.nodes:
            started = time.monotonic()
            self._write_configs(node, cni_dir)
            containerd = self.table.start(
                f"containerd-{node.name}", ["containerd", "--config", str(node.folder / "containerd.toml")]
            )
            containerd.wait_until(self._ctr_probe(node), self.settings.ready_timeout_s, "did not answer")
            self.timings[f"{node.name} containerd"] = round(time.monotonic() - started, 2)
            self._import(node, archives)
            self._make_cgroup_root(node)
            self.table.start(f"kubelet-{node.name}", self._kubelet_argv(node, binaries["kubelet"]))
            self.say(
                f"    ok  {node.name}: containerd and kubelet started ({time.monotonic() - started:.1f}s)"
            )
        proxy_config = write_yaml(
            self.config_dir / "kube-proxy.yaml",
            kube_proxy_config(self.config_dir / "kube-proxy.kubeconfig", self.nodes[0].name),
        )
        write_yaml(
            self.config_dir / "kube-proxy.kubeconfig",
            render_kubeconfig(self.settings, self.pki, "kube-proxy"),
        )
        self.table.start("kube-proxy", [str(binaries["kube-proxy"]), f"--config={proxy_config}", "--v=1"])
        port = self.settings.ports.apiserver
        self.table.start(
            "apiserver-forwarder",
            [
                "socat",
                f"TCP-LISTEN:{port},bind={APISERVER_POD_ADDRESS},reuseaddr,fork",
                f"TCP:127.0.0.1:{port}",
            ],
        )

    def _host_network(self) -> None:
        ip = _ip()
        for address in [n.node_ip for n in self.nodes] + [APISERVER_POD_ADDRESS]:
            self._run_or_fail(
                "add an address", [ip, "addr", "replace", f"{address}/32", "dev", NODE_ADDRESS_IF]
            )
        for name in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
            if not write_sysctl(name, "1"):
                raise ClusterError(f"real nodes: could not set {name}=1 (are you root?)")

    def _run_or_fail(self, step: str, args: list[str]) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ClusterError(f"real nodes: {step}: `{' '.join(args)}` failed: {proc.stderr.strip()}")

    def _write_configs(self, node: NodeLayout, cni_dir: str) -> None:
        for folder in (node.folder / "cni", node.folder / "ipam", node.folder / "kubelet", node.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        (node.folder / "containerd.toml").write_text(containerd_config(node, cni_dir))
        (node.folder / "cni" / "10-outrider.conflist").write_text(cni_json(node))
        write_yaml(node.folder / "kubelet.yaml", kubelet_config(node, self.pki.ca_cert))
        client = node_client(self.pki, node.name)
        write_yaml(node.folder / "kubelet.kubeconfig", render_kubeconfig(self.settings, self.pki, client))

    def _kubelet_argv(self, node: NodeLayout, kubelet: Path) -> list[str]:
        return [
            str(kubelet),
            f"--config={node.folder / 'kubelet.yaml'}",
            f"--kubeconfig={node.folder / 'kubelet.kubeconfig'}",
            f"--hostname-override={node.name}",
            f"--node-ip={node.node_ip}",
            f"--root-dir={node.folder / 'kubelet'}",
            f"--cert-dir={node.folder / 'pki'}",
            f"--node-labels={REAL_NODE_LABEL}=true",
            "--v=1",
        ]

    def _make_cgroup_root(self, node: NodeLayout) -> None:
        """The kubelet refuses a cgroupRoot that does not exist; cpuset children need cpus and mems."""
        base = Path("/sys/fs/cgroup")
        for hierarchy in base.iterdir() if base.is_dir() else []:
            if not (hierarchy / "cgroup.procs").exists():
                continue
            folder = hierarchy / node.cgroup_root.strip("/")
            with contextlib.suppress(OSError):
                folder.mkdir(exist_ok=True)
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if (folder / knob).exists() and not (folder / knob).read_text().strip():
                        (folder / knob).write_text((hierarchy / knob).read_text())

    def _ctr_probe(self, node: NodeLayout) -> Callable[[], bool]:
        return lambda: self._ctr(node, "version", timeout_s=5).returncode == 0

    def _ctr(self, node: NodeLayout, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(node.containerd_socket), "--namespace", "k8s.io", *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout_s:.0f}s")

    def _import(self, node: NodeLayout, archives: dict[str, Path]) -> None:
        """Import the archives into the node's containerd, all at once (the imports overlap)."""

        def one(key: str, archive: Path) -> tuple[str, float, subprocess.CompletedProcess[str]]:
            started = time.monotonic()
            proc = self._ctr(node, "images", "import", str(archive))
            return key, time.monotonic() - started, proc

        with ThreadPoolExecutor(max_workers=max(1, len(archives))) as pool:
            results = list(pool.map(lambda item: one(*item), archives.items()))
        for key, elapsed, proc in results:
            if proc.returncode != 0:
                raise ClusterError(
                    f"real nodes: importing the {key} image into {node.name} failed: "
                    f"{proc.stderr.strip()[-400:]} "
                    f"(containerd log: {self.table.log_for(f'containerd-{node.name}')})"
                )
            self.timings[f"{node.name} import {key}"] = round(elapsed, 2)
            self.say(f"    ok  {node.name}: imported the {key} image ({elapsed:.1f}s)")

    def import_images(self, archives: dict[str, Path]) -> None:
        """Import image archives into every running real node (images built after ``up``)."""
        for node in self.nodes:
            self._import(node, archives)

    def check_running(self) -> None:
        """Raise ComponentExitedError (with the log) when a real node's process died."""
        recorded = {p.component: p for p in self.table.recorded()}
        for node in self.nodes:
            for component in (f"containerd-{node.name}", f"kubelet-{node.name}"):
                if component in recorded:
                    recorded[component].ensure_running()

    # ------------------------------------------------------------------ stop

    def stop(self, *, last_cluster: bool) -> list[str]:
        """Stop the nodes and clean what they left; restore the host when ``last_cluster``."""
        stopped: list[str] = []
        recorded = {p.component: p for p in self.table.recorded()}
        layouts = self.nodes or self._recorded_layouts(recorded)
        for node in layouts:
            kubelet = recorded.get(f"kubelet-{node.name}")
            if kubelet is not None and kubelet.stop():
                stopped.append(f"kubelet-{node.name} (pid {kubelet.pid})")
            self.table.forget(f"kubelet-{node.name}")
            killed = kill_cgroup_processes(node.cgroup_root)
            self._kill_shims(node)
            containerd = recorded.get(f"containerd-{node.name}")
            if containerd is not None and containerd.stop():
                stopped.append(
                    f"containerd-{node.name} (pid {containerd.pid}; {killed} pod processes killed)"
                )
            self.table.forget(f"containerd-{node.name}")
            unmount_under([node.folder, node.run_dir])
            subprocess.run([_ip(), "link", "del", node.bridge], capture_output=True, check=False)
            address = [_ip(), "addr", "del", f"{node.node_ip}/32", "dev", NODE_ADDRESS_IF]
            subprocess.run(address, capture_output=True, check=False)
            remove_cgroups(node.cgroup_root)
            self._drop_cni_cache(node)
            shutil.rmtree(node.run_dir, ignore_errors=True)
        for component in ("kube-proxy", "apiserver-forwarder"):
            proc = recorded.get(component)
            if proc is not None and proc.stop():
                stopped.append(f"{component} (pid {proc.pid})")
            self.table.forget(component)
        if not layouts and not self.host.state_file.exists():
            return stopped  # this cluster never ran a real node: nothing of the host to put back
        remove_unused_netns()
        if layouts:
            with contextlib.suppress(OSError):
                layouts[0].run_dir.parent.rmdir()
        if last_cluster:
            address = [_ip(), "addr", "del", f"{APISERVER_POD_ADDRESS}/32", "dev", NODE_ADDRESS_IF]
            subprocess.run(address, capture_output=True, check=False)
            changed = self.host.restore()
            if changed:
                self.say(f"==> host settings restored: {', '.join(changed)}")
        return stopped

    def _drop_cni_cache(self, node: NodeLayout) -> None:
        """Remove the CNI result cache entries of the node's sandboxes (its bridge and loopback)."""
        if not _CNI_CACHE.is_dir():
            return
        sandboxes = node.folder / "containerd" / "io.containerd.grpc.v1.cri" / "sandboxes"
        ids = {d.name for d in sandboxes.iterdir()} if sandboxes.is_dir() else set()
        for entry in _CNI_CACHE.iterdir():
            if entry.name.startswith(f"{node.network_name}-") or any(f"-{i}-" in entry.name for i in ids):
                entry.unlink(missing_ok=True)

    def _recorded_layouts(self, recorded: dict[str, ManagedProcess]) -> list[NodeLayout]:
        """Layouts of the nodes a run with other settings started (found by their PID files)."""
        indices = sorted(
            int(c.rsplit("-", 1)[1])
            for c in recorded
            if c.startswith("kubelet-real-") and c.rsplit("-", 1)[1].isdigit()
        )
        return [NodeLayout(i, self.settings.cluster_dir) for i in indices]

    def _kill_shims(self, node: NodeLayout) -> None:
        """SIGKILL the containerd shims of ``node`` (they outlive containerd by design)."""
        for pid in shim_pids(node):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def shim_pids(node: NodeLayout) -> list[int]:
    """PIDs of the containerd shims serving ``node``'s pods (found by its containerd socket)."""
    needle = str(node.containerd_socket).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and needle in cmdline:
            pids.append(int(proc.name))
    return pids


def other_real_node_clusters(own: Path) -> bool:
    """True when another cluster folder's real nodes have runtime state under :data:`RUN_ROOT`."""
    if not RUN_ROOT.is_dir():
        return False
    own_digest = NodeLayout(0, own).run_dir.parent.name
    return any(
        d.is_dir() and d.name != own_digest and any(d.iterdir())
        for d in RUN_ROOT.iterdir()
        if len(d.name) == 12
    )
