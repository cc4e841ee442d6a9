"""``outrider forecast``: backtests of the forecaster.

``outrider forecast backtest --trace PATH [--horizon 300] [--out DIR] [--quick]`` prints a table
(with progress on stderr) and writes ``DIR/backtest.json`` and ``DIR/backtest.png``. Exit codes:
0 success, 2 bad input (malformed trace, too little history).
"""

from __future__ import annotations

import argparse
import sys

from .errors import ForecastError
from .serve_cli import add_serve_parser

__all__ = ["register"]


def _backtest(args: argparse.Namespace) -> int:
    from .backtest import BacktestSettings, format_table, run_backtest, stderr_progress, write_outputs

    try:
        settings = BacktestSettings(
            horizon_seconds=args.horizon,
            quick=args.quick,
            score_from_seconds=args.score_from,
            score_until_seconds=args.score_until,
        )
        doc, plot = run_backtest(args.trace, settings, stderr_progress)
    except ForecastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in doc.get("repairs", []):
        print(f"repaired: {note}")
    print(format_table(doc))
    jpath, ppath = write_outputs(doc, plot, args.out)
    print(f"wrote {jpath} and {ppath}")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``forecast`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="forecast_command", metavar="SUBCOMMAND")
    bt = sub.add_parser(
        "backtest", help="Rolling-origin backtest of Outrider's forecaster against baselines."
    )
    bt.add_argument("--trace", required=True, help="CSV with header t_seconds,requests (bins of 1-60 s).")
    bt.add_argument("--horizon", type=int, default=300, help="Forecast horizon in seconds (default 300).")
    bt.add_argument("--out", default="backtest-out", help="Output folder for backtest.json and backtest.png.")
    bt.add_argument(
        "--quick",
        action="store_true",
        help="Fewer training rows, phases and refits of traces under a day (a week of 10-s bins: ~35 s).",
    )
    bt.add_argument(
        "--score-from",
        type=float,
        default=0.0,
        help="Score only forecasts made at or after this many seconds into the trace (a held-out split "
        "in time; the earlier part is still history).",
    )
    bt.add_argument(
        "--score-until", type=float, default=None, help="Score only forecasts made before this many seconds."
    )
    bt.set_defaults(func=_backtest)
    add_serve_parser(sub)

    def _usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_usage)
