from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from outrider_operator.manifests.generate import CRD_FILE, build_crd, write_all

REPO = Path(__file__).resolve().parents[2]


def load_samples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((REPO / "manifests" / "samples").glob("*.yaml")):
        docs += [
            d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "InferenceDeployment"
        ]
    return docs


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str, out: list[tuple[str, dict[str, Any]]]) -> None:
    out.append((path, node))
    for name, sub in node.get("properties", {}).items():
        _walk(sub, f"{path}.{name}", out)
    if "items" in node:
        _walk(node["items"], f"{path}[]", out)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}{{}}", out)


def test_schema_is_structural_and_documented() -> None:
    nodes: list[tuple[str, dict[str, Any]]] = []
    _walk(_schema(), "", nodes)
    assert len(nodes) > 80
    for path, node in nodes:
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "title", "$defs"):
            assert forbidden not in node, f"{path} has {forbidden}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        assert not (node.get("additionalProperties") is not None and "properties" in node), path
    for path, node in nodes:
        if (
            path.count(".") >= 2
            and path.split(".")[1] in ("spec", "status")
            and not path.endswith(("[]", "{}"))
        ):
            assert node.get("description"), f"{path} has no description"


def test_crd_metadata() -> None:
    crd = build_crd()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["infd"] and names["categories"] == ["outrider"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas.target"
    assert "status" in version["subresources"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == [
        "Ready",
        "Active",
        "Warm",
        "Cold",
        "Batch",
        "GPUs",
        "Forecast",
        "Pods",
        "Demand",
        "Age",
    ]
    wide = {c["name"] for c in version["additionalPrinterColumns"] if c.get("priority") == 1}
    assert wide == {"Pods", "Demand"}
    rules = [
        r["rule"]
        for r in version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    ]
    assert any("replicas.min" in r for r in rules)


def test_generated_files_are_committed_and_fresh(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    write_all(tmp_path)
    for rel in (
        f"crds/{CRD_FILE}",
        f"charts/outrider/crds/{CRD_FILE}",
        "charts/outrider/files/operator-rbac-rules.yaml",
        "charts/outrider/files/operator-cluster-rules.yaml",
        "docs/api-reference.md",
    ):
        assert (tmp_path / rel).read_text() == (repo / rel).read_text(), f"{rel} is stale: run make manifests"


@pytest.mark.parametrize("sample", load_samples(), ids=lambda d: d["metadata"]["name"])
def test_samples_validate_against_generated_schema(sample: dict[str, Any]) -> None:
    jsonschema.validate(sample, _schema())


def test_schema_rejects_what_models_reject() -> None:
    bad = {
        "apiVersion": "outrider.dev/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": "x"},
        "spec": {"model": {"name": "m", "uri": "builtin:x"}, "precision": {"policy": "fp64"}},
    }
    with pytest.raises(jsonschema.ValidationError, match="fp64"):
        jsonschema.validate(bad, _schema())
    bad["spec"] = {"model": {"name": "m", "uri": "builtin:x"}, "batching": {"maxBatchSize": 100000}}
    with pytest.raises(jsonschema.ValidationError, match="100000"):
        jsonschema.validate(bad, _schema())


def test_rendered_chart_crd_matches_source(repo: Path) -> None:
    a = yaml.safe_load((repo / "crds" / CRD_FILE).read_text())
    b = yaml.safe_load((repo / "charts" / "outrider" / "crds" / CRD_FILE).read_text())
    assert a == b == build_crd()
