"""The kube-scheduler extender protocol v1, with Go's PascalCase JSON keys.

kube-scheduler POSTs ``ExtenderArgs`` (``Pod``, ``Nodes`` or ``NodeNames``) to ``<urlPrefix>/<verb>``.
Filter answers ``ExtenderFilterResult``; prioritize answers a list of ``HostPriority``. A
node-cache-capable extender receives and returns ``NodeNames``; otherwise whole ``Nodes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import MalformedRequestError

__all__ = ["MAX_PRIORITY", "ExtenderArgs", "ExtenderFilterResult", "HostPriority"]

MAX_PRIORITY = 10
"""kube-scheduler's MaxExtenderPriority: extender scores are integers in 0..10."""


@dataclass(slots=True)
class ExtenderArgs:
    """A filter or prioritize request."""

    pod: dict[str, Any]
    node_names: list[str] | None = None
    nodes: list[dict[str, Any]] | None = None
    """Items of the NodeList when the caller sent whole nodes (not node-cache-capable)."""

    @classmethod
    def from_json(cls, body: bytes | str) -> ExtenderArgs:
        """Parse a request body; raises MalformedRequestError naming what is wrong."""
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedRequestError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise MalformedRequestError("request body must be a JSON object (ExtenderArgs)")
        pod = data.get("Pod")
        if pod is None:
            raise MalformedRequestError("field 'Pod' is missing")
        if not isinstance(pod, dict):
            raise MalformedRequestError("field 'Pod' must be a JSON object (a v1 Pod)")
        names = data.get("NodeNames")
        node_list = data.get("Nodes")
        if names is None and node_list is None:
            raise MalformedRequestError("one of 'NodeNames' or 'Nodes' is required")
        if names is not None:
            if not isinstance(names, list):
                raise MalformedRequestError("field 'NodeNames' must be a list of strings")
            # Element types are checked where the names are looked up (one pass, not two).
            return cls(pod=pod, node_names=names)
        if not isinstance(node_list, Mapping) or not isinstance(node_list.get("items", []), list):
            raise MalformedRequestError("field 'Nodes' must be a v1 NodeList object with 'items'")
        return cls(pod=pod, nodes=list(node_list.get("items") or []))


@dataclass(slots=True)
class ExtenderFilterResult:
    """The filter answer."""

    node_names: list[str] | None = None
    nodes: list[dict[str, Any]] | None = None
    failed_nodes: dict[str, str] = field(default_factory=dict)
    failed_and_unresolvable_nodes: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict with Go field names."""
        out: dict[str, Any] = {
            "FailedNodes": self.failed_nodes,
            "FailedAndUnresolvableNodes": self.failed_and_unresolvable_nodes,
            "Error": self.error,
        }
        if self.nodes is not None:
            out["Nodes"] = {"apiVersion": "v1", "kind": "NodeList", "items": self.nodes}
            out["NodeNames"] = None
        else:
            out["Nodes"] = None
            out["NodeNames"] = self.node_names if self.node_names is not None else []
        return out


@dataclass(frozen=True, slots=True)
class HostPriority:
    """One entry of the prioritize answer."""

    host: str
    score: int

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict with Go field names."""
        return {"Host": self.host, "Score": self.score}
