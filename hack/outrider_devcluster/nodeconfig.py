"""Configuration of a real node: its folders, addresses, containerd, CNI, kubelet and kube-proxy.

Pure functions from a :class:`NodeLayout` to file contents; :mod:`.realnode` writes and runs them.
Settings that this machine needs and a stock node would not (measured, see
``../shared/notes/real-nodes.md``):

- containerd ``restrict_oom_score_adj``: the VM's capability bounding set lacks CAP_SYS_RESOURCE,
  so runc cannot raise a container's ``oom_score_adj``;
- kubelet ``failCgroupV1: false``, ``cgroupDriver: cgroupfs``, ``failSwapOn: false``: the machine's
  cgroups are v1 and must stay so; each node gets its own ``cgroupRoot``;
- kube-proxy ``conntrack.maxPerCore: 0``: leave the machine's conntrack table size alone.

Every real node carries the label and ``NoSchedule`` taint ``outrider.dev/real-node``: only pods
that ask for a real node (a toleration) land there, so tests that expect KWOK's simulated pods
never meet a kubelet that would try to pull their images.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import POD_CIDR, REAL_POD_CIDR, ClusterSettings

__all__ = [
    "CNI_BIN_DIRS",
    "REAL_NODE_LABEL",
    "REAL_NODE_PLACEMENT",
    "REAL_NODE_TAINT",
    "SANDBOX_IMAGE",
    "NodeLayout",
    "cni_config",
    "containerd_config",
    "kube_proxy_config",
    "kubelet_config",
    "node_layouts",
]

REAL_NODE_LABEL = "outrider.dev/real-node"
"""Label (value ``"true"``) and taint key of the real nodes."""
REAL_NODE_TAINT: dict[str, str] = {"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
"""The taint every real node registers with; pods tolerate it to run there."""
REAL_NODE_PLACEMENT: dict[str, Any] = {
    "nodeSelector": {REAL_NODE_LABEL: "true"},
    "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}
"""Pod placement on the real nodes: select their label, tolerate their taint (a pod spec's fields)."""
SANDBOX_IMAGE = "localhost/outrider-pause:1"
"""The pod sandbox ("pause") image, built locally from busybox (no registry is reached)."""
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
"""Where the CNI plugins may be installed (Debian's package uses the first)."""
RUN_ROOT = Path("/run/outrider-devcluster")
"""Short paths for sockets and runtime state (a unix socket path is limited to 107 bytes)."""


@dataclass(frozen=True)
class NodeLayout:
    """Names, addresses and folders of real node number ``index`` of one cluster."""

    index: int
    """0, 1, ... within the cluster."""
    cluster_dir: Path
    """The cluster folder (``.cluster``)."""

    @property
    def name(self) -> str:
        """Node name (``real-0``)."""
        return f"real-{self.index}"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        """The node's pod subnet (its bridge's)."""
        base = ipaddress.IPv4Network(REAL_POD_CIDR)
        return ipaddress.IPv4Network((int(base.network_address) + 256 * self.index, 24))

    @property
    def node_ip(self) -> str:
        """The node's own address (InternalIP), on the loopback interface."""
        base = ipaddress.ip_network(REAL_POD_CIDR)
        return str(base[255 * 256 + self.index + 1])

    @property
    def bridge(self) -> str:
        """Bridge interface of the node's pods."""
        return f"ortr{self.index}"

    @property
    def folder(self) -> Path:
        """Persistent state of the node: configs, kubelet root, containerd root, IPAM."""
        return self.cluster_dir / "nodes" / self.name

    @property
    def run_dir(self) -> Path:
        """Sockets and runtime state, under /run with a per-cluster digest."""
        digest = hashlib.sha256(str(self.cluster_dir.resolve()).encode()).hexdigest()[:12]
        return RUN_ROOT / digest / self.name

    @property
    def containerd_socket(self) -> Path:
        """containerd's gRPC socket."""
        return self.run_dir / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        """The kubelet's cgroup root in every v1 hierarchy."""
        return f"/outrider-{self.run_dir.parent.name}-{self.name}"

    @property
    def network_name(self) -> str:
        """CNI network name (also the prefix of its cache entries in /var/lib/cni)."""
        return f"outrider-{self.name}"


def node_layouts(settings: ClusterSettings) -> list[NodeLayout]:
    """The layouts of the configured number of real nodes."""
    return [NodeLayout(i, settings.cluster_dir) for i in range(settings.real_nodes)]


def containerd_config(node: NodeLayout, cni_bin_dir: str) -> str:
    """containerd 1.6 config (version 2 TOML): own root, state, socket, runc root and CNI folder."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2",
        f'root = "{node.folder / "containerd"}"',
        f'state = "{node.run_dir / "containerd-state"}"',
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",'
        ' "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]',
        "[grpc]",
        f'  address = "{node.containerd_socket}"',
        "[ttrpc]",
        f'  address = "{node.run_dir / "containerd.sock.ttrpc"}"',
        "[debug]",
        '  level = "info"',
        f"[{cri}]",
        f'  sandbox_image = "{SANDBOX_IMAGE}"',
        "  restrict_oom_score_adj = true",
        "  disable_apparmor = true",
        "  enable_selinux = false",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f'  Root = "{node.run_dir / "runc"}"',
        f"[{cri}.cni]",
        f'  bin_dir = "{cni_bin_dir}"',
        f'  conf_dir = "{node.folder / "cni"}"',
        '[plugins."io.containerd.internal.v1.opt"]',
        f'  path = "{node.folder / "opt"}"',
    ]
    return "\n".join(lines) + "\n"


def cni_config(node: NodeLayout) -> dict[str, Any]:
    """A bridge network for the node's pods: host-local addresses, the bridge as default gateway.

    No IP masquerade: pods talk to each other and to this machine, never beyond it.
    """
    subnet = node.subnet
    return {
        "cniVersion": "0.4.0",
        "name": node.network_name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(subnet), "gateway": str(subnet[1])}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.folder / "ipam"),
                },
            }
        ],
    }


def kubelet_config(node: NodeLayout, ca_cert: Path) -> dict[str, Any]:
    """KubeletConfiguration: x509 + webhook authentication, its own ports on the node's address.

    The serving certificate is the kubelet's own self-signed one (the apiserver does not verify it
    here, as in most local clusters).
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": node.node_ip,
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "registerWithTaints": [REAL_NODE_TAINT],
        "maxPods": 50,
        "podPidsLimit": 4096,
        "serializeImagePulls": False,
        "resolvConf": "/etc/resolv.conf",
        "clusterDNS": [],
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


def kube_proxy_config(kubeconfig: Path, hostname: str) -> dict[str, Any]:
    """KubeProxyConfiguration: iptables mode, health and metrics on 127.0.0.1, conntrack untouched.

    One kube-proxy serves all real nodes: they share this machine's network namespace and iptables.
    """
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig), "qps": 20, "burst": 40},
        "mode": "iptables",
        "hostnameOverride": hostname,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # one range covering the KWOK pods' and the real nodes' (10.244.0.0/15)
        "clusterCIDR": str(ipaddress.ip_network(POD_CIDR).supernet(new_prefix=15)),
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"masqueradeAll": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
    }


def cni_json(node: NodeLayout) -> str:
    """The CNI config list as JSON text."""
    return json.dumps(cni_config(node), indent=2) + "\n"
