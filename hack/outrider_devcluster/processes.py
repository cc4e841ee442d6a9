"""Start, watch and stop component processes, recording each PID so ``down`` stops only its own.

A PID file ``pids/<component>.pid`` holds ``<pid> <start-time> <executable>``; a process is taken
as ours only if ``/proc/<pid>`` still shows the same start time (so a reused PID is never signalled).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ComponentExitedError, PortInUseError

__all__ = ["ManagedProcess", "ProcessTable", "check_port_free", "rss_bytes"]


def check_port_free(component: str, port: int) -> None:
    """Raise PortInUseError if something already listens on (or holds) 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the Go servers, ignore connections lingering in TIME_WAIT from an earlier run.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(component, port) from exc
            raise


def _start_time(pid: int) -> str | None:
    """Return the process start time (clock ticks since boot) from /proc, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields and fields[0] == "Z":
        return None
    return fields[19] if len(fields) > 19 else None


def rss_bytes(pid: int) -> int:
    """Resident set size of a process in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class ManagedProcess:
    """One component process started by this tooling."""

    component: str
    """Component name (etcd, kube-apiserver, ...)."""
    pid: int
    """Process id."""
    start_time: str
    """Start time from /proc/<pid>/stat, guarding against PID reuse."""
    log: Path
    """The component's log file."""
    popen: subprocess.Popen[bytes] | None = None
    """The Popen handle when started by this Python process."""

    def alive(self) -> bool:
        """True while the process runs and is the one we started."""
        if self.popen is not None and self.popen.poll() is not None:
            return False
        return _start_time(self.pid) == self.start_time

    def exit_status(self) -> int | None:
        """Exit status if we started it here and it has exited."""
        return self.popen.poll() if self.popen is not None else None

    def ensure_running(self) -> None:
        """Raise ComponentExitedError (naming the log) when the process is gone."""
        if not self.alive():
            status = self.exit_status()
            how = f"exited early with status {status}" if status is not None else "is no longer running"
            raise ComponentExitedError(self.component, how, self.log)

    def wait_until(
        self, probe: Callable[[], bool], timeout_s: float, failure: str, *, every_s: float = 0.1
    ) -> float:
        """Poll ``probe`` every ``every_s`` until it holds; return the seconds waited.

        Raises ComponentExitedError (naming the log) when the process exits first, or, with the
        reason "``failure`` within N s", when ``probe`` does not hold within ``timeout_s``.
        """
        started = time.monotonic()
        while True:
            self.ensure_running()
            if probe():
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise ComponentExitedError(self.component, f"{failure} within {timeout_s:.0f}s", self.log)
            time.sleep(every_s)

    def stop(self, timeout_s: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout_s``; return True if it was running."""
        if not self.alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(0.1)
            if not self.alive():
                return True
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
        return True


class ProcessTable:
    """The PID files of one cluster folder."""

    def __init__(self, pid_dir: Path, log_dir: Path) -> None:
        self.pid_dir = pid_dir
        self.log_dir = log_dir

    def log_for(self, component: str) -> Path:
        """``logs/<component>.log``."""
        return self.log_dir / f"{component}.log"

    def start(self, component: str, argv: list[str], *, env: dict[str, str] | None = None) -> ManagedProcess:
        """Start ``argv`` in its own session, logging to the component's log, and record its PID."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_for(component)
        with log.open("ab") as out:
            out.write(f"==> {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        start = _start_time(popen.pid) or "0"
        (self.pid_dir / f"{component}.pid").write_text(f"{popen.pid} {start} {argv[0]}\n")
        return ManagedProcess(component, popen.pid, start, log, popen)

    def record_self(self, component: str) -> None:
        """Record this Python process as ``component`` (so ``down`` stops it; ``forget`` undoes it)."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        (self.pid_dir / f"{component}.pid").write_text(f"{pid} {_start_time(pid) or '0'} {sys.executable}\n")

    def recorded(self) -> list[ManagedProcess]:
        """Every process recorded in the PID folder (alive or not), oldest first."""
        found: list[tuple[float, ManagedProcess]] = []
        if not self.pid_dir.is_dir():
            return []
        for pid_file in self.pid_dir.glob("*.pid"):
            component = pid_file.stem
            try:
                pid_text, start, _exe = pid_file.read_text().split(maxsplit=2)
                found.append(
                    (
                        pid_file.stat().st_mtime,
                        ManagedProcess(component, int(pid_text), start, self.log_for(component)),
                    )
                )
            except (OSError, ValueError):
                continue
        return [p for _, p in sorted(found, key=lambda item: item[0])]

    def forget(self, component: str) -> None:
        """Remove a component's PID file."""
        with contextlib.suppress(FileNotFoundError):
            (self.pid_dir / f"{component}.pid").unlink()
