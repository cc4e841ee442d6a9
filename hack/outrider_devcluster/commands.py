"""Command lines of the cluster's processes, one builder per component.

Every component binds 127.0.0.1 only. Leader election is off (one instance of each); the
controller-manager runs each controller under its own ServiceAccount, as in a real cluster, so
RBAC is exercised for the built-in controllers too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .certs import Pki
from .settings import SERVICE_CIDR, ClusterSettings

__all__ = ["CommandBuilder"]

_ALWAYS_ALLOW = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"
_DISABLED_CONTROLLERS = (
    "-nodeipam,-cloud-node-lifecycle,-bootstrap-signer-controller,-token-cleaner-controller"
)


@dataclass(frozen=True)
class CommandBuilder:
    """Builds argv lists from settings, the PKI and the generated config files."""

    settings: ClusterSettings
    """Ports and folders."""
    pki: Pki
    """Certificates and keys."""
    config_dir: Path
    """Where the generated kubeconfigs and component configs are."""

    def kubeconfig(self, client: str) -> Path:
        """Kubeconfig file of a client certificate (see certs.CLIENTS)."""
        return self.config_dir / f"{client}.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The apiserver's audit log (the operator's requests only; see ``configs.audit_policy``)."""
        return self.settings.cluster_dir / "logs" / "audit.log"

    @property
    def etcd_url(self) -> str:
        """etcd client URL."""
        return f"http://127.0.0.1:{self.settings.ports.etcd_client}"

    def etcd(self, binary: Path) -> list[str]:
        """etcd: one member, no fsync (data is throw-away), quiet logs."""
        peer = f"http://127.0.0.1:{self.settings.ports.etcd_peer}"
        return [
            str(binary),
            "--name=outrider",
            f"--data-dir={self.settings.cluster_dir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=outrider={peer}",
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ]

    def apiserver(self, binary: Path) -> list[str]:
        """kube-apiserver: TLS, client-certificate and service-account authentication, RBAC."""
        pki = self.pki
        return [
            str(binary),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.settings.ports.apiserver}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--requestheader-client-ca-file={pki.ca_cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            # the Node authorizer and NodeRestriction confine each real node's kubelet to its own
            # objects; the apiserver reaches kubelets (logs, exec, port-forward) by InternalIP
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={pki.client_cert('apiserver-kubelet-client')}",
            f"--kubelet-client-key={pki.client_key('apiserver-kubelet-client')}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--anonymous-auth=false",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            f"--cert-dir={pki.folder / 'apiserver-certs'}",
            f"--audit-policy-file={self.config_dir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            "--audit-log-format=json",
            "--v=1",
        ]

    def controller_manager(self, binary: Path) -> list[str]:
        """kube-controller-manager: all controllers that make sense without cloud or node IPAM."""
        kubeconfig = self.kubeconfig("kube-controller-manager")
        pki = self.pki
        return [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            _ALWAYS_ALLOW,
            "--bind-address=127.0.0.1",
            f"--secure-port={self.settings.ports.controller_manager}",
            f"--cert-dir={pki.folder / 'controller-manager-certs'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--controllers=*,{_DISABLED_CONTROLLERS}",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--concurrent-gc-syncs=20",
            "--v=1",
        ]

    def scheduler(self, binary: Path, name: str, config: Path, port: int) -> list[str]:
        """kube-scheduler ``name`` with its KubeSchedulerConfiguration file."""
        kubeconfig = self.kubeconfig("kube-scheduler")
        return [
            str(binary),
            f"--config={config}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            _ALWAYS_ALLOW,
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.pki.folder / (name + '-certs')}",
            "--v=2",
        ]

    def kwok(self, binary: Path, config: Path) -> list[str]:
        """kwok controller: manages nodes annotated kwok.x-k8s.io/node=fake and their pods."""
        return [
            str(binary),
            f"--config={config}",
            f"--kubeconfig={self.kubeconfig('kwok')}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{self.settings.ports.kwok}",
            "--node-lease-duration-seconds=40",
        ]
