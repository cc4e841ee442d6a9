"""Scheduling overrides for the serving pods: node selector, tolerations and priority class."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from outrider_operator.api.base import ApiModel, cel
from outrider_operator.api.patterns import DNS_SUBDOMAIN, LABEL_VALUE, QUALIFIED_NAME

__all__ = [
    "PlacementSpec",
    "Toleration",
    "TolerationEffect",
    "TolerationOperator",
]


class TolerationOperator(StrEnum):
    """How a toleration matches a taint's value."""

    EXISTS = "Exists"
    EQUAL = "Equal"


class TolerationEffect(StrEnum):
    """The taint effect a toleration matches (empty: every effect)."""

    ALL = ""
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """A core/v1 Toleration, with the checks the apiserver applies to a pod's."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            (
                "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "a toleration with operator Exists must not have a value",
                ".value",
            ),
            (
                "(has(self.key) && self.key != '') || self.operator == 'Exists'",
                "a toleration without a key must use operator Exists",
                ".operator",
            ),
            (
                "!has(self.tolerationSeconds) || self.effect == 'NoExecute'",
                "tolerationSeconds applies only to effect NoExecute",
                ".tolerationSeconds",
            ),
        )
    }

    key: str = Field(
        default="",
        max_length=317,
        pattern=r"^$|" + QUALIFIED_NAME,
        description="Taint key to match (empty with operator Exists: every taint).",
    )
    operator: TolerationOperator = Field(default=TolerationOperator.EQUAL, description="Exists or Equal.")
    value: str = Field(
        default="", max_length=63, pattern=LABEL_VALUE, description="Taint value (Equal only)."
    )
    effect: TolerationEffect = Field(
        default=TolerationEffect.ALL, description="NoSchedule, PreferNoSchedule, NoExecute, or empty for all."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        le=31_536_000,
        description="With NoExecute: how long the pod stays bound after the taint appears (at most a year).",
    )

    def to_pod(self) -> dict[str, Any]:
        """The toleration as a pod spec holds it (empty strings left out, as the apiserver stores it)."""
        return {k: v for k, v in self.to_wire().items() if v != ""}

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == TolerationOperator.EXISTS.value and self.value:
            raise ValueError("a toleration with operator Exists must not have a value")
        if not self.key and self.operator != TolerationOperator.EXISTS.value:
            raise ValueError("a toleration without a key must use operator Exists")
        if self.toleration_seconds is not None and self.effect != TolerationEffect.NO_EXECUTE.value:
            raise ValueError("tolerationSeconds applies only to effect NoExecute")
        return self


class PlacementSpec(ApiModel):
    """Scheduling overrides for the serving pods."""

    node_selector: dict[
        Annotated[str, Field(max_length=317, pattern=QUALIFIED_NAME)],
        Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)],
    ] = Field(
        default_factory=dict,
        max_length=64,
        description="Node labels pods must match (at most 64; label keys and values).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Pod tolerations (core/v1 Toleration objects).",
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN, description="Pod priority class."
    )
