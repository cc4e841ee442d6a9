"""Local Kubernetes control plane (etcd, apiserver, controller-manager, schedulers, KWOK) for tests and demos.

``python -m outrider_devcluster {binaries,image,up,down,status,nodes,prometheus-targets}``; see
docs/local-cluster.md.
"""

from .binaries import Binaries, ensure_binaries, locate
from .cluster import COMPONENTS, Cluster, StatusReport
from .errors import (
    BinaryError,
    BuildError,
    ClusterError,
    ComponentExitedError,
    DevClusterError,
    PortInUseError,
    StaleClusterError,
    TopologyError,
)
from .settings import ClusterSettings, Ports, Versions
from .topology import Topology, load_topology

__all__ = [
    "COMPONENTS",
    "Binaries",
    "BinaryError",
    "BuildError",
    "Cluster",
    "ClusterError",
    "ClusterSettings",
    "ComponentExitedError",
    "DevClusterError",
    "PortInUseError",
    "Ports",
    "StaleClusterError",
    "StatusReport",
    "Topology",
    "TopologyError",
    "Versions",
    "ensure_binaries",
    "load_topology",
    "locate",
]
