"""Run a located cluster tool (kubectl, helm, ...) against the local cluster: ``tool.py NAME ARGS``."""

from __future__ import annotations

import os
import sys

from outrider_devcluster.binaries import locate
from outrider_devcluster.settings import ClusterSettings


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: tool.py NAME [ARGS...]", file=sys.stderr)
        return 2
    name = sys.argv[1]
    settings = ClusterSettings.from_env()
    binaries = locate(settings)
    if name not in binaries.paths:
        print(f"{name} not found: run `make binaries`", file=sys.stderr)
        return 1
    if settings.kubeconfig.exists():
        os.environ.setdefault("KUBECONFIG", str(settings.kubeconfig))
    path = str(binaries[name])
    os.execv(path, [path, *sys.argv[2:]])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
