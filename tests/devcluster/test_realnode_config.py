"""Real node configuration, image cache keys and host-state restoration, without starting anything."""

from __future__ import annotations

import ipaddress
import json
import tomllib
from pathlib import Path

import pytest

from outrider_devcluster.errors import ClusterError
from outrider_devcluster.hoststate import HostState, read_sysctls
from outrider_devcluster.images import context_digest
from outrider_devcluster.nodeconfig import (
    REAL_NODE_TAINT,
    SANDBOX_IMAGE,
    NodeLayout,
    cni_config,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
)
from outrider_devcluster.routes import UNREACHABLE_CIDRS
from outrider_devcluster.settings import POD_CIDR, REAL_POD_CIDR, ClusterSettings


def test_nodes_get_disjoint_subnets_and_addresses_inside_the_unreachable_range(tmp_path: Path) -> None:
    nodes = [NodeLayout(i, tmp_path) for i in range(8)]
    real = ipaddress.ip_network(REAL_POD_CIDR)
    assert REAL_POD_CIDR in UNREACHABLE_CIDRS
    subnets = [n.subnet for n in nodes]
    assert len(set(subnets)) == 8 and all(s.subnet_of(real) for s in subnets)
    addresses = [ipaddress.ip_address(n.node_ip) for n in nodes]
    assert len(set(addresses)) == 8 and all(a in real for a in addresses)
    assert not any(a in s for a in addresses for s in subnets)
    assert not ipaddress.ip_network(POD_CIDR).overlaps(real)
    assert len({n.bridge for n in nodes}) == 8 and all(len(n.bridge) <= 15 for n in nodes)  # IFNAMSIZ
    # unix socket paths are limited to 107 bytes
    assert all(len(str(n.containerd_socket)) < 100 for n in nodes)


def test_containerd_config_is_valid_toml_with_this_machines_fixes(tmp_path: Path) -> None:
    node = NodeLayout(0, tmp_path)
    config = tomllib.loads(containerd_config(node, "/usr/lib/cni"))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == SANDBOX_IMAGE
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": str(node.folder / "cni")}
    assert cri["containerd"]["runtimes"]["runc"]["options"]["Root"] == str(node.run_dir / "runc")
    assert config["grpc"]["address"] == str(node.containerd_socket)
    assert config["root"].startswith(str(tmp_path))


def test_kubelet_registers_tainted_on_its_own_address_and_cgroup(tmp_path: Path) -> None:
    a, b = NodeLayout(0, tmp_path), NodeLayout(1, tmp_path)
    ka, kb = kubelet_config(a, tmp_path / "ca.crt"), kubelet_config(b, tmp_path / "ca.crt")
    assert ka["registerWithTaints"] == [REAL_NODE_TAINT]
    assert ka["failCgroupV1"] is False and ka["cgroupDriver"] == "cgroupfs"
    assert ka["authentication"]["anonymous"]["enabled"] is False and ka["authorization"]["mode"] == "Webhook"
    assert ka["readOnlyPort"] == 0
    assert (ka["address"], ka["cgroupRoot"]) != (kb["address"], kb["cgroupRoot"])
    assert ka["containerRuntimeEndpoint"] == f"unix://{a.containerd_socket}"


def test_cni_network_never_masquerades_and_kube_proxy_leaves_conntrack_alone(tmp_path: Path) -> None:
    node = NodeLayout(2, tmp_path)
    bridge = cni_config(node)["plugins"][0]
    assert bridge["ipMasq"] is False and bridge["bridge"] == node.bridge
    assert bridge["ipam"]["ranges"][0][0]["subnet"] == str(node.subnet)
    proxy = kube_proxy_config(tmp_path / "kubeconfig", node.name)
    assert proxy["conntrack"]["maxPerCore"] == 0
    cluster_cidr = ipaddress.ip_network(proxy["clusterCIDR"])
    assert ipaddress.ip_network(POD_CIDR).subnet_of(cluster_cidr)  # type: ignore[arg-type]
    assert ipaddress.ip_network(REAL_POD_CIDR).subnet_of(cluster_cidr)  # type: ignore[arg-type]


