"""Argument parsing for ``python -m outrider_devcluster`` (binaries, image, up, down, status, nodes, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .binaries import ALL_BINARIES, ensure_binaries, locate
from .errors import DevClusterError
from .settings import ClusterSettings

__all__ = ["main", "register"]


def _cmd_binaries(args: argparse.Namespace) -> int:
    settings = ClusterSettings.from_env()
    names = tuple(args.only) if args.only else ALL_BINARIES
    found = locate(settings) if args.locate_only else ensure_binaries(settings, names)
    for name in names:
        path = found.paths.get(name)
        print(f"{name:<24} {found.sources.get(name, '-'):<18} {path or 'MISSING'}")
    return 0 if not found.missing(names) else 1


def _cmd_image(args: argparse.Namespace) -> int:
    from .images import IMAGES, ensure_images, image_size

    settings = ClusterSettings.from_env()
    keys = tuple(args.only) if args.only else tuple(IMAGES)
    archives = ensure_images(settings, keys)
    print(f"{'image':<48} {'size':>9}  archive")
    for key, archive in archives.items():
        print(f"{IMAGES[key].reference:<48} {image_size(archive) / 1e6:>6.0f} MB  {archive}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from .cluster import Cluster
    from .topology import load_topology

    settings = ClusterSettings.from_env()
    topology = load_topology(args.topology, nodes=args.nodes)
    cluster = Cluster(settings)
    cluster.up(topology, build=not args.no_build)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from .cluster import Cluster

    Cluster(ClusterSettings.from_env()).down(keep_data=args.keep_data)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .cluster import Cluster

    report = Cluster(ClusterSettings.from_env()).status()
    for line in report.lines():
        print(line)
    return 0 if report.healthy else 1


def _cmd_nodes(args: argparse.Namespace) -> int:
    from .kube import api_client, create_nodes, wait_nodes_ready
    from .topology import load_topology

    settings = ClusterSettings.from_env()
    kubeconfig = args.kubeconfig or settings.kubeconfig
    topology = load_topology(args.topology, nodes=args.nodes)
    nodes = topology.nodes()
    with api_client(kubeconfig) as api:
        created = create_nodes(api, nodes, progress=lambda d, t: print(f"    ... {d}/{t} nodes created"))
        waited = wait_nodes_ready(
            api, [n["metadata"]["name"] for n in nodes], timeout_s=max(60.0, len(nodes) * 0.2)
        )
    print(f"{created} nodes created; all {len(nodes)} Ready after {waited:.1f}s (needs a KWOK controller)")
    return 0


def _cmd_prometheus_targets(args: argparse.Namespace) -> int:
    import signal

    from .kube import api_client
    from .nodeconfig import REAL_NODE_LABEL
    from .prometheus import TargetWriter

    settings = ClusterSettings.from_env()
    with api_client(args.kubeconfig or settings.kubeconfig) as api:
        from kubernetes import client

        nodes = client.CoreV1Api(api).list_node(label_selector=f"{REAL_NODE_LABEL}=true").items
        names = [str(n.metadata.name) for n in nodes if n.metadata is not None]
        if not names:
            print("error: the cluster has no real node: nothing to scrape", file=sys.stderr)
            return 1
        writer = TargetWriter(api, args.out, names)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: writer.stop_event.set())
        print(f"==> writing the scrapable pods of {', '.join(names)} to {args.out} every 2 s", flush=True)
        writer.path.parent.mkdir(parents=True, exist_ok=True)
        writer.run()
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add the devcluster subcommands to ``parser`` (also used by the ``outrider`` CLI)."""
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("binaries", help="locate or build etcd, kube-*, kwok, kubectl and helm")
    p.add_argument("--only", nargs="*", choices=ALL_BINARIES, help="only these binaries")
    p.add_argument("--locate-only", action="store_true", help="report what exists; build nothing")
    p.set_defaults(func=_cmd_binaries)
    p = sub.add_parser("image", help="build the images from the Dockerfile (buildah), cached by content")
    p.add_argument(
        "--only",
        nargs="*",
        choices=("pause", "runtime", "control", "runtime-gpu", "kube-scheduler"),
        help="only these",
    )
    p.set_defaults(func=_cmd_image)
    p = sub.add_parser("up", help="start the local cluster, the simulated GPU nodes and the real node(s)")
    p.add_argument(
        "--topology", type=Path, default=None, help="topology YAML (default hack/cluster-topology.yaml)"
    )
    p.add_argument(
        "--nodes", type=int, default=None, help="create N GPU nodes instead (scale tests, e.g. 1000)"
    )
    p.add_argument("--no-build", action="store_true", help="fail instead of building missing binaries")
    p.set_defaults(func=_cmd_up)
    p = sub.add_parser("down", help="stop every process this tooling started")
    p.add_argument("--keep-data", action="store_true", help="keep .cluster/ (logs, certificates)")
    p.set_defaults(func=_cmd_down)
    p = sub.add_parser("nodes", help="create the simulated nodes on any cluster running KWOK (e.g. kind)")
    p.add_argument("--kubeconfig", type=Path, default=None, help="default: .cluster/kubeconfig")
    p.add_argument(
        "--topology", type=Path, default=None, help="topology YAML (default hack/cluster-topology.yaml)"
    )
    p.add_argument("--nodes", type=int, default=None, help="create N nodes in the topology's proportions")
    p.set_defaults(func=_cmd_nodes)
    p = sub.add_parser("status", help="show component processes and health")
    p.set_defaults(func=_cmd_status)
    p = sub.add_parser(
        "prometheus-targets",
        help="keep a Prometheus file_sd file of the real nodes' scrapable pods, until SIGINT/SIGTERM",
    )
    p.add_argument("--kubeconfig", type=Path, default=None, help="default: .cluster/kubeconfig")
    p.add_argument("--out", type=Path, required=True, help="the file_sd JSON file to keep current")
    p.set_defaults(func=_cmd_prometheus_targets)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors print a one-paragraph message and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m outrider_devcluster", description=__doc__)
    register(parser)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except DevClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
