import json
from typing import Any

import yaml

from outrider_operator.api import labels
from outrider_operator.api.resource import parse_spec
from outrider_operator.reconcile.children import Owner, PodOptions, child_names, render_children
from outrider_operator.reconcile.runtimeconfig import render_runtime_config

OWNER = Owner(name="minilm", namespace="ml", uid="1234-uid")


def _by_kind(objs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in objs:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def _sharded(minimal_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        **minimal_spec,
        "runtime": {"gpusPerReplica": 2, "minGpuMemory": "16Gi"},
        "standby": {"warm": 1, "cold": 2},
        "sharding": {
            "groups": [
                {
                    "name": "attention",
                    "layers": ["attention"],
                    "devicePreference": "memoryBandwidth",
                    "maxBatchSize": 32,
                },
                {"name": "ffn", "layers": ["ffn"], "devicePreference": "compute", "maxBatchSize": 64},
            ]
        },
    }


def test_children_set_and_ownership(minimal_spec: dict[str, Any]) -> None:
    objs = render_children(OWNER, parse_spec(_sharded(minimal_spec)), active_replicas=3)
    kinds = _by_kind(objs)
    names = {k: sorted(o["metadata"]["name"] for o in v) for k, v in kinds.items()}
    assert names == {k: sorted(v) for k, v in child_names("minilm").items()}
    for obj in objs:
        ref = obj["metadata"]["ownerReferences"][0]
        assert ref["uid"] == "1234-uid" and ref["controller"] is True and ref["kind"] == "InferenceDeployment"
        assert obj["metadata"]["namespace"] == "ml"
        assert obj["metadata"]["labels"][labels.LABEL_MANAGED_BY] == labels.MANAGED_BY
    sizes = {d["metadata"]["name"]: d["spec"]["replicas"] for d in kinds["Deployment"]}
    assert sizes == {"minilm": 3, "minilm-warm": 1, "minilm-cold": 2}


def test_pods_request_gpus_and_name_the_outrider_scheduler(minimal_spec: dict[str, Any]) -> None:
    objs = render_children(OWNER, parse_spec(_sharded(minimal_spec)), active_replicas=1)
    for dep in _by_kind(objs)["Deployment"]:
        pod = dep["spec"]["template"]
        assert pod["spec"]["schedulerName"] == "outrider"
        res = pod["spec"]["containers"][0]["resources"]
        assert res["limits"]["nvidia.com/gpu"] == "2" == res["requests"]["nvidia.com/gpu"]
        ann = pod["metadata"]["annotations"]
        plan = json.loads(ann[labels.ANNOTATION_SHARD_PLAN])
        assert [(g["name"], g["maxBatchSize"], g["devicePreference"]) for g in plan] == [
            ("attention", 32, "memoryBandwidth"),
            ("ffn", 64, "compute"),
        ]
        assert ann[labels.ANNOTATION_MIN_GPU_MEMORY] == "16384"
        # the selector is a subset of the pod labels and holds only immutable identity
        sel = dep["spec"]["selector"]["matchLabels"]
        assert sel.items() <= pod["metadata"]["labels"].items()
        assert set(sel) == {labels.LABEL_DEPLOYMENT, labels.LABEL_POOL}


def test_cpu_only_spec_requests_no_gpu(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec({**minimal_spec, "runtime": {"gpusPerReplica": 0}})
    dep = _by_kind(render_children(OWNER, spec, 1))["Deployment"][0]
    assert "nvidia.com/gpu" not in dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_service_routes_to_the_serving_role_not_a_pool(minimal_spec: dict[str, Any]) -> None:
    objs = render_children(OWNER, parse_spec(minimal_spec), 2)
    svc = _by_kind(objs)["Service"][0]
    assert svc["spec"]["selector"] == {labels.LABEL_DEPLOYMENT: "minilm", labels.LABEL_ROLE: "serving"}
    templates = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in _by_kind(objs)["Deployment"]
    }
    pools = {name: (t[labels.LABEL_POOL], t[labels.LABEL_ROLE]) for name, t in templates.items()}
    assert pools == {
        "minilm": ("active", "serving"),
        "minilm-warm": ("warm", "standby"),
        "minilm-cold": ("cold", "standby"),
    }
    for dep in _by_kind(objs)["Deployment"]:  # the role can change without moving a pod between pools
        assert labels.LABEL_ROLE not in dep["spec"]["selector"]["matchLabels"]
    pdb = _by_kind(objs)["PodDisruptionBudget"][0]  # one controller's pods: maxUnavailable can count them
    assert pdb["spec"]["selector"]["matchLabels"] == {
        labels.LABEL_DEPLOYMENT: "minilm",
        labels.LABEL_POOL: "active",
    }


def test_every_pool_is_ready_when_settled_in_its_state(minimal_spec: dict[str, Any]) -> None:
    for dep in _by_kind(render_children(OWNER, parse_spec(minimal_spec), 1))["Deployment"]:
        probe = dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        assert probe["httpGet"]["path"] == "/v2/health/settled" and probe["periodSeconds"] == 1


def test_standby_sizes_come_from_the_caller(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec({**minimal_spec, "standby": {"warm": 2, "cold": 1}})
    sizes = {
        d["metadata"]["name"]: d["spec"]["replicas"]
        for d in _by_kind(render_children(OWNER, spec, 3))["Deployment"]
    }
    assert sizes == {"minilm": 3, "minilm-warm": 2, "minilm-cold": 1}
    refilled = render_children(OWNER, spec, 3, standby={"warm": 4, "cold": 2})
    assert [d["spec"]["replicas"] for d in _by_kind(refilled)["Deployment"]] == [3, 4, 2]


def test_rendering_is_deterministic_and_config_changes_roll_pods(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(minimal_spec)
    assert render_children(OWNER, spec, 2) == render_children(OWNER, spec, 2)
    changed = parse_spec({**minimal_spec, "batching": {"maxBatchSize": 64}})

    def hash_of(objs: list[dict[str, Any]]) -> str:
        dep = _by_kind(objs)["Deployment"][0]
        return str(dep["spec"]["template"]["metadata"]["annotations"]["outrider.dev/config-hash"])

    assert hash_of(render_children(OWNER, spec, 2)) != hash_of(render_children(OWNER, changed, 2))


def test_runtime_config_per_pool(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(_sharded(minimal_spec))
    cm = _by_kind(render_children(OWNER, spec, 1))["ConfigMap"][0]
    assert set(cm["data"]) == {"runtime.yaml", "runtime-warm.yaml", "runtime-cold.yaml"}
    active = yaml.safe_load(cm["data"]["runtime.yaml"])
    assert active["server"]["startState"] == "serving"
    assert yaml.safe_load(cm["data"]["runtime-warm.yaml"])["server"]["startState"] == "warm"
    assert yaml.safe_load(cm["data"]["runtime-cold.yaml"])["server"]["startState"] == "cold"
    assert active["batching"] == {
        "maxBatchSize": 16,
        "minBatchDelayMs": 10,
        "lookaheadWindow": 3,
        "dynamic": "Enabled",
    }
    assert [s["maxBatchSize"] for s in active["shards"]] == [32, 64]
    assert render_runtime_config(spec, "active") == active


def test_read_only_root_has_writable_cache_and_tmp(minimal_spec: dict[str, Any]) -> None:
    """The runtime builds models into its cache dir and converts precision in /tmp."""
    for dep in _by_kind(render_children(OWNER, parse_spec(minimal_spec), 1))["Deployment"]:
        pod = dep["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        cache_mount = next(
            m for path, m in mounts.items() if env["OUTRIDER_CACHE_DIR"].startswith(path + "/")
        )
        assert "emptyDir" in volumes[cache_mount["name"]] and not cache_mount.get("readOnly")
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_a_node_model_cache_is_a_host_folder_the_agent_can_scan(minimal_spec: dict[str, Any]) -> None:
    options = PodOptions(node_model_cache="/var/cache/outrider")
    objs = render_children(OWNER, parse_spec(minimal_spec), 1, options=options)
    pod = _by_kind(objs)["Deployment"][0]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    assert volume == {
        "name": "model-cache",
        "hostPath": {"path": "/var/cache/outrider", "type": "DirectoryOrCreate"},
    }
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "model-cache")
    # the runtime builds into <host folder>/models, the folder the node agent scans
    assert env["OUTRIDER_CACHE_DIR"] == mount["mountPath"] + "/models"


def test_pvc_model_is_mounted_read_only_and_the_runtime_reads_the_mount(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec({**minimal_spec, "model": {"name": "minilm", "uri": "pvc://models-claim/minilm/v3"}})
    objs = render_children(OWNER, spec, 1)
    dep = _by_kind(objs)["Deployment"][0]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in dep["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "models-claim", "readOnly": True}
    mount = next(m for m in dep["containers"][0]["volumeMounts"] if m["name"] == "model")
    assert mount == {"name": "model", "mountPath": "/models/pvc/models-claim", "readOnly": True}
    cm = _by_kind(objs)["ConfigMap"][0]
    config = yaml.safe_load(next(iter(cm["data"].values())))
    assert config["model"]["uri"] == "/models/pvc/models-claim/minilm/v3"
    # other URIs get no model volume and pass through unchanged
    plain = _by_kind(render_children(OWNER, parse_spec(minimal_spec), 1))["Deployment"][0]
    assert "model" not in {v["name"] for v in plain["spec"]["template"]["spec"]["volumes"]}


def test_gpu_preferences_become_preferred_node_affinity_in_order(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(
        {**minimal_spec, "runtime": {"gpuProducts": ["H100", "A100"], "gpuArchitectures": ["hopper"]}}
    )
    pod = _by_kind(render_children(OWNER, spec, 1))["Deployment"][0]["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    got = [(t["weight"], e["key"], e["values"]) for t in terms for e in t["preference"]["matchExpressions"]]
    assert got == [
        (100, "outrider.dev/gpu-product", ["H100"]),
        (90, "outrider.dev/gpu-product", ["A100"]),
        (100, "outrider.dev/gpu-architecture", ["hopper"]),
    ]
    plain = _by_kind(render_children(OWNER, parse_spec(minimal_spec), 1))["Deployment"][0]
    assert "affinity" not in plain["spec"]["template"]["spec"]


def test_serving_pods_name_the_operators_scheduler(minimal_spec: dict[str, Any]) -> None:
    spec = parse_spec(minimal_spec)
    default = _by_kind(render_children(OWNER, spec, 1))["Deployment"]
    assert {d["spec"]["template"]["spec"]["schedulerName"] for d in default} == {"outrider"}
    other = _by_kind(render_children(OWNER, spec, 1, options=PodOptions(scheduler_name="gpu-aware")))
    assert {d["spec"]["template"]["spec"]["schedulerName"] for d in other["Deployment"]} == {"gpu-aware"}


def test_serving_pods_mount_no_service_account_token(minimal_spec: dict[str, Any]) -> None:
    for dep in _by_kind(render_children(OWNER, parse_spec(minimal_spec), 1))["Deployment"]:
        assert dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_unpinned_deployments_run_the_operators_runtime_image(minimal_spec: dict[str, Any]) -> None:
    from outrider_operator.api.spec import DEFAULT_IMAGE

    def images(spec: Any, options: PodOptions | None = None) -> set[str]:
        deps = _by_kind(render_children(OWNER, spec, 1, options=options))["Deployment"]
        return {c["image"] for d in deps for c in d["spec"]["template"]["spec"]["containers"]}

    unpinned = parse_spec(minimal_spec)
    assert unpinned.runtime.image is None  # nothing is stored in the object: an upgrade moves it
    assert images(unpinned) == {DEFAULT_IMAGE}
    assert images(unpinned, PodOptions(runtime_image="registry.example/runtime:2.0")) == {
        "registry.example/runtime:2.0"
    }
    pinned = parse_spec({**minimal_spec, "runtime": {**minimal_spec.get("runtime", {}), "image": "mine:1"}})
    assert images(pinned, PodOptions(runtime_image="registry.example/runtime:2.0")) == {"mine:1"}
