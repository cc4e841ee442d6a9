from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from outrider_runtime.batching import BatchSettings, DynamicBatcher, Pending
from outrider_runtime.builtin_models import ensure_builtin
from outrider_runtime.config import PrecisionPolicy, ShardConfig
from outrider_runtime.errors import ModelBuildError, OverloadedError
from outrider_runtime.pipeline import build_pipeline, pad_rows
from outrider_runtime.precision import AdaptivePolicy, cosine_rows
from outrider_runtime.sharding import assign_layers, cut_model

SHARD_TOLERANCE = 1e-5
"""Max absolute difference between sharded and unsharded fp32 embeddings."""


@pytest.fixture(scope="module")
def tiny() -> Path:
    return ensure_builtin("tiny-bert") / "model.onnx"


def _rows(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1000, 29000, size=int(k)).astype(np.int64) for k in rng.integers(2, 60, size=n)]


def two_shards(mb_a: int = 3, mb_b: int = 5, prec_b: str | None = None) -> list[ShardConfig]:
    return [
        ShardConfig.model_validate(
            {"name": "attn", "layers": ["embeddings", "attention"], "maxBatchSize": mb_a}
        ),
        ShardConfig.model_validate(
            {"name": "ffn", "layers": ["ffn", "head"], "maxBatchSize": mb_b, "precision": prec_b}
        ),
    ]


def test_builder_is_cached_and_tagged(tiny: Path) -> None:
    assert ensure_builtin("tiny-bert") / "model.onnx" == tiny
    model = onnx.load(str(tiny))
    groups = {n.name.split("/")[0] for n in model.graph.node}
    assert groups == {"embeddings", "attention", "ffn", "head"}
    with pytest.raises(ModelBuildError, match="unknown builtin"):
        ensure_builtin("gpt-5")


def test_cut_alternates_attention_and_ffn(tiny: Path) -> None:
    segs = cut_model(onnx.load(str(tiny)), assign_layers(two_shards()))
    assert [s.shard for s in segs] == ["attn", "ffn", "attn", "ffn"]  # tiny-bert has 2 layers
    assert segs[0].inputs == ("input_ids", "attention_mask")
    assert segs[-1].outputs == ("embeddings",)
    for seg in segs:
        onnx.checker.check_model(seg.model)


def test_unassigned_group_is_an_error() -> None:
    with pytest.raises(ModelBuildError, match="not assigned"):
        assign_layers([ShardConfig.model_validate({"name": "a", "layers": ["attention", "ffn"]})])


async def test_sharded_equals_unsharded(tiny: Path) -> None:
    feeds = pad_rows(_rows(11))
    whole = build_pipeline(tiny, [], PrecisionPolicy.FP32, threads=1)
    sharded = build_pipeline(tiny, two_shards(), PrecisionPolicy.FP32, threads=1)
    try:
        assert sharded.segment_count == 4 and sharded.micro_batch == 3
        ref = whole.run(feeds)
        assert ref.shape == (11, 32)
        np.testing.assert_allclose(sharded.run(feeds), ref, atol=SHARD_TOLERANCE)
        np.testing.assert_allclose(await sharded.run_async(feeds), ref, atol=SHARD_TOLERANCE)
    finally:
        whole.close()
        sharded.close()


def test_padding_does_not_change_embeddings(tiny: Path) -> None:
    pipe = build_pipeline(tiny, [], PrecisionPolicy.FP32, threads=1)
    rows = _rows(5, seed=3)
    batched = pipe.run(pad_rows(rows))
    single = np.concatenate([pipe.run(pad_rows([r])) for r in rows])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    pipe.close()


@pytest.mark.parametrize(
    ("precision", "floor"),
    [(PrecisionPolicy.FP16, 0.999), (PrecisionPolicy.BF16, 0.99), (PrecisionPolicy.INT8, 0.95)],
)
def test_precisions_agree_with_fp32(tiny: Path, precision: PrecisionPolicy, floor: float) -> None:
    feeds = pad_rows(_rows(8, seed=1))
    ref = build_pipeline(tiny, [], PrecisionPolicy.FP32, threads=1)
    low = build_pipeline(tiny, [], precision, threads=1)
    cos = cosine_rows(low.run(feeds), ref.run(feeds))
    assert cos.min() >= floor
    assert cos.min() < 1.0 - 1e-9  # the conversion really changed the weights
    ref.close()
    low.close()


def test_per_shard_precision(tiny: Path) -> None:
    mixed = build_pipeline(tiny, two_shards(prec_b="int8"), PrecisionPolicy.FP32, threads=1)
    kinds = {s.name: s.precision for s in mixed.shards}
    assert kinds == {"attn": PrecisionPolicy.FP32, "ffn": PrecisionPolicy.INT8}
    ffn_sessions = [st.session for st in mixed._stages if st.shard.name == "ffn"]
    assert len(ffn_sessions) == 2 and all(s is not None for s in ffn_sessions)
    ref = build_pipeline(tiny, [], PrecisionPolicy.FP32, threads=1)
    feeds = pad_rows(_rows(4))
    assert cosine_rows(mixed.run(feeds), ref.run(feeds)).min() > 0.95
    mixed.close()
    ref.close()