def test_real_node_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTRIDER_REAL_NODES", raising=False)
    assert ClusterSettings.from_env().real_nodes == 1
    assert ClusterSettings().real_nodes == 0
    monkeypatch.setenv("OUTRIDER_REAL_NODES", "3")
    assert ClusterSettings.from_env().real_nodes == 3
    for bad in ("-1", "two", "9"):
        monkeypatch.setenv("OUTRIDER_REAL_NODES", bad)
        with pytest.raises(ClusterError, match="OUTRIDER_REAL_NODES"):
            ClusterSettings.from_env()


def test_image_cache_key_follows_the_sources_but_not_the_docs(tmp_path: Path) -> None:
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "requirements-runtime.lock"):
        (tmp_path / name).write_text(name)
    (tmp_path / "runtime" / "pkg").mkdir(parents=True)
    (tmp_path / "runtime" / "pkg" / "a.py").write_text("x = 1\n")
    first = context_digest(tmp_path)
    (tmp_path / "README.md").write_text("edited docs")
    (tmp_path / "runtime" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "runtime" / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert context_digest(tmp_path) == first
    (tmp_path / "runtime" / "pkg" / "a.py").write_text("x = 2\n")
    assert context_digest(tmp_path) != first
    (tmp_path / "runtime" / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "requirements-runtime.lock").write_text("changed")
    assert context_digest(tmp_path) != first


def test_host_state_saved_once_and_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, str] = {}
    current = {"vm.overcommit_memory": "0", "kernel.panic": "1"}
    monkeypatch.setattr("outrider_devcluster.hoststate.read_sysctls", lambda names=None: dict(current))
    monkeypatch.setattr(
        "outrider_devcluster.hoststate.write_sysctl",
        lambda name, value: written.update({name: value}) or True,
    )
    monkeypatch.setattr("outrider_devcluster.hoststate.remove_iptables_chains", lambda: [])
    state = HostState(lambda _m: None, tmp_path / "host-state.json")
    state.save()
    current.update({"vm.overcommit_memory": "1", "kernel.panic": "10"})  # what a kubelet sets
    state.save()  # a second cluster does not overwrite the original values
    assert json.loads((tmp_path / "host-state.json").read_text())["sysctl"]["kernel.panic"] == "1"
    changed = state.restore()
    assert written == {"vm.overcommit_memory": "0", "kernel.panic": "1"}
    assert sorted(changed) == ["kernel.panic=1", "vm.overcommit_memory=0"]
    assert not (tmp_path / "host-state.json").exists()


def test_sysctls_read_from_proc() -> None:
    values = read_sysctls(["net.ipv4.ip_forward", "no.such.tunable"])
    assert set(values) == {"net.ipv4.ip_forward"} and values["net.ipv4.ip_forward"] in ("0", "1")


def test_preflight_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from outrider_devcluster.processes import ProcessTable
    from outrider_devcluster.realnode import RealNodes

    settings = ClusterSettings(cluster_dir=tmp_path, real_nodes=1)
    nodes = RealNodes(settings, None, ProcessTable(tmp_path / "p", tmp_path / "l"), tmp_path, lambda _m: None)  # type: ignore[arg-type]
    monkeypatch.setattr("outrider_devcluster.realnode.os.geteuid", lambda: 1000)
    with pytest.raises(ClusterError, match=r"need root.*OUTRIDER_REAL_NODES=0"):
        nodes.preflight()
    monkeypatch.setattr("outrider_devcluster.realnode.os.geteuid", lambda: 0)
    monkeypatch.setattr(
        "outrider_devcluster.realnode.shutil.which", lambda cmd: None if cmd == "runc" else "/x"
    )
    monkeypatch.setattr("outrider_devcluster.realnode.CNI_BIN_DIRS", (str(tmp_path / "no-cni"),))
    with pytest.raises(ClusterError) as err:
        nodes.preflight()
    assert "runc (package runc)" in str(err.value) and "containernetworking-plugins" in str(err.value)
    assert "containerd (package" not in str(err.value)
