"""The watch-fed object cache: slim copies, newest version wins, and "would applying change it?"."""

from __future__ import annotations

from typing import Any

from outrider_operator.api.resource import parse_spec
from outrider_operator.kube.cache import ObjectCache, covers, slim
from outrider_operator.reconcile.children import Owner, render_children


def _obj(rv: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "m",
            "namespace": "ns",
            "resourceVersion": rv,
            "managedFields": [{"manager": "x", "fieldsV1": {"f:spec": {}}}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "1"},
        },
        "spec": {"replicas": replicas},
    }


def test_slim_drops_what_the_operator_never_reads() -> None:
    body = _obj("5")
    out = slim(body)
    assert "managedFields" not in out["metadata"]
    assert out["metadata"]["annotations"] == {"keep": "1"}
    assert body["metadata"]["managedFields"]  # the event's own body is left alone


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = ObjectCache()
    cache.upsert(_obj("10", replicas=2))
    cache.upsert(_obj("9", replicas=7))  # a late watch event after the apply reply
    assert (cache.get("Deployment", "ns", "m") or {})["spec"]["replicas"] == 2
    cache.upsert(_obj("11", replicas=3))
    assert (cache.get("Deployment", "ns", "m") or {})["spec"]["replicas"] == 3
    assert list(cache.keys("Deployment")) == [("ns", "m")]
    cache.delete(_obj("12"))
    assert cache.get("Deployment", "ns", "m") is None and len(cache) == 0


def test_covers_ignores_additions_and_compares_quantities_by_value() -> None:
    desired = {
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}}}]}
    }
    live = {
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                    "terminationMessagePath": "/dev/termination-log",  # a default the apiserver adds
                }
            ],
            "dnsPolicy": "ClusterFirst",
        },
        "status": {"replicas": 1},
    }
    assert covers(live, desired)
    assert not covers(live, {"spec": {"containers": [{"name": "c"}, {"name": "d"}]}})  # list length
    assert not covers({"spec": {"replicas": 5}}, {"spec": {"replicas": 1}})
    assert not covers({"metadata": {"labels": {}}}, {"metadata": {"labels": {"a": "b"}}})
    assert not covers({"v": 1}, {"v": True})  # types matter: True is not 1
    assert not covers({"image": "repo:1.0"}, {"image": "repo:1"})  # only quantity keys compare by value
    assert not covers({"cpu": "1"}, {"cpu": "2"})


def test_every_rendered_child_covers_itself_as_the_apiserver_returns_it(minimal_spec: dict[str, Any]) -> None:
    """What the operator renders, read back with server additions, needs no apply."""
    for child in render_children(Owner("m", "ns", "uid"), parse_spec(minimal_spec), 2):
        live = {**child, "metadata": {**child["metadata"], "resourceVersion": "7", "uid": "u"}, "status": {}}
        assert covers(live, child), child["kind"]
