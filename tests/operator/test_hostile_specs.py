"""Specs the operator could never serve are refused by the schema (the CRD's and pydantic's alike),
and no accepted spec is large enough to trouble the apiserver or kopf's per-object bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from outrider_operator.api.resource import name_problem, parse_spec
from outrider_operator.manifests.generate import build_crd
from outrider_operator.reconcile.children import Owner, render_children

SPEC_BOUND_BYTES = 64 * 1024
"""The largest spec the CRD accepts serialises to less than this (the apiserver's object limit is
about 1.5 MB and an annotation value 256 KB; kopf keeps a copy of the spec in one)."""


def _spec(**over: Any) -> dict[str, Any]:
    return {"model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"}, **over}


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("toleration with an unknown field", {"placement": {"tolerations": [{"key": "k", "bogus": 1}]}}, "bogus"),
    ("toleration key of the wrong type", {"placement": {"tolerations": [{"key": 5}]}}, "tolerations.0.key"),
    (
        "Exists with a value",
        {"placement": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        "Exists",
    ),
    ("no key without Exists", {"placement": {"tolerations": [{"operator": "Equal"}]}}, "without a key"),
    (
        "seconds without NoExecute",
        {"placement": {"tolerations": [{"key": "k", "tolerationSeconds": 5}]}},
        "NoExecute",
    ),
    ("CPU that overflows", {"runtime": {"resources": {"cpu": "10000000000000P"}}}, "resources.cpu"),
    ("memory that overflows", {"runtime": {"resources": {"memory": "99999999Pi"}}}, "resources.memory"),
    ("image with whitespace", {"runtime": {"image": "repo/img :1"}}, "runtime.image"),
    ("GPU product that is no label value", {"runtime": {"gpuProducts": ["NVIDIA H100"]}}, "gpuProducts.0"),
    ("node selector key with a space", {"placement": {"nodeSelector": {"a b": "v"}}}, "nodeSelector"),
    ("node selector value of 1 MB", {"placement": {"nodeSelector": {"k": "x" * 1_000_000}}}, "nodeSelector"),
    (
        "65 node selector labels",
        {"placement": {"nodeSelector": {f"k{i}": "v" for i in range(65)}}},
        "nodeSelector",
    ),
    ("priority class with a space", {"placement": {"priorityClassName": "Bad Name"}}, "priorityClassName"),
]


@pytest.mark.parametrize(("what", "over", "names"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_specs_are_refused_naming_the_field(what: str, over: dict[str, Any], names: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spec(_spec(**over))
    assert names in str(caught.value), f"{what}: {caught.value}"


def test_valid_tolerations_render_as_the_apiserver_stores_them() -> None:
    spec = parse_spec(
        _spec(
            placement={
                "tolerations": [
                    {"operator": "Exists"},
                    {"key": "gpu", "value": "h100", "effect": "NoExecute", "tolerationSeconds": 30},
                ]
            }
        )
    )
    deployment = next(
        o for o in render_children(Owner("m", "ns", "uid"), spec, 1) if o["kind"] == "Deployment"
    )
    assert deployment["spec"]["template"]["spec"]["tolerations"] == [
        {"operator": "Exists"},
        {"key": "gpu", "operator": "Equal", "value": "h100", "effect": "NoExecute", "tolerationSeconds": 30},
    ]


@pytest.mark.parametrize(
    ("name", "ok"),
    [("minilm", True), ("a" * 63, True), ("a-1", True), ("a.b", False), ("9abc", False), ("a" * 64, False)],
)
def test_names_no_child_could_carry_are_refused(name: str, ok: bool) -> None:
    assert (name_problem(name) is None) is ok


def _bytes_per_char(pattern: str | None) -> int:
    """1 where the pattern admits only ASCII letters, digits and punctuation; else 6 (JSON may
    escape a character as a 6-byte \\uXXXX)."""
    if pattern is None or any(free in pattern for free in ("\\S", "[^", ".*")):
        return 6
    return 1


def _max_bytes(node: dict[str, Any], path: str) -> int:
    """An upper bound of the JSON size of any value the schema ``node`` accepts; every string,
    list and map must be bounded (a field without a bound fails here, naming it)."""
    if "enum" in node:
        return max(len(str(v)) + 2 for v in node["enum"])
    kind = node.get("type")
    if kind == "string":
        assert "maxLength" in node, f"{path}: a string without maxLength"
        return 2 + _bytes_per_char(node.get("pattern")) * int(node["maxLength"])
    if kind in ("integer", "number"):
        return 24
    if kind == "boolean":
        return 5
    if kind == "array":
        assert "maxItems" in node, f"{path}: a list without maxItems"
        return 2 + int(node["maxItems"]) * (1 + _max_bytes(node["items"], f"{path}[]"))
    if kind == "object" and "additionalProperties" in node:
        assert "maxProperties" in node, f"{path}: a map without maxProperties"
        key = 2 + 317  # map keys: ASCII label keys (checked by CEL)
        value = _max_bytes(node["additionalProperties"], f"{path}.*")
        return 2 + int(node["maxProperties"]) * (key + 2 + value)
    if kind == "object":
        assert not node.get("x-kubernetes-preserve-unknown-fields"), f"{path}: free-form object"
        props = node.get("properties", {})
        return 2 + sum(len(k) + 4 + _max_bytes(v, f"{path}.{k}") for k, v in props.items())
    raise AssertionError(f"{path}: unexpected schema {node}")


def test_every_spec_field_is_bounded_and_the_largest_spec_is_small() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    bound = _max_bytes(schema, "spec")
    assert bound < SPEC_BOUND_BYTES, f"the largest accepted spec may reach {bound} bytes"
