"""The InferenceDeployment resource and its CRD-level metadata (names, columns, subresources)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from outrider_operator.api import labels
from outrider_operator.api.spec import InferenceDeploymentSpec
from outrider_operator.api.status import InferenceDeploymentStatus

__all__ = [
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "NAME_RULE",
    "PRINTER_COLUMNS",
    "SCALE_SUBRESOURCE",
    "InferenceDeployment",
    "name_problem",
    "parse_spec",
]

NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""An InferenceDeployment's name is its Service's name, so an RFC 1035 label (no dots, a letter first)."""
NAME_MAX_LENGTH = 63
"""It is also the value of the ``outrider.dev/deployment`` label on every child: at most 63 characters."""
NAME_RULE = {
    "rule": f"size(self.metadata.name) <= {NAME_MAX_LENGTH} && self.metadata.name.matches('{NAME_PATTERN}')",
    "message": (
        f"metadata.name must be at most {NAME_MAX_LENGTH} characters of lower-case letters, digits and "
        "'-', starting with a letter and ending with a letter or digit (it names the Service and labels "
        "every child)"
    ),
}
"""The CRD's root CEL rule on ``metadata.name``: names that no child could carry are refused at apply."""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be served (the same check as :data:`NAME_RULE`), or None."""
    if len(name) > NAME_MAX_LENGTH or re.fullmatch(NAME_PATTERN, name) is None:
        return str(NAME_RULE["message"]).removeprefix("metadata.name ")
    return None


class InferenceDeployment(BaseModel):
    """An InferenceDeployment object as stored in the apiserver."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: str = Field(default=f"{labels.API_GROUP}/{labels.API_VERSION}", alias="apiVersion")
    kind: str = Field(default=labels.KIND)
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: InferenceDeploymentSpec
    status: InferenceDeploymentStatus = Field(default_factory=InferenceDeploymentStatus)


def parse_spec(raw: dict[str, Any]) -> InferenceDeploymentSpec:
    """Validate a raw ``spec`` mapping; raises pydantic.ValidationError naming each bad field."""
    return InferenceDeploymentSpec.model_validate(raw)


def _condition(ctype: str) -> str:
    return f'.status.conditions[?(@.type=="{ctype}")].status'


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": _condition("Ready"), "description": "Ready condition."},
    {
        "name": "Active",
        "type": "integer",
        "jsonPath": ".status.plan.servingPods",
        "description": "Pods serving traffic (counted by the planner from each pod's runtime).",
    },
    {
        "name": "Warm",
        "type": "integer",
        "jsonPath": ".status.plan.warmPods",
        "description": "Standby pods with the model loaded (planner).",
    },
    {
        "name": "Cold",
        "type": "integer",
        "jsonPath": ".status.plan.coldPods",
        "description": "Standby pods with nothing loaded (planner).",
    },
    {
        "name": "Batch",
        "type": "integer",
        "jsonPath": ".status.batchSize",
        "description": "Batch size the serving pods use (planner).",
    },
    {"name": "GPUs", "type": "integer", "jsonPath": ".status.gpusAttached", "description": "GPUs attached."},
    {
        "name": "Forecast",
        "type": "string",
        "jsonPath": ".status.forecast.p90PeakRps",
        "description": "p90 of the forecast peak request rate (requests/s).",
    },
    {
        "name": "Pods",
        "type": "integer",
        "priority": 1,
        "jsonPath": ".status.pools.active.ready",
        "description": "Ready pods of the active pool's Deployment (operator).",
    },
    {
        "name": "Demand",
        "type": "string",
        "priority": 1,
        "jsonPath": ".status.plan.demandRps",
        "description": "Request rate at the serving pods (requests/s, planner).",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
"""Columns shown by ``kubectl get infd``."""

SCALE_SUBRESOURCE: dict[str, str] = {
    "specReplicasPath": ".spec.replicas.target",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".status.selector",
}
"""The /scale subresource: HPA, KEDA and kubectl scale write spec.replicas.target."""
