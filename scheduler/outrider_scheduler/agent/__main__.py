"""``python -m outrider_scheduler.agent``: run the node agent."""

from __future__ import annotations

import argparse

from .run_cli import register


def main() -> int:
    """Parse the agent options and run it."""
    parser = argparse.ArgumentParser(prog="outrider-agent", description="Outrider node GPU agent.")
    register(parser)
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
