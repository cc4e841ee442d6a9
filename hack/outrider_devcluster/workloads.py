"""InferenceDeployments the tests, benchmarks and the demo serve on the local cluster's real nodes."""

from __future__ import annotations

import socket
from typing import Any

from .nodeconfig import REAL_NODE_LABEL

__all__ = ["free_port", "real_node_deployment"]


def real_node_deployment(name: str, namespace: str, *, cpu: str = "500m", **spec: Any) -> dict[str, Any]:
    """An InferenceDeployment of the builtin MiniLM on the real nodes: CPU pods of the runtime image.

    The pods select and tolerate the real nodes' label and taint. ``cpu`` is each pod's request and
    limit (the real node has this machine's cores); ``spec`` adds or replaces top-level spec fields;
    a ``runtime`` given there replaces the CPU default whole.
    """
    runtime = {"gpusPerReplica": 0, "maxWorkers": 2, "resources": {"cpu": cpu, "memory": "1536Mi"}}
    return {
        "apiVersion": "outrider.dev/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
            "runtime": runtime,
            "placement": {
                "nodeSelector": {REAL_NODE_LABEL: "true"},
                "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
            },
            **spec,
        },
    }


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
