"""A small PKI for the local cluster, made with the ``openssl`` command line.

One CA signs the apiserver's serving certificate (127.0.0.1, localhost, the in-cluster service
names) and the client certificates: the admin (``O=system:masters``), the controller-manager,
the schedulers, the KWOK controller, kube-proxy, the apiserver's client for kubelets and one per
real node (``CN=system:node:NAME, O=system:nodes``, what the Node authorizer expects). A separate
RSA key pair signs service-account tokens.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import ClusterError

__all__ = ["CLIENTS", "Pki", "make_pki", "node_client"]

CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("outrider-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    "kube-proxy": ("system:kube-proxy", None),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}
"""Client certificate name -> (common name = user, organisation = group)."""

_DAYS = "3650"


@dataclass(frozen=True)
class Pki:
    """Paths of the generated certificates and keys."""

    folder: Path
    """Where everything lives."""

    @property
    def ca_cert(self) -> Path:
        """The cluster CA certificate (also the client CA)."""
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The cluster CA key."""
        return self.folder / "ca.key"

    @property
    def serving_cert(self) -> Path:
        """The apiserver's serving certificate."""
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        """The apiserver's serving key."""
        return self.folder / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        """Private key that signs service-account tokens."""
        return self.folder / "sa.key"

    @property
    def sa_pub(self) -> Path:
        """Public key that verifies service-account tokens."""
        return self.folder / "sa.pub"

    def client_cert(self, name: str) -> Path:
        """Client certificate of ``name`` (a key of CLIENTS)."""
        return self.folder / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        """Client key of ``name`` (a key of CLIENTS)."""
        return self.folder / f"{name}.key"


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if not exe:
        raise ClusterError("certificates: the `openssl` command is not installed (apt-get install openssl)")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"certificates: `openssl {' '.join(args[:2])}` failed: {proc.stderr.strip()}")


def _key(path: Path) -> None:
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        str(path),
        cwd=path.parent,
    )


def _sign(pki: Pki, name: str, subject: str, extensions: str) -> None:
    key, csr, crt = pki.folder / f"{name}.key", pki.folder / f"{name}.csr", pki.folder / f"{name}.crt"
    ext = pki.folder / f"{name}.ext"
    ext.write_text(extensions)
    _key(key)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=pki.folder)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
        "-CAcreateserial", "-days", _DAYS, "-sha256", "-extfile", str(ext), "-out", str(crt),
        cwd=pki.folder,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()


_CLIENT_EXTENSIONS = (
    "basicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=clientAuth\n"
)


def node_client(pki: Pki, node: str) -> str:
    """Sign (once) the client certificate of real node ``node``; return its name for client_cert()."""
    name = f"node-{node}"
    if not pki.client_cert(name).exists():
        _sign(pki, name, f"/CN=system:node:{node}/O=system:nodes", _CLIENT_EXTENSIONS)
    return name


def make_pki(folder: Path) -> Pki:
    """Create the CA, serving, client and service-account keys in ``folder`` (reused if present)."""
    pki = Pki(folder)
    if pki.ca_cert.exists() and all(pki.client_cert(n).exists() for n in CLIENTS) and pki.sa_pub.exists():
        return pki
    folder.mkdir(parents=True, exist_ok=True)
    _key(pki.ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", str(pki.ca_key), "-subj", "/CN=outrider-local-ca", "-days", _DAYS,
        "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", str(pki.ca_cert),
        cwd=folder,
    )  # fmt: skip
    sans = ",".join(
        [
            "IP:127.0.0.1",
            "IP:10.96.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    _sign(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n",
    )
    for name, (cn, org) in CLIENTS.items():
        subject = f"/CN={cn}" + (f"/O={org}" if org else "")
        _sign(pki, name, subject, _CLIENT_EXTENSIONS)
    _openssl(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        str(pki.sa_key),
        cwd=folder,
    )
    _openssl("pkey", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub), cwd=folder)
    return pki
