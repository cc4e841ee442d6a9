"""Base class and helpers shared by every API model.

Every field carries a description (it becomes the CRD's field documentation) and, where it has
one, a default (it becomes the schema default, so `kubectl get -o yaml` shows it). Cross-field
rules are CEL expressions attached with :func:`cel`, checked by the apiserver and mirrored in
Python validators so that the models and the schema agree.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["ApiModel", "cel"]


class ApiModel(BaseModel):
    """Base for API models: camelCase wire names, unknown fields rejected, values validated."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        use_enum_values=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """Serialise with camelCase keys, leaving out fields that are unset and None."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """Build ``json_schema_extra`` holding ``x-kubernetes-validations``.

    Each rule is ``(expression, message)`` or ``(expression, message, fieldPath)``.
    """
    out: list[dict[str, str]] = []
    for rule in rules:
        item = {"rule": rule[0], "message": rule[1]}
        if len(rule) == 3:
            item["fieldPath"] = rule[2]
        out.append(item)
    return {"x-kubernetes-validations": out}
