"""The chart as helm renders it: least-privilege RBAC, rbac.create, monitors, network policies, admission."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from outrider_devcluster import ClusterSettings, locate

CHART = Path(__file__).resolve().parents[2] / "charts" / "outrider"
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def render(*sets: str) -> list[dict[str, Any]]:
    helm = locate(ClusterSettings.from_env()).paths.get("helm")
    if helm is None:
        message = "helm not found: run `make binaries`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    args = [str(helm), "template", "outrider", str(CHART), "--namespace", "outrider-system"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def writes_configmaps(role: dict[str, Any]) -> bool:
    return any(
        "configmaps" in r.get("resources", []) and "create" in r.get("verbs", [])
        for r in role.get("rules", [])
    )


def operator_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Role", "ClusterRole") and "-operator" in d["metadata"]["name"]]


def test_watching_every_namespace_takes_cluster_roles() -> None:
    roles = operator_roles(render())
    assert {(r["kind"], r["metadata"]["name"]) for r in roles} == {
        ("ClusterRole", "outrider-operator"),
        ("ClusterRole", "outrider-operator-cluster"),
    }
    writers = [r for r in roles if writes_configmaps(r)]
    assert [r["metadata"]["name"] for r in writers] == ["outrider-operator"]
    finalizers = [
        rule for r in writers for rule in r["rules"] if "inferencedeployments/finalizers" in rule["resources"]
    ]
    assert finalizers and finalizers[0]["verbs"] == ["update"]


def test_watched_namespaces_get_roles_and_the_cluster_role_only_reads() -> None:
    docs = render("operator.watchNamespaces={ml-a,ml-b}")
    roles = operator_roles(docs)
    namespaced = {r["metadata"]["namespace"] for r in roles if r["kind"] == "Role"}
    assert namespaced == {"ml-a", "ml-b"}
    cluster = [r for r in roles if r["kind"] == "ClusterRole"]
    assert [r["metadata"]["name"] for r in cluster] == ["outrider-operator-cluster"]
    for rule in cluster[0]["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert set(rule["resources"]) <= {"nodes", "namespaces", "customresourcedefinitions"}, rule
    bindings = [
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "outrider-operator"
    ]
    assert {b["metadata"]["namespace"] for b in bindings} == {"ml-a", "ml-b"}


def test_rbac_create_false_renders_no_rbac_for_any_component() -> None:
    docs = render("rbac.create=false")
    assert not [f"{d['kind']}/{d['metadata']['name']}" for d in docs if d["kind"] in RBAC_KINDS]
    assert [d for d in docs if d["kind"] == "Deployment"], "the workloads are still rendered"


def test_every_component_is_scraped_with_prometheus_operator() -> None:
    docs = render("monitoring.prometheusOperator=true")
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodMonitor"}
    assert set(monitors) == {"outrider-runtime", "outrider-components"}
    spec = monitors["outrider-components"]["spec"]
    wanted = set(spec["selector"]["matchExpressions"][0]["values"])
    ports = {e["port"] for e in spec["podMetricsEndpoints"]}
    for d in docs:
        if d["kind"] not in ("Deployment", "DaemonSet"):
            continue
        meta = d["spec"]["template"]["metadata"]["labels"]
        component = meta["app.kubernetes.io/component"]
        assert component in wanted and meta["app.kubernetes.io/instance"] == "outrider", component
        exposed = {
            p.get("name") for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
        }
        assert exposed & ports, f"{component} exposes none of {ports}: {exposed}"


def test_an_admission_policy_keeps_the_agent_on_its_own_node() -> None:
    docs = render()
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert (
        "system:serviceaccount:outrider-system:outrider-agent"
        in policy["spec"]["matchConditions"][0]["expression"]
    )
    checks = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "authentication.kubernetes.io/node-name" in checks and "object.spec == oldObject.spec" in checks


def test_network_policies_open_exactly_the_ports_each_component_listens_on() -> None:
    docs = render()
    policies = {
        d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: d
        for d in docs
        if d["kind"] == "NetworkPolicy"
    }
    for d in docs:
        if d["kind"] not in ("Deployment", "DaemonSet"):
            continue
        component = d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        policy = policies[component]
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        listening: set[int] = set()
        for c in d["spec"]["template"]["spec"]["containers"]:
            named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            listening |= set(named.values())
            for probe in ("readinessProbe", "livenessProbe"):
                port = (c.get(probe) or {}).get("httpGet", {}).get("port")
                if port is not None:
                    listening.add(named.get(port, port))
        assert listening == allowed, f"{component}: listens on {listening}, policy opens {allowed}"
    scheduler = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "outrider-scheduler"
    )
    extender = next(c for c in scheduler["spec"]["template"]["spec"]["containers"] if c["name"] == "extender")
    assert "--host=127.0.0.1" in extender["command"]  # the scheduler API is for kube-scheduler in the pod
    # a hung extender is restarted: its liveness probe asks /livez, which only a running loop answers
    assert extender["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert extender["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert not [d for d in render("networkPolicy.enabled=false") if d["kind"] == "NetworkPolicy"]
