"""Session fixture ``cluster``: a real local control plane with simulated GPU nodes.

It reuses a healthy cluster started by ``make cluster-up`` (and leaves it running), or starts one
from ``hack/cluster-topology.yaml`` and stops it when the session ends. Missing binaries fail the
session in CI (``CI=true``) and skip it elsewhere, with a message saying how to get them
(``make binaries``; set ``OUTRIDER_E2E_BUILD=1`` to let the fixture build them itself).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s

from outrider_devcluster import Binaries, Cluster, ClusterSettings, DevClusterError, ensure_binaries, locate
from outrider_devcluster.binaries import ALL_BINARIES
from outrider_devcluster.kube import api_client, request_token
from outrider_devcluster.topology import Topology, load_topology


@dataclass
class LocalCluster:
    """Handle on the running cluster given to e2e tests."""

    settings: ClusterSettings
    binaries: Binaries
    topology: Topology
    started_here: bool

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (system:masters)."""
        return self.settings.kubeconfig

    @property
    def server(self) -> str:
        """kube-apiserver URL."""
        return self.settings.server

    @property
    def ca_cert(self) -> Path:
        """Cluster CA certificate (to verify the apiserver)."""
        return self.settings.cluster_dir / "pki" / "ca.crt"

    def bin(self, name: str) -> Path:
        """Path of a binary: etcd, kube-apiserver, ..., kubectl, helm."""
        return self.binaries[name]

    def _run(
        self, exe: str, args: tuple[str, ...], check: bool, input: str | None
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin(exe)), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=240, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{exe} {' '.join(args)} failed with status {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the cluster as admin."""
        return self._run("kubectl", args, check, input)

    def helm(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run helm against the cluster as admin."""
        return self._run("helm", args, check, input)

    def api_client(self) -> k8s.ApiClient:
        """A new admin ApiClient (close it, or use it as a context manager)."""
        return api_client(self.kubeconfig)

    def make_token(self, namespace: str, service_account: str) -> str:
        """A bound token for ``namespace/service_account`` (TokenRequest API)."""
        with self.api_client() as api:
            return request_token(api, namespace, service_account)

    def token_client(self, token: str) -> k8s.ApiClient:
        """An ApiClient that authenticates with a bearer token instead of the admin certificate."""
        configuration = k8s.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_cert)
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return k8s.ApiClient(configuration)


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"local cluster unavailable in CI: {message}", pytrace=False)
    pytest.skip(f"local cluster unavailable: {message}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """The local cluster (reused when already healthy, else started for this session)."""
    settings = ClusterSettings.from_env()
    try:
        if os.environ.get("OUTRIDER_E2E_BUILD") == "1":
            binaries = ensure_binaries(settings)
        else:
            binaries = locate(settings)
    except DevClusterError as exc:
        _unavailable(str(exc))
        raise
    missing = binaries.missing(ALL_BINARIES)
    if missing:
        _unavailable(
            f"binaries not found: {', '.join(missing)}; run `make binaries` (builds them once into "
            f"{settings.bin_cache}) or set KUBEBUILDER_ASSETS"
        )
    topology = load_topology()
    handle = Cluster(settings)
    reuse = handle.healthy()
    if not reuse:
        try:
            handle.up(topology, build=False)
        except DevClusterError as exc:
            pytest.fail(f"local cluster failed to start: {exc}", pytrace=False)
    yield LocalCluster(settings, binaries, topology, started_here=not reuse)
    if not reuse:
        handle.down()
