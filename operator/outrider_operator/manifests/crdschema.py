"""Turn pydantic models into a Kubernetes structural OpenAPI v3 schema.

pydantic's JSON Schema uses ``$ref``/``$defs``, ``anyOf`` for optional fields, titles and
``additionalProperties: false``; a CRD needs a self-contained structural schema. This module
inlines references, unwraps optionals, drops what the apiserver forbids and fills in defaults
for nested objects (``default: {}``) so that the apiserver applies the inner defaults too.
"""

from __future__ import annotations

import copy
import json
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter

__all__ = ["SchemaError", "structural_schema"]

_DROP_KEYS = {"title", "additionalProperties_false", "discriminator", "$defs"}


class SchemaError(ValueError):
    """The model cannot be expressed as a structural schema (a generator bug, not user input)."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the structural OpenAPI v3 schema of ``model`` (camelCase, defaults included)."""
    raw: dict[str, Any] = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.get("$defs", {})
    out = _convert(raw, defs, path="")
    _apply_factory_defaults(model, out)
    _check_descriptions(out, path=model.__name__)
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.rsplit("/", 1)[-1]
    if name not in defs:
        raise SchemaError(f"unresolvable reference {ref}")
    merged: dict[str, Any] = copy.deepcopy(defs[name])
    for key, value in node.items():
        if key != "$ref":
            merged[key] = value
    return merged


def _unwrap_optional(node: dict[str, Any]) -> dict[str, Any]:
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if options is None:
            continue
        non_null = [o for o in options if o.get("type") != "null"]
        if len(non_null) != 1:
            raise SchemaError(f"unions other than Optional[X] are not supported: {json.dumps(options)}")
        merged = {k: v for k, v in node.items() if k != key}
        merged["_optional"] = True
        inner = non_null[0]
        for k, v in inner.items():
            merged.setdefault(k, v)
        if merged.get("default", 0) is None:
            del merged["default"]
        return merged
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for k, v in node["allOf"][0].items():
            merged.setdefault(k, v)
        return merged
    return node


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _unwrap_optional(_resolve(node, defs))
    node = _resolve(node, defs)
    node = _unwrap_optional(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS or key in ("$ref", "_optional"):
            continue
        if key == "additionalProperties":
            if value is False:
                continue
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
                continue
            out[key] = _convert(value, defs, f"{path}.*")
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "const":
            out["enum"] = [value]
        elif key == "propertyNames":  # not allowed in a CRD schema: the same check as a CEL rule
            out.setdefault("x-kubernetes-validations", []).append(_key_rule(value, path))
        elif key == "patternProperties":  # likewise: the values' schema plus a CEL rule on the keys
            if len(value) != 1:
                raise SchemaError(f"field {path}: only one key pattern is supported")
            ((pattern, sub),) = value.items()
            out["additionalProperties"] = _convert(sub, defs, f"{path}.*")
            out.setdefault("x-kubernetes-validations", []).append(_key_rule({"pattern": pattern}, path))
        else:
            out[key] = value
    if "properties" in out:
        out["type"] = "object"
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") is None and "x-kubernetes-preserve-unknown-fields" not in out:
        raise SchemaError(f"field {path or '<root>'} has no type")
    return out


def _key_rule(names: dict[str, Any], path: str) -> dict[str, str]:
    """A CEL rule checking every key of a map (``propertyNames``: maxLength and pattern)."""
    unknown = set(names) - {"maxLength", "pattern", "type"}
    if unknown:
        raise SchemaError(f"field {path}: propertyNames {sorted(unknown)} unsupported")
    if "maxLength" in names:
        limit = int(names["maxLength"])
        return {
            "rule": f"self.all(k, size(k) <= {limit})",
            "message": f"keys must be at most {limit} characters",
        }
    if "pattern" in names:
        pattern = names["pattern"]
        return {
            "rule": f"self.all(k, k.matches({json.dumps(pattern)}))",
            "message": f"keys must match {pattern}",
        }
    raise SchemaError(f"field {path}: propertyNames without a check")


def _apply_factory_defaults(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Put defaults of ``default_factory`` fields into the schema (pydantic leaves them out).

    A nested model's default is its fully defaulted form: the apiserver checks defaults against
    the CEL rules of their object without applying the inner defaults first.
    """
    props = schema.get("properties", {})
    for name, field in model.model_fields.items():
        key = field.alias or name
        sub = props.get(key)
        if sub is None:
            continue
        if field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                sub["default"] = value.model_dump(by_alias=True, exclude_none=True, mode="json")
            else:
                sub["default"] = TypeAdapter(Any).dump_python(value, mode="json")
        for nested in _models_in(field.annotation):
            target = sub.get("items", sub) if sub.get("type") == "array" else sub
            _apply_factory_defaults(nested, target)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _check_descriptions(node: dict[str, Any], path: str) -> None:
    for name, sub in node.get("properties", {}).items():
        if not sub.get("description"):
            raise SchemaError(f"field {path}.{name} has no description")
        _check_descriptions(sub, f"{path}.{name}")
    if "items" in node:
        _check_descriptions(node["items"], f"{path}[]")
