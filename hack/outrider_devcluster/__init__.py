"""Local Kubernetes control plane (etcd, apiserver, controller-manager, schedulers, KWOK) for tests and demos.

``python -m outrider_devcluster {binaries,up,down,status,nodes,stand-ins}``; see docs/local-cluster.md.
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
    StandInError,
    TopologyError,
)
from .settings import ClusterSettings, Ports, Versions
from .standins import StandInHost
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
    "StandInError",
    "StandInHost",
    "StatusReport",
    "Topology",
    "TopologyError",
    "Versions",
    "ensure_binaries",
    "load_topology",
    "locate",
]
