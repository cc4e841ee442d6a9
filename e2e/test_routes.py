"""While the cluster is up, its made-up address ranges have ``unreachable`` routes (root only).

A connection to a KWOK pod IP or a ClusterIP must fail at once on this machine instead of
following the default route out of it. The connects below are made only after the routes are
confirmed, so a missing route fails the test without sending anything.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from outrider_devcluster.polling import wait_for
from outrider_devcluster.processes import ProcessTable
from outrider_devcluster.routes import RouteGuard, unreachable_routes
from outrider_devcluster.settings import POD_CIDR, SERVICE_CIDR

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="routes need root")

TEST_NET = "198.51.100.0/24"
"""RFC 5737 documentation range: the registry test's route never meets real traffic."""


def _connect_fails_at_once(ip: str, port: int) -> float:
    started = time.monotonic()
    with pytest.raises(OSError) as err:
        socket.create_connection((ip, port), timeout=5).close()
    elapsed = time.monotonic() - started
    assert err.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), err.value
    assert elapsed < 0.5, f"connect to {ip} took {elapsed:.2f}s; it should fail at once"
    return elapsed


def test_kwok_pod_ips_and_cluster_ips_are_unreachable(cluster: Any, namespace: str) -> None:
    if os.environ.get("OUTRIDER_E2E_KUBECONFIG"):
        pytest.skip("an external cluster: its routes are not this tooling's")
    assert {SERVICE_CIDR, POD_CIDR} <= unreachable_routes(), "cluster-up installs unreachable routes"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fake-ip"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))

    def pod_ip() -> str:
        out = cluster.kubectl("get", "pod", "-n", namespace, "fake-ip", "-o", "jsonpath={.status.podIP}")
        return str(out.stdout.strip())

    ip = wait_for("KWOK to give the pod an IP", pod_ip)
    assert ip.startswith("10.244."), ip
    _connect_fails_at_once(ip, 8000)
    cluster_ip = cluster.kubectl("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout
    _connect_fails_at_once(cluster_ip.strip(), 443)


def test_routes_stay_while_another_live_cluster_holds_them(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    other = tmp_path / "other-cluster"
    sleeper = ProcessTable(other / "pids", other / "logs").start("etcd", ["sleep", "60"])
    try:
        mine = RouteGuard(tmp_path / "mine", lambda _m: None, cidrs=(TEST_NET,), registry=registry)
        theirs = RouteGuard(other, lambda _m: None, cidrs=(TEST_NET,), registry=registry)
        assert mine.install() and theirs.install()
        assert TEST_NET in unreachable_routes()
        assert not mine.remove(), "another live cluster still holds the route"
        assert TEST_NET in unreachable_routes()
        assert not RouteGuard(tmp_path / "never", lambda _m: None, registry=registry).remove()
        sleeper.stop()
        assert theirs.remove()
        assert TEST_NET not in unreachable_routes()
    finally:
        sleeper.stop()
        subprocess.run(["ip", "route", "del", "unreachable", TEST_NET], capture_output=True, check=False)
