"""What every long-running ``outrider`` command does the same way: logs, credentials, signals.

- Logs: ``--log-format text|json`` (default ``$OUTRIDER_LOG_FORMAT``, else text) and
  ``--log-level``; one line per record on stderr, JSON with ``time``, ``level``, ``logger`` and
  ``message`` (plus ``exception`` when there is one) for log collectors.
- Credentials: :func:`kube_client_or_report` loads a kubeconfig (or the in-cluster service
  account) and turns a failure into one clear line and exit code 2, the same for every command.
- Signals: :func:`stop_event` gives a :class:`threading.Event` that SIGTERM and SIGINT set.

Standard library only at import time (the runtime uses it too, and must not load the
Kubernetes client); :func:`kube_client_or_report` imports the client when called.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "LOG_FORMAT_ENV",
    "JsonFormatter",
    "add_logging_arguments",
    "kube_client_or_report",
    "setup_logging",
    "stop_event",
]

LOG_FORMAT_ENV = "OUTRIDER_LOG_FORMAT"
"""Environment variable with the default log format (``text`` or ``json``)."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        doc: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def add_logging_arguments(parser: argparse.ArgumentParser, default_level: str = "INFO") -> None:
    """Add ``--log-format`` and ``--log-level`` to ``parser``."""
    default_format = os.environ.get(LOG_FORMAT_ENV, "text")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=default_format if default_format in ("text", "json") else "text",
        help=f"Log line format (default: ${LOG_FORMAT_ENV}, else text).",
    )
    parser.add_argument("--log-level", default=default_level, help="Log level (DEBUG, INFO, WARNING, ...).")


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Send log records to stderr as text or JSON lines, at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def kube_client_or_report(kubeconfig: str | Path | None, prog: str) -> Any | None:
    """A Kubernetes ``ApiClient`` from ``kubeconfig`` ($KUBECONFIG, else in-cluster when None), or
    None after printing ``prog: why`` on stderr in one line (the caller exits 2)."""
    from outrider_operator.errors import KubeConfigError
    from outrider_operator.kube.rest import load_api_client

    try:
        return load_api_client(kubeconfig)
    except KubeConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def stop_event() -> threading.Event:
    """An event that SIGTERM and SIGINT set (call from the main thread)."""
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop
