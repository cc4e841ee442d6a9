"""``outrider check-environment``: print this machine's GPU discovery and what is missing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["check_environment", "register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add the check-environment options to ``parser``."""
    parser.add_argument("--json", action="store_true", help="Print the inventory JSON (the node annotation).")
    parser.add_argument(
        "--recorded", help="Use a recorded inventory (fixture name or .json path) instead of NVML."
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="Model cache folder (default /var/cache/outrider/models)."
    )
    parser.add_argument(
        "--record", type=Path, help="Also write the raw NVML reading to this file (a fixture)."
    )
    parser.set_defaults(func=check_environment)


def check_environment(args: argparse.Namespace) -> int:
    """Discover and print; exit 0 even on CPU-only machines (the report says what is missing)."""
    from .discovery import DEFAULT_MODEL_CACHE, discover
    from .errors import AgentError
    from .nvml import GpuBackend, PynvmlBackend, RecordedBackend, dump_snapshot
    from .report import render_report

    cache_dir: Path = args.cache_dir or DEFAULT_MODEL_CACHE
    try:
        backend: GpuBackend = RecordedBackend(args.recorded) if args.recorded else PynvmlBackend()
    except AgentError as exc:
        print(f"outrider check-environment: {exc}", file=sys.stderr)
        return 2
    inventory = discover(backend, cache_dir)
    if args.record:
        try:
            args.record.write_text(json.dumps(dump_snapshot(backend.snapshot()), indent=1))
        except AgentError as exc:
            print(f"outrider check-environment: cannot record: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(json.loads(inventory.to_annotation()), indent=2))
    else:
        print(render_report(inventory, cache_dir))
    return 0
