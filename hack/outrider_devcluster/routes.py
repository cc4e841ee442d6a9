"""``unreachable`` routes for the cluster's made-up address ranges, so stray traffic never leaves.

KWOK pods get invented IPs (:data:`~.settings.POD_CIDR`) and Services get ClusterIPs
(:data:`~.settings.SERVICE_CIDR`) that nothing on this machine answers; without a route of their
own, a connection to one of them follows the default route out of the machine. ``ip route replace
unreachable CIDR`` makes such a connect fail at once with EHOSTUNREACH. Real nodes' bridge subnets
get more specific routes of their own, which win over these.

Routes are machine-wide while clusters are per folder, so a cluster records itself as a holder in
:data:`REGISTRY`; ``remove`` deletes the routes only when no other live cluster holds them (the
e2e fault tests start and stop clusters of their own beside the shared one). Without root, or
without the ``ip`` command, nothing is installed and a message says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .processes import ProcessTable
from .settings import POD_CIDR, REAL_POD_CIDR, SERVICE_CIDR

__all__ = ["REGISTRY", "UNREACHABLE_CIDRS", "RouteGuard", "unreachable_routes"]

UNREACHABLE_CIDRS = (SERVICE_CIDR, POD_CIDR, REAL_POD_CIDR)
"""Ranges that get an ``unreachable`` route while a cluster runs."""
REGISTRY = Path("/run/outrider-devcluster/routes")
"""One file per cluster folder holding the routes (content: the folder's path)."""


def _ip() -> str | None:
    return shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if Path(p).is_file()), None
    )


def unreachable_routes() -> set[str]:
    """The destinations of the ``unreachable`` routes in the main table (empty without ``ip``)."""
    ip = _ip()
    if ip is None:
        return set()
    out = subprocess.run(
        [ip, "route", "show", "type", "unreachable"], capture_output=True, text=True, check=False
    ).stdout
    # lines read "unreachable 10.96.0.0/16 ..." (the type first, then the destination)
    return {words[1] for words in map(str.split, out.splitlines()) if len(words) > 1}


class RouteGuard:
    """Installs and removes the unreachable routes on behalf of one cluster folder."""

    def __init__(
        self,
        cluster_dir: Path,
        say: Callable[[str], None],
        *,
        cidrs: tuple[str, ...] = UNREACHABLE_CIDRS,
        registry: Path = REGISTRY,
    ) -> None:
        self.cluster_dir = cluster_dir.resolve()
        self.say = say
        self.cidrs = cidrs
        self.registry = registry
        digest = hashlib.sha256(str(self.cluster_dir).encode()).hexdigest()[:16]
        self.holder = registry / digest

    def _unusable(self) -> str | None:
        if _ip() is None:
            return "the `ip` command is missing"
        if os.geteuid() != 0:
            return "not running as root"
        return None

    def install(self) -> bool:
        """Install (or refresh) the routes and record this cluster as a holder; False if impossible."""
        why = self._unusable()
        if why:
            self.say(
                f"==> {why}: no unreachable routes for {', '.join(self.cidrs)}; a connection to a KWOK pod "
                "IP or a ClusterIP would leave this machine, so never make one"
            )
            return False
        ip = _ip()
        assert ip is not None
        for cidr in self.cidrs:
            proc = subprocess.run(
                [ip, "route", "replace", "unreachable", cidr], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                self.say(f"==> could not add `unreachable {cidr}`: {proc.stderr.strip()}; going on without")
                return False
        self.registry.mkdir(parents=True, exist_ok=True)
        self.holder.write_text(f"{self.cluster_dir}\n")
        self.say(f"    ok  unreachable routes for {', '.join(self.cidrs)} (stray traffic fails at once)")
        return True

    def _other_live_holders(self) -> list[Path]:
        live = []
        for entry in self.registry.glob("*") if self.registry.is_dir() else []:
            if entry == self.holder:
                continue
            try:
                folder = Path(entry.read_text().strip())
            except OSError:
                continue
            table = ProcessTable(folder / "pids", folder / "logs")
            if any(p.alive() for p in table.recorded()):
                live.append(folder)
            else:
                entry.unlink(missing_ok=True)  # that cluster is gone without `down`
        return live

    def remove(self) -> bool:
        """Drop this cluster's hold; delete the routes unless another live cluster holds them.

        Returns True when routes were deleted. A folder that never installed them does nothing.
        """
        if not self.holder.exists():
            return False
        self.holder.unlink(missing_ok=True)
        others = self._other_live_holders()
        if others:
            self.say(f"==> unreachable routes kept: still held by {', '.join(map(str, others))}")
            return False
        ip = _ip()
        if ip is None or os.geteuid() != 0:
            return False
        present = unreachable_routes()
        for cidr in self.cidrs:
            if cidr in present:
                subprocess.run([ip, "route", "del", "unreachable", cidr], capture_output=True, check=False)
        self.say(f"==> removed the unreachable routes for {', '.join(self.cidrs)}")
        return True
