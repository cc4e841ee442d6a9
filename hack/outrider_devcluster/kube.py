"""Talking to the cluster: health probes over HTTPS, node creation and readiness, tokens."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from .certs import Pki
from .settings import APISERVER_POD_ADDRESS

__all__ = [
    "admin_ssl_context",
    "api_client",
    "create_nodes",
    "http_ok",
    "node_ready",
    "publish_apiserver_endpoint",
    "request_token",
    "wait_nodes_ready",
]


def admin_ssl_context(pki: Pki) -> ssl.SSLContext:
    """An SSL context trusting the cluster CA and presenting the admin client certificate."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.client_cert("admin")), str(pki.client_key("admin")))
    return ctx


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout_s: float = 2.0) -> bool:
    """True when ``GET url`` answers 200."""
    if context is None and url.startswith("https://"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def api_client(kubeconfig: Path, *, pool: int = 32) -> k8s.ApiClient:
    """A kubernetes ApiClient for ``kubeconfig`` with a connection pool of ``pool``."""
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = pool
    return k8s.ApiClient(configuration)


def create_nodes(
    api: k8s.ApiClient,
    nodes: list[dict[str, Any]],
    *,
    parallel: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Create ``nodes`` (skipping those that exist) in parallel; return how many were created."""
    core = k8s.CoreV1Api(api)
    existing = {n["metadata"]["name"] for n in _raw_nodes(core)}
    todo = [n for n in nodes if n["metadata"]["name"] not in existing]
    done = 0

    def create(node: dict[str, Any]) -> None:
        try:
            core.create_node(cast(k8s.V1Node, node))
        except ApiException as exc:
            if exc.status != 409:
                raise

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for _ in pool.map(create, todo):
            done += 1
            if progress and (done % 100 == 0 or done == len(todo)):
                progress(done, len(todo))
    return len(todo)


def node_ready(node: Any) -> bool:
    """True when a V1Node has condition Ready=True."""
    conditions = (node.status.conditions or []) if node.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def wait_nodes_ready(
    api: k8s.ApiClient,
    names: Iterable[str],
    timeout_s: float,
    *,
    check: Callable[[], None] | None = None,
) -> float:
    """Wait until every named node is Ready; return the seconds waited. ``check`` runs each round."""
    wanted = set(names)
    core = k8s.CoreV1Api(api)
    started = time.monotonic()
    while True:
        if check:
            check()
        ready = _ready_node_names(core)
        missing = wanted - ready
        if not missing:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            sample = ", ".join(sorted(missing)[:5])
            raise TimeoutError(
                f"{len(missing)} of {len(wanted)} nodes not Ready after {timeout_s:.0f}s (e.g. {sample})"
            )
        time.sleep(0.5)


def _raw_nodes(core: k8s.CoreV1Api) -> list[dict[str, Any]]:
    """All nodes as plain JSON (decoding 1,000 V1Node models is slow)."""
    resp: Any = core.list_node(_preload_content=False)
    items: list[dict[str, Any]] = json.loads(resp.data)["items"]
    return items


def _ready_node_names(core: k8s.CoreV1Api) -> set[str]:
    """Names of the nodes whose Ready condition is True."""
    return {
        n["metadata"]["name"]
        for n in _raw_nodes(core)
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n.get("status", {}).get("conditions") or []
        )
    }


def request_token(api: k8s.ApiClient, namespace: str, service_account: str, *, seconds: int = 3600) -> str:
    """Return a bound token for a ServiceAccount through the TokenRequest API."""
    core = k8s.CoreV1Api(api)
    body = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    result = core.create_namespaced_service_account_token(service_account, namespace, body)
    if result.status is None:
        raise RuntimeError(f"TokenRequest for {namespace}/{service_account} returned no status")
    return str(result.status.token)


def token_kubeconfig(admin_kubeconfig: Path, token: str) -> dict[str, Any]:
    """A kubeconfig for the admin kubeconfig's cluster that authenticates with ``token`` only."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "contexts": [{"name": "sa", "context": {"cluster": cluster, "user": "sa"}}],
        "current-context": "sa",
        "users": [{"name": "sa", "user": {"token": token}}],
    }


def publish_apiserver_endpoint(api: k8s.ApiClient, port: int) -> None:
    """Point the ``kubernetes`` Service at the apiserver forwarder that pods on real nodes reach.

    The apiserver runs with ``--endpoint-reconciler-type=none`` (it listens on 127.0.0.1, which no
    pod can reach), so nobody else writes these endpoints; kube-controller-manager mirrors them into
    an EndpointSlice for kube-proxy.
    """
    core = k8s.CoreV1Api(api)
    body: Any = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [
            {
                "addresses": [{"ip": APISERVER_POD_ADDRESS}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }
    try:
        core.replace_namespaced_endpoints("kubernetes", "default", body)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_endpoints("default", body)
