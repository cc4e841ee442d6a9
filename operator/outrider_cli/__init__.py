"""The ``outrider`` command line: one entry point that dispatches to each component's subcommands.

Each component contributes a module with ``register(subparsers)``; modules are imported lazily so
that, for example, ``outrider forecast`` never imports the kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "forecast": ("outrider_scheduler.forecast.cli", "Load forecasting: backtests and live forecasts."),
    "check-environment": ("outrider_scheduler.agent.check_cli", "Print the GPU discovery for this machine."),
    "runtime": ("outrider_runtime.cli", "Run the per-node model server."),
    "extender": ("outrider_scheduler.extender.cli", "Run the kube-scheduler extender service."),
    "agent": ("outrider_scheduler.agent.run_cli", "Run the node GPU agent (publishes the GPU inventory)."),
    "planner": (
        "outrider_scheduler.planner.cli",
        "Run the planner: scale ahead of the forecast, answer surges.",
    ),
    "simulate": (
        "outrider_scheduler.simulate.cli",
        "Replay a trace through the planner, HPA, KPA, a Dynamo-style planner, static peak, an oracle.",
    ),
}
"""Subcommand name -> (module providing ``register(parser)``, one-line help)."""


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser; only the module of the chosen subcommand is imported."""
    parser = argparse.ArgumentParser(prog="outrider", description="Outrider: predictive inference serving.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv else None
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        if name == chosen:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                parser.error(f"subcommand {name!r} is not available in this installation: {exc}")
            register: Callable[[argparse.ArgumentParser], None] = mod.register
            register(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return func(args)


if __name__ == "__main__":
    raise SystemExit(main())