def test_adaptive_policy_buckets() -> None:
    lengths = [4, 6, 12, 14, 20, 30, 50, 60, 100, 120]
    cos = [0.985, 0.993, 0.995, 0.994, 0.993, 0.991, 0.989, 0.995, 0.994, 0.992]
    policy = AdaptivePolicy.calibrate(0.99, lengths, cos, PrecisionPolicy.INT8)
    assert policy.low_buckets == frozenset({16, 32, 128})  # <=8 and <=64 each hold a sentence below 0.99
    assert policy.choose(5) is PrecisionPolicy.FP32
    assert policy.choose(12) is PrecisionPolicy.INT8
    assert policy.choose(33) is PrecisionPolicy.FP32
    assert policy.choose(100) is PrecisionPolicy.INT8
    assert policy.choose(200) is PrecisionPolicy.FP32  # not covered by calibration: stay safe
    assert policy.agreement() >= 0.99
    assert policy.low_share() == pytest.approx(0.6)
    assert "<=8:fp32 <=16:int8" in policy.describe()
    assert AdaptivePolicy.calibrate(0.9, lengths, cos, PrecisionPolicy.INT8).choose(4) is PrecisionPolicy.INT8
    assert AdaptivePolicy.calibrate(0.9999, lengths, cos, PrecisionPolicy.INT8).low_buckets == frozenset()


# ---------------------------------------------------------------- batching


class Recorder:
    def __init__(self, delay: float = 0.005) -> None:
        self.sizes: list[int] = []
        self.delay = delay

    async def __call__(self, batch: list[Pending]) -> None:
        self.sizes.append(sum(p.size for p in batch))
        await asyncio.sleep(self.delay)
        for p in batch:
            p.future.set_result(np.stack([r[:1].astype(np.float32) for r in p.rows]))


async def test_batcher_forms_bounded_batches_and_resizes_live() -> None:
    rec = Recorder()
    b = DynamicBatcher(rec, BatchSettings(max_batch_size=4, min_batch_delay_ms=20), max_queue_size=10_000)
    b.start()

    async def client(i: int) -> float:
        out = await b.submit([np.array([i, 0], dtype=np.int64)])
        return float(out[0, 0])

    first = await asyncio.gather(*(client(i) for i in range(40)))
    assert first == [float(i) for i in range(40)]
    assert max(rec.sizes) == 4 and sum(rec.sizes) == 40
    rec.sizes.clear()
    tasks = [asyncio.create_task(client(i)) for i in range(200)]
    await asyncio.sleep(0.01)
    b.resize(max_batch_size=16)
    results = await asyncio.gather(*tasks)
    assert results == [float(i) for i in range(200)]  # nothing lost or mixed up
    assert sum(rec.sizes) == 200 and max(rec.sizes) == 16
    await b.drain()


async def test_batcher_queue_bound_raises_overloaded() -> None:
    b = DynamicBatcher(Recorder(), BatchSettings(max_batch_size=64, min_batch_delay_ms=200), max_queue_size=3)
    b.start()
    futs = [b.submit([np.array([1], dtype=np.int64)]) for _ in range(3)]
    with pytest.raises(OverloadedError) as err:
        b.submit([np.array([1], dtype=np.int64)])
    assert err.value.retry_after_s >= 1
    await asyncio.gather(*futs)
    await b.drain()


async def test_lookahead_groups_similar_lengths() -> None:
    rec_batches: list[list[int]] = []

    async def runner(batch: list[Pending]) -> None:
        rec_batches.append([p.length for p in batch])
        for p in batch:
            p.future.set_result(np.zeros((p.size, 1), np.float32))

    b = DynamicBatcher(
        runner, BatchSettings(max_batch_size=2, min_batch_delay_ms=50, lookahead_window=3), 100
    )
    lengths = [5, 100, 6, 101, 7, 102, 8, 103]
    futs = [b.submit([np.ones(n, dtype=np.int64)]) for n in lengths]
    b.start()
    await asyncio.gather(*futs)
    assert rec_batches[0] == [5, 6]  # oldest first, then its closest neighbour in the window
    assert all(max(x) - min(x) < 10 for x in rec_batches)
    await b.drain()


async def test_disabled_dynamic_batching_runs_one_at_a_time() -> None:
    rec = Recorder(delay=0.0)
    b = DynamicBatcher(rec, BatchSettings(max_batch_size=8, dynamic=False), 100)
    b.start()
    await asyncio.gather(*(b.submit([np.array([1], dtype=np.int64)]) for _ in range(10)))
    assert rec.sizes == [1] * 10
    await b.drain()


