"""Session fixture ``cluster``: a real local control plane with simulated GPU nodes.

It reuses a healthy cluster started by ``make cluster-up`` (and leaves it running), or starts one
from ``hack/cluster-topology.yaml`` and stops it when the session ends. With
``OUTRIDER_E2E_KUBECONFIG`` set it targets that cluster instead (kind, for example; see
docs/local-cluster.md) and starts nothing. Missing binaries fail the
session in CI (``CI=true``) and skip it elsewhere, with a message saying how to get them
(``make binaries``; set ``OUTRIDER_E2E_BUILD=1`` to let the fixture build them itself).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from outrider_devcluster import Binaries, Cluster, ClusterSettings, DevClusterError, ensure_binaries, locate
from outrider_devcluster.binaries import ALL_BINARIES
from outrider_devcluster.kube import api_client, request_token
from outrider_devcluster.nodeconfig import REAL_NODE_LABEL
from outrider_devcluster.release import LocalKube
from outrider_devcluster.topology import Topology, load_topology


@dataclass
class LocalCluster:
    """Handle on the running cluster given to e2e tests."""

    settings: ClusterSettings
    binaries: Binaries
    topology: Topology
    started_here: bool
    kubeconfig: Path
    """Admin kubeconfig (system:masters)."""

    @property
    def server(self) -> str:
        """kube-apiserver URL."""
        with self.api_client() as api:
            return str(api.configuration.host)

    def bin(self, name: str) -> Path:
        """Path of a binary: etcd, kube-apiserver, ..., kubectl, helm."""
        return self.binaries[name]

    @property
    def kube(self) -> LocalKube:
        """kubectl and helm as admin (a failed command is an AssertionError: the test fails)."""
        return LocalKube(self.binaries, self.kubeconfig, timeout_s=240.0, error=AssertionError)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the cluster as admin."""
        return self.kube.kubectl(*args, check=check, input=input)

    def helm(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run helm against the cluster as admin."""
        return self.kube.helm(*args, check=check, input=input)

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
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        configuration.cert_file = None
        configuration.key_file = None
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
    external = os.environ.get("OUTRIDER_E2E_KUBECONFIG")
    if external:
        yield _external(settings, Path(external))
        return
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
    extras = sorted(p.stem for p in (settings.cluster_dir / "pids").glob("outrider-*.pid"))
    if reuse and extras:
        # `make demo` leaves its operator, extender and forecaster running: they would act on the
        # tests' objects and hold the extender's port, so the results would not be the code's.
        pytest.fail(
            f"the local cluster is running with demo processes ({', '.join(extras)}); "
            "run `make cluster-down` first, then the tests start their own cluster",
            pytrace=False,
        )
    if not reuse:
        try:
            handle.up(topology, build=False)
        except DevClusterError as exc:
            pytest.fail(f"local cluster failed to start: {exc}", pytrace=False)
    yield LocalCluster(settings, binaries, topology, started_here=not reuse, kubeconfig=settings.kubeconfig)
    if not reuse:
        handle.down()


def _external(settings: ClusterSettings, kubeconfig: Path) -> LocalCluster:
    """A cluster this session did not start (kind, ...): kubectl and helm only, nodes as they are."""
    if not kubeconfig.is_file():
        _unavailable(f"OUTRIDER_E2E_KUBECONFIG={kubeconfig} is not a file")
    binaries = locate(settings)
    missing = binaries.missing(("kubectl", "helm"))
    if missing:
        _unavailable(
            f"binaries not found: {', '.join(missing)} (PATH, KUBEBUILDER_ASSETS or `make binaries`)"
        )
    return LocalCluster(settings, binaries, load_topology(), started_here=False, kubeconfig=kubeconfig)


@pytest.fixture(scope="module")
def real_node(cluster: LocalCluster) -> str:
    """The name of the cluster's (first) real node; CI fails without one, elsewhere it skips."""
    out = cluster.kubectl("get", "nodes", "-l", f"{REAL_NODE_LABEL}=true", "-o", "name", check=False)
    nodes = sorted(line.split("/", 1)[1] for line in out.stdout.split() if "/" in line)
    if not nodes:
        message = "the cluster has no real node (OUTRIDER_REAL_NODES=0, or a cluster started before them)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return nodes[0]


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards and waited for.

    Waiting matters: the tests share the GPU nodes, and pods still terminating hold their GPUs (a CI
    run saw the L4 node full of an earlier test's pods when the extender-routing test began).
    """
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False)
