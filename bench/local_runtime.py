"""A real ``outrider runtime serve`` process on 127.0.0.1 for the benchmarks: MiniLM, one intra-op
thread."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def start_runtime(
    tmp: Path, name: str, port: int, batching: dict[str, Any], log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start the runtime with ``batching`` (camelCase spec fields); its output goes to ``log`` (or ours)."""
    cfg = {
        "model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
        "batching": {"dynamic": "Enabled", **batching},
        "server": {"httpPort": port, "grpcPort": 0, "host": "127.0.0.1", "intraOpThreads": 1},
    }
    conf = tmp / f"{name}.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    out = log.open("wb") if log is not None else None
    cmd = [sys.executable, "-m", "outrider_cli", "runtime", "serve", "--config", str(conf)]
    return subprocess.Popen(
        [*cmd, "--log-level", "WARNING"],
        stdout=out,
        stderr=subprocess.STDOUT if out is not None else None,
    )


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 300.0) -> None:
    """Until the runtime on ``port`` answers ready; SystemExit if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the runtime on port {port} exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the runtime on port {port} did not become ready")
