"""A thin JSON-over-HTTP layer on the kubernetes client's ApiClient (auth, TLS, host).

The operator works with plain dict manifests (server-side apply of rendered objects), so it
uses the client's transport and authentication but not its generated model classes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from outrider_operator.api import labels
from outrider_operator.errors import KubeApiError, KubeConfigError

__all__ = ["FIELD_MANAGER", "KubeRest", "load_api_client", "object_path"]

FIELD_MANAGER = "outrider-operator"
"""Field manager of every server-side apply the operator makes."""

_COLLECTIONS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "/api/v1/namespaces/{ns}/configmaps",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services",
    ("v1", "Pod"): "/api/v1/namespaces/{ns}/pods",
    ("v1", "Event"): "/api/v1/namespaces/{ns}/events",
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{ns}/deployments",
    ("policy/v1", "PodDisruptionBudget"): "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    (f"{labels.API_GROUP}/{labels.API_VERSION}", labels.KIND): (
        f"/apis/{labels.API_GROUP}/{labels.API_VERSION}/namespaces/{{ns}}/{labels.PLURAL}"
    ),
}


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """URL path of a namespaced object (or its collection when ``name`` is None)."""
    try:
        base = _COLLECTIONS[(api_version, kind)].format(ns=namespace)
    except KeyError:
        raise KubeApiError(0, f"the operator does not manage {api_version} {kind}") from None
    return base if name is None else f"{base}/{name}"


def load_api_client(kubeconfig: str | Path | None = None) -> k8s.ApiClient:
    """An ApiClient from ``kubeconfig`` (or $KUBECONFIG), else the in-cluster service account.

    Raises KubeConfigError naming the source when it cannot be used: a kubeconfig that was asked
    for but is missing or invalid never silently falls back to other credentials.
    """
    path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG")
    configuration = k8s.Configuration()
    try:
        if path:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, client_configuration=configuration
            )
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (k8s_config.ConfigException, OSError) as exc:
        where = path or "in-cluster credentials (no --kubeconfig given)"
        raise KubeConfigError(f"cannot use {where}: {exc}") from exc
    configuration.connection_pool_maxsize = CONNECTIONS  # a connection for each worker thread
    return k8s.ApiClient(configuration)


CONNECTIONS = 16
"""Pooled connections to the apiserver: more than the work queue's threads (kopf has its own)."""


class KubeRest:
    """JSON requests against the apiserver, raising :class:`KubeApiError` on any non-2xx reply."""

    def __init__(self, api: k8s.ApiClient, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body (None when empty)."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        method_, url, hdrs, payload, post = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.api.call_api(
                method_,
                url,
                header_params=hdrs,
                body=payload,
                post_params=post,
                _request_timeout=self.timeout,
            )
            data: bytes = resp.read()  # type: ignore[no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError(0, f"{method} {path}: {exc}", "ConnectionFailed") from exc
        if not 200 <= resp.status <= 299:
            raise KubeApiError.from_body(resp.status, data)
        return orjson.loads(data) if data else None  # replies are large (managedFields): the fast parser

    def get(self, path: str) -> dict[str, Any] | None:
        """GET an object; None when it does not exist."""
        try:
            result: dict[str, Any] = self.request("GET", path)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        """LIST a collection, following continue tokens."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query = [("limit", "500")]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if token:
                query.append(("continue", token))
            page = self.request("GET", path, query=query)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def apply(
        self, obj: dict[str, Any], *, subresource: str | None = None, field_manager: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` with force (the operator is the one writer of its children).

        With ``subresource="status"`` only the fields in ``obj['status']`` are applied, owned by
        ``field_manager``; other writers of the same status (the forecaster) keep their fields.
        """
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if subresource:
            path = f"{path}/{subresource}"
        result: dict[str, Any] = self.request(
            "PATCH",
            path,
            query=[("fieldManager", field_manager), ("force", "true")],
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return result

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch (used for the status subresource)."""
        result: dict[str, Any] = self.request(
            "PATCH", path, body=patch, content_type="application/merge-patch+json"
        )
        return result
