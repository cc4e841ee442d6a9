"""The node/pod cache: free GPUs from bound pods, standby models, shapes, malformed objects."""

from __future__ import annotations

import pytest

from outrider_scheduler.extender.cache import ClusterCache
from outrider_scheduler.extender.errors import MalformedRequestError
from outrider_scheduler.extender.simulation import make_node, make_pod


def test_bound_pods_reduce_free_gpus_and_deletion_restores_them() -> None:
    cache = ClusterCache()
    cache.upsert_node(make_node("n", "h100-sxm5-80gb-x8"))
    cache.upsert_pod(make_pod("a", 3, node_name="n"))
    cache.upsert_pod(make_pod("b", 2, node_name="n"))
    cache.upsert_pod(make_pod("pending", 4))  # not bound: does not count
    node = cache.node("n")
    assert node is not None and node.shape.free_gpus == 3
    cache.delete_pod(make_pod("a", 3, node_name="n"))
    assert cache.node("n").shape.free_gpus == 6  # type: ignore[union-attr]
    done = make_pod("b", 2, node_name="n")
    done["status"]["phase"] = "Succeeded"
    cache.upsert_pod(done)
    assert cache.node("n").shape.free_gpus == 8  # type: ignore[union-attr]


def test_pods_seen_before_their_node_still_count() -> None:
    cache = ClusterCache()
    cache.upsert_pod(make_pod("early", 2, node_name="late"))
    cache.upsert_node(make_node("late", "l4-x4"))
    assert cache.node("late").shape.free_gpus == 2  # type: ignore[union-attr]


def test_standby_and_active_pods_mark_models() -> None:
    cache = ClusterCache()
    cache.upsert_node(make_node("n", "l40s-x4", cached_models=["a"]))
    cache.upsert_pod(make_pod("w", 1, model="b", pool="warm", node_name="n"))
    cache.upsert_pod(make_pod("x", 1, model="c", pool="active", node_name="n"))
    node = cache.node("n")
    assert node is not None
    assert node.standby_models == {"b": 1}
    assert node.cached_models == frozenset({"a", "c"})


def test_identical_nodes_share_a_shape() -> None:
    cache = ClusterCache()
    for i in range(50):
        cache.upsert_node(make_node(f"n{i}", "a100-sxm4-80gb-x8"))
    cache.upsert_pod(make_pod("p", 1, node_name="n0"))
    ids = {cache.node(f"n{i}").shape_id for i in range(50)}  # type: ignore[union-attr]
    assert len(ids) == 2


def test_node_without_or_with_broken_inventory_is_kept() -> None:
    cache = ClusterCache()
    bare = cache.upsert_node(make_node("bare", None))
    assert bare.inventory is None and "no outrider.dev/gpu-inventory" in (bare.inventory_problem or "")
    broken = make_node("broken", "t4-x1")
    broken["metadata"]["annotations"]["outrider.dev/gpu-inventory"] = (
        '{"version": 1, "gpus": [{"index": -1}]}'
    )
    state = cache.upsert_node(broken)
    assert state.inventory is None and "unparsable" in (state.inventory_problem or "")
    assert len(cache) == 2


def test_malformed_node_raises() -> None:
    with pytest.raises(MalformedRequestError, match=r"metadata\.name"):
        ClusterCache().upsert_node({"metadata": {}})


def test_delete_node_and_lookup_reports_unknown() -> None:
    cache = ClusterCache()
    cache.upsert_node(make_node("a", "t4-x1"))
    cache.upsert_node(make_node("b", "t4-x1"))
    cache.delete_node("a")
    found, unknown = cache.lookup(["a", "b"])
    assert [n.name for n in found] == ["b"] and unknown == ["a"]


async def test_gc_freeze_loop_freezes_after_sync_and_on_change() -> None:
    import asyncio
    import gc

    from outrider_scheduler.extender.gctuning import freeze_loop

    state = {"ready": False, "generation": 0}
    gc.unfreeze()
    task = asyncio.create_task(
        freeze_loop(lambda: bool(state["ready"]), lambda: int(state["generation"]), interval_s=0.05)
    )
    try:
        await asyncio.sleep(0.2)
        assert gc.get_freeze_count() == 0, "nothing is frozen before the cache has synced"
        state["ready"] = True
        await asyncio.sleep(0.7)
        first = gc.get_freeze_count()
        assert first > 0
        gc.unfreeze()
        await asyncio.sleep(0.2)
        assert gc.get_freeze_count() == 0, "unchanged cache: no new freeze"
        state["generation"] = 1
        await asyncio.sleep(0.3)
        assert gc.get_freeze_count() > 0
    finally:
        task.cancel()
        gc.unfreeze()


def test_a_bad_hint_annotation_does_not_hide_the_gpus_a_bound_pod_holds() -> None:
    cache = ClusterCache()
    cache.upsert_node(make_node("n", "h100-sxm5-80gb-x8"))
    pod = make_pod("p", 8, node_name="n", min_memory_mib=1)
    pod["metadata"]["annotations"]["outrider.dev/min-gpu-memory-mib"] = "80Gi"  # not MiB digits
    cache.upsert_pod(pod)
    assert cache.node("n").shape.free_gpus == 0  # type: ignore[union-attr]


def test_lock_free_readers_never_see_a_half_applied_write() -> None:
    """Readers (the request path) take no lock while watch threads churn pods and nodes."""
    import sys
    import threading

    cache = ClusterCache()
    names = [f"n{i}" for i in range(40)]
    for name in names:
        cache.upsert_node(make_node(name, "l40s-x4", cached_models=["base"]))
    stop = threading.Event()
    problems: list[str] = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            node = names[i % len(names)]
            cache.upsert_pod(make_pod(f"p{i % 200}", 1, model=f"m{i % 7}", pool="warm", node_name=node))
            if i % 5 == 0:
                cache.upsert_node(make_node(node, "l40s-x4", cached_models=["base", f"c{i % 11}"]))
            if i % 3 == 0:
                cache.delete_pod_key(f"default/p{(i * 7) % 200}")
            i += 1

    def read() -> None:
        seen: dict[int, object] = {}
        while not stop.is_set():
            try:
                nodes, unknown = cache.lookup(names)
                if unknown:
                    problems.append(f"unknown {unknown[:3]}")
                for model in ("base", "m1", "m3"):
                    for _name, _code in cache.model_nodes(model).items():
                        pass
                for n in nodes:  # a shape id always names one shape
                    if seen.setdefault(n.shape_id, n.shape) != n.shape and n.shape_id in seen:
                        problems.append(f"shape id {n.shape_id} reused")
            except Exception as exc:  # any error is the failure being tested
                problems.append(repr(exc))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [
            threading.Thread(target=churn),
            threading.Thread(target=read),
            threading.Thread(target=read),
        ]
        for t in threads:
            t.start()
        stop.wait(1.5)
        stop.set()
        for t in threads:
            t.join(5)
    finally:
        sys.setswitchinterval(old)
    assert problems == [], problems[:5]