def test_length_buckets_bound_padding() -> None:
    from outrider_runtime.pipeline import length_buckets

    lengths = [10, 128, 12, 9, 11, 64, 10, 66]
    buckets = length_buckets(lengths, slack=1.5)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    for b in buckets:
        longest = max(lengths[i] for i in b)
        assert len(b) * longest <= 1.5 * sum(lengths[i] for i in b) or len(b) == 1
    outlier = next(b for b in buckets if 1 in b)
    assert not {0, 2, 3, 4, 6} & set(outlier)  # short rows are not padded to the 128-token outlier
    assert length_buckets([7] * 5) == [[0, 1, 2, 3, 4]]


async def test_batch_concurrency_overlaps_batches() -> None:
    running = 0
    peak = 0
    release = asyncio.Event()

    async def runner(batch: list[Pending]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        for p in batch:
            p.future.set_result(np.zeros((p.size, 1), np.float32))

    for concurrency, expected in ((1, 1), (2, 2)):
        running = peak = 0
        release.clear()
        b = DynamicBatcher(
            runner, BatchSettings(max_batch_size=1, min_batch_delay_ms=0), 100, concurrency=concurrency
        )
        b.start()
        futs = [b.submit([np.array([1], dtype=np.int64)]) for _ in range(4)]
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert peak == expected
        release.set()
        await asyncio.gather(*futs)
        await b.drain()


def test_providers_for_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    from outrider_runtime.pipeline import providers_for

    assert providers_for("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ModelBuildError, match="onnxruntime-gpu"):
        providers_for("cuda:0")
    with pytest.raises(ModelBuildError, match="unknown device"):
        providers_for("tpu:0")
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert providers_for("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    monkeypatch.setattr(
        ort,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    trt = providers_for("cuda:2", PrecisionPolicy.FP16)
    assert trt[0] == (
        "TensorrtExecutionProvider",
        {"device_id": 2, "trt_fp16_enable": True, "trt_int8_enable": False},
    )
    assert trt[1:] == [("CUDAExecutionProvider", {"device_id": 2}), "CPUExecutionProvider"]


async def test_drain_timeout_answers_queued_and_running_requests_instead_of_hanging() -> None:
    from outrider_runtime.errors import NotServingError

    release = asyncio.Event()

    async def stuck(batch: list[Pending]) -> None:
        await release.wait()  # a batch that outlives the drain timeout

    b = DynamicBatcher(stuck, BatchSettings(max_batch_size=1, min_batch_delay_ms=0), 100)
    b.start()
    futs = [b.submit([np.array([1], dtype=np.int64)]) for _ in range(4)]
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.drain(), 0.2)
    await b.cancel("the server is shutting down (drain timeout)")
    for running in list(b._running):
        running.cancel()
    done = await asyncio.gather(*futs, return_exceptions=True)
    assert all(isinstance(d, NotServingError) for d in done), done


def test_load_override_ranges_are_checked() -> None:
    from outrider_runtime.errors import BadRequestError
    from outrider_runtime.load_override import LoadOverride

    ok = LoadOverride.from_triton_config('{"dynamic_batching": {"max_queue_delay_microseconds": "2500"}}')
    assert ok.min_batch_delay_ms == 2.5
    for bad in (
        {"dynamic_batching": {"max_queue_delay_microseconds": 1e12}},
        {"dynamic_batching": {"max_queue_delay_microseconds": "soon"}},
        {"max_batch_size": 100_000},
        {"max_batch_size": True},
    ):
        with pytest.raises(BadRequestError):
            LoadOverride.from_triton_config(json.dumps(bad))


def test_builtin_models_are_marked_under_their_served_name(tmp_path: Path) -> None:
    from outrider_runtime import builtin_models
    from outrider_scheduler.agent.discovery import cached_models

    cache = tmp_path / "node" / "models"
    built = builtin_models.ensure_builtin("tiny-bert", root=cache)
    assert "tiny" not in cached_models(cache)
    builtin_models.mark_cached("tiny", built)
    # the node agent scans this folder: it now reports the name pods and the extender use
    assert "tiny" in cached_models(cache)


def test_an_unwritable_cache_falls_back_to_a_private_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outrider_runtime import builtin_models

    locked = tmp_path / "node" / "models"
    real_access = builtin_models.os.access
    # a root-owned hostPath seen by uid 10001 (simulated: the tests may run as root)
    monkeypatch.setattr(
        builtin_models.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    monkeypatch.setattr(builtin_models.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    built = builtin_models.ensure_builtin("tiny-bert", root=locked)
    assert built.parent == tmp_path / "tmp" / "outrider-models"
    assert (built / "model.onnx").is_file()
    assert not any(locked.iterdir())
