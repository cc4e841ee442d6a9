"""Errors raised by the local control-plane tooling.

Every error names the component it concerns and, where there is one, the log file to read::

    DevClusterError                  base class; its message is meant for a person
    ├── BinaryError                  a control-plane binary is missing or could not be built
    │   └── BuildError               one build step failed (names the step and its log)
    ├── TopologyError                the node topology file is malformed
    └── ClusterError                 the cluster could not be started, reached or stopped
        ├── PortInUseError           a fixed port on 127.0.0.1 is already taken
        ├── StaleClusterError        a cluster folder is left from a run whose processes are gone
        └── ComponentExitedError     a component exited early or never became ready
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BinaryError",
    "BuildError",
    "ClusterError",
    "ComponentExitedError",
    "DevClusterError",
    "PortInUseError",
    "StaleClusterError",
    "TopologyError",
]


class DevClusterError(Exception):
    """Base class of every error of the local cluster tooling."""


class BinaryError(DevClusterError):
    """A control-plane binary is missing and cannot be located or built."""


class BuildError(BinaryError):
    """A build step failed; the message names the step and its log file."""

    def __init__(self, step: str, reason: str, log: Path | None = None) -> None:
        self.step = step
        self.reason = reason
        self.log = log
        where = f" (log: {log})" if log else ""
        super().__init__(f"build step '{step}' failed: {reason}{where}")


class TopologyError(DevClusterError):
    """The topology file or the node-count flag is invalid."""


class ClusterError(DevClusterError):
    """The cluster could not be started, reached or stopped."""


class PortInUseError(ClusterError):
    """A port that a component must listen on is already taken."""

    def __init__(self, component: str, port: int) -> None:
        self.component = component
        self.port = port
        super().__init__(
            f"{component}: port 127.0.0.1:{port} is already in use by another process; "
            f"stop it (or run `make cluster-down` if it is an earlier cluster) and retry"
        )


class StaleClusterError(ClusterError):
    """A cluster folder exists but its processes are partly or wholly gone."""


class ComponentExitedError(ClusterError):
    """A component exited early or did not become ready in time."""

    def __init__(self, component: str, reason: str, log: Path) -> None:
        self.component = component
        self.log = log
        tail = _tail(log)
        detail = f"\n--- last lines of {log} ---\n{tail}" if tail else ""
        super().__init__(f"{component} {reason}; see its log: {log}{detail}")


def _tail(path: Path, lines: int = 15) -> str:
    """Return the last lines of a log file, or an empty string when it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
