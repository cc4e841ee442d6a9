"""kubectl against a benchmark's own cluster (its kubeconfig, a timeout, the error on failure)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from outrider_devcluster import ClusterSettings


def kubectl(
    settings: ClusterSettings, binary: Path, *args: str, stdin: str | None = None, timeout_s: float = 120
) -> str:
    """Run ``kubectl args`` on the cluster of ``settings``; its stdout, or RuntimeError with stderr."""
    argv = [str(binary), "--kubeconfig", str(settings.kubeconfig), *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout
