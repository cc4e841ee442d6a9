"""``outrider planner profile``: learn a capacity profile from live runtimes under real traffic.

Exit codes: 0 written, 1 a runtime did not answer, the runtimes serve different models, no batch
ran or the file could not be written, 2 bad arguments or an unusable base profile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

__all__ = ["add_profile_parser"]

_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def _fail(message: str, code: int) -> int:
    print(f"outrider planner profile: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from .errors import ProfileError
    from .learn_profile import LearnError, learn_profile
    from .profile import CapacityProfile, default_profile, load_profile
    from .runtime_client import RuntimeClient

    bad = [a for a in args.runtime if not (m := _ADDRESS.match(a)) or not 0 < int(m.group(2)) < 65536]
    if bad:
        return _fail(f"--runtime wants HOST:PORT ([IPv6]:PORT), got {', '.join(repr(b) for b in bad)}", 2)
    if args.model is not None and not 0 < len(args.model) <= 128:
        return _fail(f"--model must be 1-128 characters, got {len(args.model)}", 2)
    if not 0 < args.seconds <= 86400:
        return _fail(f"--seconds must be in (0, 86400], got {args.seconds}", 2)
    if not 0.1 <= args.interval <= 60:
        return _fail(f"--interval must be in [0.1, 60], got {args.interval}", 2)
    out = Path(args.out)
    if not out.parent.is_dir():
        return _fail(f"--out {out}: folder {out.parent} does not exist", 2)
    if out.is_dir():
        return _fail(f"--out {out} is a folder; name the file to write", 2)
    base: CapacityProfile | None = None
    if args.base == "builtin":
        base = default_profile()
    elif args.base:
        try:
            base = load_profile(args.base)
        except ProfileError as exc:
            return _fail(str(exc), 2)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    async def main() -> int:
        async with RuntimeClient(poll_timeout_s=5.0) as client:
            say(f"reading {len(args.runtime)} runtime(s) for {args.seconds:.0f} s; send them traffic now")
            try:
                learned = await learn_profile(
                    list(args.runtime),
                    lambda address: client.load(address, address),
                    args.seconds,
                    base,
                    args.model,
                    args.interval,
                    say,
                )
            except LearnError as exc:
                return _fail(str(exc), 1)
        text = json.dumps(learned.profile.to_wire(), indent=2) + "\n"
        try:
            out.write_text(text)
        except OSError as exc:
            return _fail(f"cannot write {out}: {exc}", 1)
        sizes = ", ".join(f"{b}: {n}" for b, n in learned.batches.items())
        say(f"batches by size: {sizes}")
        say(f"measured: batch sizes {', '.join(str(b) for b in learned.measured)}")
        if base is not None:
            others = sorted({p.batch_size for p in learned.profile.points} - set(learned.measured))
            say(
                f"from the base profile at {learned.speed:.2f}x its time (the speed factor): batch sizes "
                f"{', '.join(str(b) for b in others) or 'none'}"
            )
        say(f"wrote {out} ({len(learned.profile.points)} points)")
        return 0

    return asyncio.run(main())


def add_profile_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``profile`` to the planner's subcommands."""
    pr = sub.add_parser(
        "profile",
        help="Learn a capacity profile from live runtimes' batch statistics (for simulate --profile).",
        description=(
            "Read the runtimes' /v2/admin/load for a while, as the planner does with its pods, and write "
            "the service time per batch size their batches took as a capacity profile. Send the runtimes "
            "their usual traffic meanwhile: only batch sizes that ran are measured (with --base, the others "
            "are the base profile's, scaled by how much slower or faster the runtimes ran)."
        ),
    )
    pr.add_argument(
        "--runtime",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="A runtime's HTTP address (repeatable; e.g. a kubectl port-forward of a serving pod).",
    )
    pr.add_argument("--seconds", type=float, default=300.0, help="How long to read (default 300).")
    pr.add_argument("--interval", type=float, default=1.0, help="Seconds between readings (default 1).")
    pr.add_argument(
        "--base",
        default=None,
        help="Profile the readings replace, FILE or 'builtin' (the shipped MiniLM CPU one; default none).",
    )
    pr.add_argument("--model", default=None, help="Model name in the profile (default the runtimes').")
    pr.add_argument("--out", required=True, help="Where to write the profile (JSON).")
    pr.set_defaults(func=_run)
