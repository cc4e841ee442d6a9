"""Errors raised by the node agent.

The tree::

    AgentError                  base of everything below
    ├── NvmlUnavailableError    no NVML (no driver, CPU node): report a CPU-only inventory
    ├── FixtureError            a recorded inventory is missing or malformed
    └── PublishError            the Node could not be patched (retried at the next interval)
"""

from __future__ import annotations

__all__ = ["AgentError", "FixtureError", "NvmlUnavailableError", "PublishError"]


class AgentError(Exception):
    """Base class of every error the node agent raises."""


class NvmlUnavailableError(AgentError):
    """NVML cannot be used on this machine; the message says why (shown as ``cpuOnlyReason``)."""


class FixtureError(AgentError):
    """A recorded NVML inventory could not be loaded."""


class PublishError(AgentError):
    """Patching the Node with the inventory failed."""
