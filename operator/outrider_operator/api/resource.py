"""The InferenceDeployment resource and its CRD-level metadata (names, columns, subresources)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from outrider_operator.api import labels
from outrider_operator.api.spec import InferenceDeploymentSpec
from outrider_operator.api.status import InferenceDeploymentStatus

__all__ = ["PRINTER_COLUMNS", "SCALE_SUBRESOURCE", "InferenceDeployment", "parse_spec"]


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
