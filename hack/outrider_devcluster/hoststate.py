"""Host settings real nodes change, saved before the first one starts and restored after the last.

A kubelet sets kernel tunables (``vm.overcommit_memory=1``, ``kernel.panic=10`` ...), the bridge
plugin turns on IP forwarding, kube-proxy ``route_localnet``; kubelet and kube-proxy add iptables
chains (``KUBE-*``) that ``kube-proxy --cleanup`` does not all remove; pods leave network namespaces,
mounts and cgroups behind when their node is stopped without draining. :class:`HostState` records
the values before any real node starts (once for all clusters, in :data:`STATE_FILE`) and puts
everything back when the last real node stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "SYSCTLS",
    "HostState",
    "cgroup_pids",
    "kill_cgroup_processes",
    "remove_cgroups",
    "remove_iptables_chains",
    "remove_unused_netns",
    "unmount_under",
]

SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
)
"""Tunables a real node may change; each is restored to its value before the first node."""
STATE_FILE = Path("/run/outrider-devcluster/host-state.json")
"""The saved values (present while real nodes may have changed them)."""
_CHAIN_PREFIXES = ("KUBE-", "CNI-")
_CGROUP_FS = Path("/sys/fs/cgroup")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls(names: Iterable[str] = SYSCTLS) -> dict[str, str]:
    """Current values of the tunables that exist on this kernel."""
    values = {}
    for name in names:
        with contextlib.suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def write_sysctl(name: str, value: str) -> bool:
    """Set one tunable; False when the kernel refuses."""
    try:
        _sysctl_path(name).write_text(value + "\n")
    except OSError:
        return False
    return True


class HostState:
    """Saves the tunables once and restores them (plus iptables) when no real node is left."""

    def __init__(self, say: Callable[[str], None], state_file: Path = STATE_FILE) -> None:
        self.say = say
        self.state_file = state_file

    def save(self) -> None:
        """Record the tunables unless an earlier (still unrestored) run already did."""
        if self.state_file.exists():
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"sysctl": read_sysctls()}, indent=2) + "\n")

    def restore(self) -> list[str]:
        """Put the recorded tunables back and drop Kubernetes' iptables chains; return what changed."""
        changed: list[str] = []
        try:
            saved = json.loads(self.state_file.read_text())
        except (OSError, json.JSONDecodeError):
            saved = None
        if saved is not None:
            now = read_sysctls(saved.get("sysctl", {}))
            for name, value in saved.get("sysctl", {}).items():
                if now.get(name) != value and write_sysctl(name, value):
                    changed.append(f"{name}={value}")
            self.state_file.unlink(missing_ok=True)
        changed += remove_iptables_chains()
        return changed


def remove_iptables_chains(prefixes: tuple[str, ...] = _CHAIN_PREFIXES) -> list[str]:
    """Delete every chain named ``KUBE-*``/``CNI-*`` and every rule that jumps to one.

    Each table is saved, filtered and restored as a whole (one atomic replace), so rules of others
    stay untouched. Returns ``"<command> <table>: N lines"`` per table that changed.
    """
    changed = []
    for command in ("iptables", "ip6tables"):
        save, restore = shutil.which(f"{command}-save"), shutil.which(f"{command}-restore")
        if not save or not restore:
            continue
        for table in ("filter", "nat", "mangle"):
            proc = subprocess.run([save, "-t", table], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                continue
            lines = proc.stdout.splitlines()
            kept = [line for line in lines if not any(p in line for p in prefixes)]
            if len(kept) == len(lines):
                continue
            done = subprocess.run(
                [restore, "-T", table],
                input="\n".join(kept) + "\n",
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0:
                changed.append(f"{command} {table}: {len(lines) - len(kept)} lines")
    return changed


def _mount_points() -> list[str]:
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.append(fields[4].encode().decode("unicode_escape"))
    return points


def unmount_under(folders: Iterable[Path]) -> int:
    """Lazily unmount every mount point inside ``folders`` (deepest first); return the count."""
    roots = [str(f.resolve()) for f in folders]
    inside = [m for m in _mount_points() if any(m == r or m.startswith(r + "/") for r in roots)]
    umount = shutil.which("umount") or "/bin/umount"
    count = 0
    for point in sorted(set(inside), key=len, reverse=True):
        if subprocess.run([umount, "-l", point], capture_output=True, check=False).returncode == 0:
            count += 1
    return count


def _cgroup_dirs(root: str) -> list[Path]:
    """The folder of cgroup ``root`` in every mounted v1 hierarchy (and the v2 one, if any)."""
    rel = root.strip("/")
    if not rel or not _CGROUP_FS.is_dir():
        return []
    return [h / rel for h in _CGROUP_FS.iterdir() if (h / rel).is_dir()]


def cgroup_pids(root: str) -> set[int]:
    """Every process inside cgroup ``root`` and below it, in any hierarchy (a node's pods)."""
    pids: set[int] = set()
    for folder in _cgroup_dirs(root):
        for procs in folder.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def kill_cgroup_processes(root: str, timeout_s: float = 5.0) -> int:
    """SIGKILL every process inside cgroup ``root`` (a node's pods); return how many were found."""
    pids = cgroup_pids(root)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.05)
    return len(pids)


def remove_cgroups(root: str) -> int:
    """Remove cgroup ``root`` and everything below it in every hierarchy; return folders removed."""
    removed = 0
    for folder in _cgroup_dirs(root):
        for sub in sorted(
            (p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            with contextlib.suppress(OSError):
                sub.rmdir()
                removed += 1
        with contextlib.suppress(OSError):
            folder.rmdir()
            removed += 1
    return removed


def remove_unused_netns(prefix: str = "cni-") -> int:
    """Remove named network namespaces ``/run/netns/<prefix>*`` that no process uses any more."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return 0
    in_use: set[int] = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                in_use.add(os.stat(proc / "ns" / "net").st_ino)
    umount = shutil.which("umount") or "/bin/umount"
    removed = 0
    for entry in netns_dir.glob(f"{prefix}*"):
        try:
            inode = entry.stat().st_ino
        except OSError:
            continue
        if inode in in_use:
            continue
        subprocess.run([umount, "-l", str(entry)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            entry.unlink()
            removed += 1
    return removed
