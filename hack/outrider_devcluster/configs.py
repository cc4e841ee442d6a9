"""Configuration files the components read: kubeconfigs, scheduler profiles, the KWOK config.

kube-scheduler applies ``extenders`` to every profile of one process (they are a top-level field
of ``KubeSchedulerConfiguration``, not per profile). So the cluster runs two schedulers: one with
the ``default-scheduler`` profile and no extender, and one with only the ``outrider`` profile and
the Outrider extender. Each serves only pods naming its profile in ``spec.schedulerName``, so they
never compete; leader election is off (one instance each).
"""

from __future__ import annotations

import ipaddress
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .certs import Pki
from .settings import POD_CIDR, ClusterSettings

__all__ = [
    "AUDITED_USERS",
    "EXTENDER_TIMEOUT",
    "audit_policy",
    "extender_config",
    "kwok_config",
    "render_kubeconfig",
    "scheduler_config",
    "write_yaml",
]

EXTENDER_TIMEOUT = "1s"
"""httpTimeout of the extender calls (the chart's too): the extender's own budget is 200 ms, and a
hung extender costs a pod at most 2 s (filter and prioritize) until its liveness probe restarts it."""
_GPU = "nvidia.com/gpu"


AUDITED_USERS = ("system:serviceaccount:outrider-system:outrider-operator",)
"""Users whose requests the apiserver's audit log records (the operator of the chart's release in
``outrider-system``, as the e2e tests and ``make bench-operator`` run it): its API traffic is counted
from the log, request by request. Everyone else is not logged."""


def audit_policy() -> dict[str, Any]:
    """The apiserver's audit policy: metadata of :data:`AUDITED_USERS`' requests, once each."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted"],
        "rules": [{"level": "Metadata", "users": list(AUDITED_USERS)}, {"level": "None"}],
    }


def write_yaml(path: Path, *docs: dict[str, Any]) -> Path:
    """Write one or more YAML documents to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return path


def render_kubeconfig(
    settings: ClusterSettings, pki: Pki, client: str, *, context: str = "outrider-local"
) -> dict[str, Any]:
    """Return a kubeconfig for client certificate ``client`` (embedding paths, not data)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": settings.server, "certificate-authority": str(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": client,
                "user": {
                    "client-certificate": str(pki.client_cert(client)),
                    "client-key": str(pki.client_key(client)),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": client}}],
        "current-context": context,
    }


def extender_config(url: str) -> dict[str, Any]:
    """Return the ``extenders[]`` entry that routes GPU pods of the outrider profile to Outrider."""
    return {
        "urlPrefix": url,
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "weight": 5,
        "nodeCacheCapable": True,
        "ignorable": True,
        "httpTimeout": EXTENDER_TIMEOUT,
        "managedResources": [{"name": _GPU, "ignoredByScheduler": False}],
    }


def scheduler_config(kubeconfig: Path, profile: str, extender_url: str | None) -> dict[str, Any]:
    """Return a ``KubeSchedulerConfiguration`` with one profile and, optionally, the extender."""
    config: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig), "qps": 200, "burst": 400},
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": profile}],
    }
    if extender_url:
        config["extenders"] = [extender_config(extender_url)]
    return config


def _first_address(cidr: str) -> str:
    """``10.244.0.0/16`` -> ``10.244.0.1/16`` (kwok takes an address with the prefix length)."""
    net = ipaddress.ip_network(cidr)
    return f"{net[1]}/{net.prefixlen}"


def kwok_config(settings: ClusterSettings) -> list[dict[str, Any]]:
    """Return the KWOK controller config documents: options plus the shipped stages."""
    options: dict[str, Any] = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "cidr": _first_address(POD_CIDR),
            "nodeIP": "10.240.0.1",
            "manageNodesWithAnnotationSelector": "kwok.x-k8s.io/node=fake",
            "serverAddress": f"127.0.0.1:{settings.ports.kwok}",
            "nodeLeaseDurationSeconds": 40,
            "nodeLeaseParallelism": 16,
            "nodePlayStageParallelism": 16,
            "podPlayStageParallelism": 16,
        },
    }
    stages_text = resources.files(__package__).joinpath("kwok-stages.yaml").read_text()
    stages = [doc for doc in yaml.safe_load_all(stages_text) if doc]
    return [options, *stages]
