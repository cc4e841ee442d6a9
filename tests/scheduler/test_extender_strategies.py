"""Table-driven strategy tests at 100, 1,000 and 5,000 nodes, plus args defaults and validation.

Expected answers are computed independently from the raw inventory JSON on each node, not through
the extender's own shape/NodeState code, so a bug there makes these tests fail.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from outrider_scheduler.extender.cache import ClusterCache
from outrider_scheduler.extender.config import ExtenderConfig
from outrider_scheduler.extender.engine import Engine
from outrider_scheduler.extender.errors import ConfigError
from outrider_scheduler.extender.requirements import PodRequirements
from outrider_scheduler.extender.simulation import make_node, make_pod, synthetic_nodes
from outrider_scheduler.extender.strategies import (
    CacheLocality,
    CacheLocalityArgs,
    ForecastHeadroom,
    ForecastHeadroomArgs,
    Fragmentation,
    FragmentationArgs,
    GpuFit,
    GpuFitArgs,
    ShardTopology,
    ShardTopologyArgs,
    StaticHeadroomSource,
    build_strategy,
)

SIZES = [100, 1000, 5000]


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n}-nodes")
def cluster(request: pytest.FixtureRequest) -> tuple[ClusterCache, list[dict[str, Any]]]:
    nodes = synthetic_nodes(request.param, without_inventory_share=0.02, seed=request.param)
    cache = ClusterCache()
    for n in nodes:
        cache.upsert_node(n)
    return cache, nodes


def _gpus(node: dict[str, Any]) -> list[dict[str, Any]] | None:
    raw = node["metadata"]["annotations"].get("outrider.dev/gpu-inventory")
    return None if raw is None else json.loads(raw)["gpus"]


def _expected_fit(node: dict[str, Any], gpus: int, mem: int, precision: str | None) -> bool:
    devices = _gpus(node)
    alloc = int(node["status"]["allocatable"]["nvidia.com/gpu"])
    if alloc < gpus:
        return False
    if devices is None:
        return True  # fail soft: kube-scheduler already counted the GPUs
    ok = [
        d
        for d in devices
        if d["memoryFreeMiB"] >= mem and (precision is None or precision in d["precisions"])
    ]
    return len(ok) >= gpus


FIT_CASES = [
    # (gpus, min memory MiB, precision)
    (1, 0, None),
    (1, 20000, None),
    (2, 40000, "bf16"),
    (4, 70000, None),
    (1, 16000, "fp8"),
    (8, 80000, "fp8"),
    (1, 200000, None),
]


@pytest.mark.parametrize(("gpus", "mem", "precision"), FIT_CASES)
def test_gpu_fit_filter_matches_independent_expectation(
    cluster: tuple[ClusterCache, list[dict[str, Any]]], gpus: int, mem: int, precision: str | None
) -> None:
    cache, nodes = cluster
    pod = PodRequirements.from_pod(make_pod("p", gpus, min_memory_mib=mem, precision=precision))
    engine = Engine([(GpuFit(), 1)])
    states, unknown = cache.lookup(n["metadata"]["name"] for n in nodes)
    assert not unknown
    out = engine.filter(pod, states)
    passed = {s.name for s in out.passed}
    expected = {n["metadata"]["name"] for n in nodes if _expected_fit(n, gpus, mem, precision)}
    assert passed == expected
    rejected = set(out.failed) | set(out.unresolvable)
    assert rejected == {n["metadata"]["name"] for n in nodes} - expected
    assert all(msg.startswith("outrider: ") for msg in {**out.failed, **out.unresolvable}.values())


def test_gpu_fit_reasons_name_the_problem() -> None:
    cache = ClusterCache()
    cache.upsert_node(make_node("t4", "t4-x1"))
    cache.upsert_node(make_node("a100", "a100-sxm4-80gb-x8"))
    t4, a100 = cache.lookup(["t4", "a100"])[0]
    fit = GpuFit()
    fp8 = PodRequirements.from_pod(make_pod("p", 1, precision="fp8"))
    failure = fit.filter(fp8, a100)
    assert failure is not None and failure.code == "precision" and "fp8" in failure.message
    big = PodRequirements.from_pod(make_pod("p", 1, min_memory_mib=30000))
    failure = fit.filter(big, t4)
    assert failure is not None and failure.code == "insufficient_gpu_memory" and failure.unresolvable
    two = PodRequirements.from_pod(make_pod("p", 2))
    failure = fit.filter(two, t4)
    assert failure is not None and failure.code == "insufficient_gpus" and "1 of 1" in failure.message


def test_gpu_fit_require_inventory() -> None:
    cache = ClusterCache()
    state = cache.upsert_node(make_node("bare", None))
    pod = PodRequirements.from_pod(make_pod("p", 1))
    assert GpuFit().filter(pod, state) is None
    failure = GpuFit(GpuFitArgs(require_inventory=True)).filter(pod, state)
    assert failure is not None and failure.code == "no_inventory"
    assert GpuFit().score(pod, state) == 0.0


def test_a_cpu_only_inventory_on_a_node_that_offers_gpus_is_no_inventory() -> None:
    """The agent reports CPU-only when NVML fails; the device plugin still offers the GPUs."""
    from datetime import UTC, datetime

    from outrider_operator.api.inventory import GpuInventory

    cache = ClusterCache()
    node = make_node("n", None, gpus_without_inventory=8)
    cpu_only = GpuInventory(
        driver=None, cpu_only_reason="NVML query of GPU 3 failed", updated_at=datetime.now(UTC)
    )
    node["metadata"]["annotations"]["outrider.dev/gpu-inventory"] = cpu_only.to_annotation()
    state = cache.upsert_node(node)
    assert state.inventory is not None and not state.inventory.gpus
    pod = PodRequirements.from_pod(make_pod("p", 2))
    assert not state.shape.has_inventory
    assert GpuFit().filter(pod, state) is None  # deferred to kube-scheduler's resource fit
    # a truly CPU-only node (no GPUs allocatable) still cannot take a GPU pod
    bare = make_node("cpu", None, gpus_without_inventory=0)
    bare["metadata"]["annotations"]["outrider.dev/gpu-inventory"] = cpu_only.to_annotation()
    failure = GpuFit().filter(pod, cache.upsert_node(bare))
    assert failure is not None and failure.code == "insufficient_gpus"


@pytest.mark.parametrize(
    ("gpus", "expect_products"),
    [
        (1, {"H100", "A100", "L40S", "L4", "T4"}),
        (2, {"H100", "A100"}),
        (4, {"H100", "A100"}),
        (8, {"H100", "A100"}),
    ],
)
def test_shard_topology_needs_nvlink_peers(
    cluster: tuple[ClusterCache, list[dict[str, Any]]], gpus: int, expect_products: set[str]
) -> None:
    cache, nodes = cluster
    pod = PodRequirements.from_pod(make_pod("p", gpus, min_memory_mib=1000))
    states, _ = cache.lookup(n["metadata"]["name"] for n in nodes)
    out = Engine([(GpuFit(), 1), (ShardTopology(), 1)]).filter(pod, states)
    products = {s.labels.get("outrider.dev/gpu-product") for s in out.passed if s.inventory is not None}
    assert products == expect_products
    # Without the NVLink requirement, 4-GPU PCIe nodes (L40S, L4) qualify again.
    relaxed = Engine([(GpuFit(), 1), (ShardTopology(ShardTopologyArgs(require_nvlink=False)), 1)])
    relaxed_products = {s.labels.get("outrider.dev/gpu-product") for s in relaxed.filter(pod, states).passed}
    if gpus == 4:
        assert {"L40S", "L4"} <= relaxed_products


def test_shard_topology_matches_shards_to_device_strengths() -> None:
    cache = ClusterCache()
    h100 = cache.upsert_node(make_node("h100", "h100-sxm5-80gb-x8"))
    l40s = cache.upsert_node(make_node("l40s", "l40s-x4"))
    topo = ShardTopology(ShardTopologyArgs(require_nvlink=False))
    attention = PodRequirements.from_pod(
        make_pod(
            "a",
            1,
            shard_plan=[
                {"name": "attn", "layers": ["attention"], "devicePreference": "memoryBandwidth", "gpus": 1}
            ],
        )
    )
    ffn = PodRequirements.from_pod(
        make_pod(
            "f", 1, shard_plan=[{"name": "ffn", "layers": ["ffn"], "devicePreference": "compute", "gpus": 1}]
        )
    )
    # Attention (bandwidth-bound): H100 (3352 GB/s) beats L40S (864 GB/s).
    assert topo.score(attention, h100) > topo.score(attention, l40s)
    # FFN (compute-bound): L40S has more SMs (142) than H100 (132).
    assert topo.score(ffn, l40s) >= topo.score(ffn, h100)


def test_cache_locality_prefers_warm_nodes(cluster: tuple[ClusterCache, list[dict[str, Any]]]) -> None:
    cache, nodes = cluster
    pod = PodRequirements.from_pod(make_pod("p", 1, model="llama-8b"))
    states, _ = cache.lookup(n["metadata"]["name"] for n in nodes)
    strategy = CacheLocality()
    cached = {
        n["metadata"]["name"]
        for n in nodes
        if _gpus(n) is not None
        and "llama-8b"
        in json.loads(n["metadata"]["annotations"]["outrider.dev/gpu-inventory"])["cachedModels"]
    }
    assert cached, "the synthetic cluster should hold some cached nodes"
    scores = {s.name: strategy.score(pod, s) for s in states}
    assert {n for n, v in scores.items() if v == pytest.approx(0.8)} == cached
    assert all(v == 0.0 for n, v in scores.items() if n not in cached)
    # The engine ranks a cached node (of the same product) above an uncached one.
    out = Engine([(CacheLocality(), 1), (GpuFit(), 1)]).prioritize(pod, states)
    by_name = dict(out.scores)
    same_product = [s for s in states if s.labels.get("outrider.dev/gpu-product") == "L4"]
    warm = [s.name for s in same_product if s.name in cached]
    cold = [s.name for s in same_product if s.name not in cached]
    if warm and cold:
        assert by_name[warm[0]] > by_name[cold[0]]


def test_cache_locality_standby_beats_cached() -> None:
    cache = ClusterCache()
    cache.upsert_node(make_node("a", "l4-x4", cached_models=["m"]))
    cache.upsert_node(make_node("b", "l4-x4"))
    cache.upsert_pod(make_pod("standby", 1, model="m", pool="warm", node_name="b"))
    a, b = cache.lookup(["a", "b"])[0]
    pod = PodRequirements.from_pod(make_pod("p", 1, model="m"))
    assert CacheLocality().score(pod, b) == 1.0
    assert CacheLocality().score(pod, a) == 0.8
    assert CacheLocality().score(PodRequirements.from_pod(make_pod("q", 1)), a) == 0.0


@pytest.mark.parametrize("size", SIZES)
def test_fragmentation_keeps_big_nvlink_nodes_whole(size: int) -> None:
    # Half the nodes are 8-GPU NVLink boards, half 4-GPU L4 boxes with 3 GPUs in use.
    cache = ClusterCache()
    for i in range(size):
        if i % 2:
            cache.upsert_node(make_node(f"n{i}", "h100-sxm5-80gb-x8"))
        else:
            cache.upsert_node(make_node(f"n{i}", "l4-x4"))
            cache.upsert_pod(make_pod(f"busy{i}", 3, node_name=f"n{i}"))
    states, _ = cache.lookup(f"n{i}" for i in range(size))
    pod = PodRequirements.from_pod(make_pod("p", 1))
    out = Engine([(Fragmentation(), 1)]).prioritize(pod, states)
    scores = dict(out.scores)
    best = max(scores.values())
    assert {n for n, v in scores.items() if v == best} == {f"n{i}" for i in range(0, size, 2)}
    assert all(scores[f"n{i}"] < best for i in range(1, size, 2))


def test_fragmentation_strand_penalty() -> None:
    cache = ClusterCache()
    node = cache.upsert_node(make_node("n", "h100-sxm5-80gb-x8"))
    pod = PodRequirements.from_pod(make_pod("p", 6))
    plain = Fragmentation().score(pod, node)
    strict = Fragmentation(FragmentationArgs(min_useful_gpus=4, strand_penalty=0.5)).score(pod, node)
    assert plain == pytest.approx(0.5 * (1 - 2 / 8) + 0.5)
    assert strict == pytest.approx(plain * 0.5)
    # A single-GPU pod on an NVLink board loses the spare half; on a PCIe node it keeps it.
    pcie = cache.upsert_node(make_node("pcie", "l40s-x4"))
    one = PodRequirements.from_pod(make_pod("one", 1))
    assert Fragmentation().score(one, node) == pytest.approx(0.5 * (1 - 7 / 8))
    assert Fragmentation().score(one, pcie) == pytest.approx(0.5 * (1 - 3 / 4) + 0.5)
    gentle = Fragmentation(FragmentationArgs(nvlink_spare_penalty=1.0))
    assert gentle.score(one, node) == pytest.approx(0.5 * (1 - 7 / 8) + 0.5)


def test_forecast_headroom_protects_other_deployments() -> None:
    cache = ClusterCache()
    a = cache.upsert_node(make_node("a", "h100-sxm5-80gb-x8"))
    b = cache.upsert_node(make_node("b", "h100-sxm5-80gb-x8"))
    source = StaticHeadroomSource({"a": {"chat": 8}}, {"search": 1})
    strategy = ForecastHeadroom(source=source)
    search = PodRequirements.from_pod(make_pod("s", 4, deployment="search"))
    chat = PodRequirements.from_pod(make_pod("c", 4, deployment="chat"))
    assert strategy.score(search, b) > strategy.score(search, a)
    assert strategy.score(chat, a) == 1.0
    # With the headroom weighted in, search lands on b.
    out = Engine([(strategy, 1)]).prioritize(search, [a, b])
    assert dict(out.scores)["b"] == 10 and dict(out.scores)["a"] < 10


def test_args_defaults_are_pinned() -> None:
    assert GpuFitArgs() == GpuFitArgs(require_inventory=False, memory_headroom_mib=0)
    assert ShardTopologyArgs() == ShardTopologyArgs(
        require_nvlink=True, reference_bandwidth_gbps=3350.0, reference_sm_count=132
    )
    assert CacheLocalityArgs() == CacheLocalityArgs(cached_score=0.8, standby_score=1.0)
    assert FragmentationArgs() == FragmentationArgs(
        min_useful_gpus=1, strand_penalty=0.5, nvlink_spare_penalty=0.0
    )
    assert ForecastHeadroomArgs().reservations == {} and ForecastHeadroomArgs().expected_extra_replicas == {}
    assert {n: s.weight for n, s in ExtenderConfig().strategies.items()} == {
        "gpuFit": 2,
        "shardTopology": 2,
        "cacheLocality": 3,
        "fragmentation": 4,
        "forecastHeadroom": 1,
    }


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("gpuFit", {"memoryHeadroomMiB": -1}, "memoryHeadroomMiB must be >= 0"),
        (
            "gpuFit",
            {"requireInventory": "yes"},
            "requireInventory is invalid: Input should be a valid boolean",
        ),
        ("gpuFit", {"bogus": 1}, "unknown key 'bogus'"),
        ("shardTopology", {"referenceBandwidthGBps": 0}, "referenceBandwidthGBps must be > 0"),
        ("shardTopology", {"referenceSmCount": 0}, "referenceSmCount must be > 0"),
        ("cacheLocality", {"cachedScore": 1.5}, "cachedScore must be <= 1"),
        ("fragmentation", {"minUsefulGpus": 0}, "minUsefulGpus must be >= 1"),
        ("fragmentation", {"strandPenalty": -0.1}, "strandPenalty must be >= 0"),
        ("fragmentation", {"nvlinkSparePenalty": 2.0}, "nvlinkSparePenalty must be <= 1"),
        ("forecastHeadroom", {"reservations": {"n": {"d": -2}}}, "reservations.n.d must be >= 0, got -2"),
        (
            "forecastHeadroom",
            {"expectedExtraReplicas": []},
            "expectedExtraReplicas is invalid: Input should be a valid dictionary",
        ),
        ("nope", {}, "unknown strategy 'nope'"),
    ],
)
def test_args_validation(name: str, args: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_strategy(name, args)
    assert message in str(exc.value)


def test_args_accept_camel_case() -> None:
    s = build_strategy("shardTopology", {"requireNvlink": False, "referenceBandwidthGBps": 2000})
    assert isinstance(s, ShardTopology) and s.args == ShardTopologyArgs(
        require_nvlink=False, reference_bandwidth_gbps=2000.0
    )
    f = build_strategy("forecastHeadroom", {"reservations": {"n1": {"chat": 2}}})
    assert isinstance(f, ForecastHeadroom) and f.source.reserved_gpus("n1") == {"chat": 2}


def test_node_specific_strategy_must_name_its_special_nodes() -> None:
    from outrider_scheduler.extender.engine import IndexedNodes
    from outrider_scheduler.extender.nodes import NodeState
    from outrider_scheduler.extender.strategies import Strategy

    class PerNode(Strategy):
        name = "perNode"
        shape_only = False

        def score(self, pod: PodRequirements, node: NodeState) -> float:
            return 1.0

    with pytest.raises(NotImplementedError, match="must implement special_nodes"):
        PerNode().special_nodes(PodRequirements.from_pod(make_pod("p", 1)), IndexedNodes([]))


def test_forecast_headroom_special_nodes_keep_scores_exact() -> None:
    # Nodes of one shape, one of them reserved: the memo must not share its score with the others.
    cache = ClusterCache()
    for i in range(300):
        cache.upsert_node(make_node(f"n{i}", "a100-sxm4-80gb-x8"))
    strategy = ForecastHeadroom(source=StaticHeadroomSource({"n7": {"other": 8}}))
    nodes, _ = cache.lookup(f"n{i}" for i in range(300))
    pod = PodRequirements.from_pod(make_pod("p", 2, deployment="mine"))
    scores = dict(Engine([(strategy, 1)]).prioritize(pod, nodes, cache).scores)
    assert scores["n7"] < 10 and all(v == 10 for n, v in scores.items() if n != "n7")


def test_status_headroom_source() -> None:
    from outrider_scheduler.extender.strategies import StatusHeadroomSource

    deployments: dict[tuple[str, str], dict[str, Any]] = {
        ("prod", "chat"): {"status": {"replicas": 4, "forecast": {"recommendedReplicas": 7}}},
        ("prod", "down"): {"status": {"replicas": 4, "forecast": {"recommendedReplicas": 2}}},
        ("prod", "none"): {"status": {"replicas": 4}},
    }
    static = StaticHeadroomSource({"n1": {"chat": 2}}, {"none": 1})
    source = StatusHeadroomSource(lambda ns, name: deployments.get((ns, name)), static)
    assert source.expected_extra_replicas("prod/chat") == 3
    assert source.expected_extra_replicas("prod/down") == 0
    assert source.expected_extra_replicas("prod/none") == 1  # no forecast in status: the static number
    assert source.expected_extra_replicas("prod/unknown") == 0
    assert source.reserved_gpus("n1") == {"chat": 2} and set(source.reserved_nodes()) == {"n1"}


def test_status_headroom_source_reads_the_planners_plan() -> None:
    from outrider_scheduler.extender.cache import ClusterCache
    from outrider_scheduler.extender.strategies import StatusHeadroomSource

    cache = ClusterCache()
    plan = {
        "mode": "predictive",
        "expectedExtraReplicas": 2,
        "reservations": [{"node": "n1", "gpus": 2}, {"node": "n2", "gpus": 1}],
        "updatedAt": "2026-12-05T00:00:00Z",
    }
    cache.upsert_deployment(
        {"metadata": {"namespace": "prod", "name": "chat"}, "status": {"replicas": 1, "plan": plan}}
    )
    static = StaticHeadroomSource({"n1": {"other": 1}}, {})
    source = StatusHeadroomSource(cache.deployment, static, cache.reservations)
    assert source.expected_extra_replicas("prod/chat") == 2
    assert source.reserved_gpus("n1") == {"other": 1, "chat": 2}
    assert source.reserved_gpus("n2") == {"chat": 1}
    assert set(source.reserved_nodes()) == {"n1", "n2"}
    # the plan changes: reservations follow; the deployment goes: they are gone
    cache.upsert_deployment(
        {"metadata": {"namespace": "prod", "name": "chat"}, "status": {"plan": {**plan, "reservations": []}}}
    )
    assert source.reserved_gpus("n2") == {}
    cache.delete_deployment({"metadata": {"namespace": "prod", "name": "chat"}})
    assert source.expected_extra_replicas("prod/chat") == 0 and set(source.reserved_nodes()) == {"n1"}
