"""The ``outrider runtime`` process (SIGTERM drain), Triton repository rendering and the engine client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import yaml

from outrider_runtime.builtin_models import ensure_builtin
from outrider_runtime.config import PrecisionPolicy, parse_config
from outrider_runtime.pipeline import build_pipeline, pad_rows
from outrider_runtime.triton_repo import TritonEngine, render_repository

Call = Callable[..., Any]
OUTRIDER = [sys.executable, "-c", "import sys, outrider_cli; sys.exit(outrider_cli.main())"]


def _start(tmp_path: Path, cfg: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    conf = tmp_path / "runtime.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [*OUTRIDER, "runtime", "serve", "--config", str(conf), "--port", "0", "--ready-file", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(
                f"runtime did not start: {proc.stdout.read().decode() if proc.stdout else ''}"
            )
        time.sleep(0.05)
    return proc, f"127.0.0.1:{json.loads(ready.read_text())['port']}"


async def _wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(600):
            try:
                async with s.get(f"http://{url}/v2/health/ready") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("runtime never became ready")


async def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    cfg = {
        "model": {"name": "tiny", "uri": "builtin:tiny-bert"},
        "batching": {"maxBatchSize": 4, "minBatchDelayMs": 150},
        "server": {"host": "127.0.0.1", "intraOpThreads": 1, "drainTimeoutS": 20},
    }
    proc, url = _start(tmp_path, cfg)
    try:
        await _wait_ready(url)
        body = json.dumps(
            {
                "inputs": [
                    {"name": "input_ids", "datatype": "INT64", "shape": [1, 3], "data": [101, 2000, 102]}
                ]
            }
        )
        async with aiohttp.ClientSession() as s:

            async def one() -> int:
                async with s.post(f"http://{url}/v2/models/tiny/infer", data=body) as r:
                    await r.read()
                    return r.status

            tasks = [asyncio.create_task(one()) for _ in range(10)]
            await asyncio.sleep(0.08)  # requests are queued inside the 150 ms batching window
            proc.send_signal(signal.SIGTERM)
            codes = await asyncio.gather(*tasks)
        assert codes == [200] * 10
        assert await asyncio.to_thread(proc.wait, 30) == 0
        out = proc.stdout.read().decode() if proc.stdout else ""
        assert "draining" in out and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_failed_model_load_exits_nonzero(tmp_path: Path) -> None:
    conf = tmp_path / "runtime.yaml"
    conf.write_text(
        yaml.safe_dump({"model": {"uri": str(tmp_path / "nothing-here")}, "server": {"httpPort": 0}})
    )
    proc = subprocess.run(
        [*OUTRIDER, "runtime", "serve", "--config", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "has no model.onnx" in proc.stderr


def test_bad_config_exits_with_clear_error(tmp_path: Path) -> None:
    conf = tmp_path / "runtime.yaml"
    conf.write_text(yaml.safe_dump({"batching": {"maxBatchSize": -1}}))
    proc = subprocess.run(
        [*OUTRIDER, "runtime", "serve", "--config", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "batching.maxBatchSize" in proc.stderr


def test_render_sharded_triton_repository(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "model": {"name": "tiny", "uri": "builtin:tiny-bert"},
            "precision": {"policy": "fp16"},
            "batching": {"maxBatchSize": 16, "minBatchDelayMs": 3},
            "shards": [
                {
                    "name": "attn",
                    "layers": ["embeddings", "attention"],
                    "maxBatchSize": 8,
                    "device": "cuda:0",
                },
                {
                    "name": "ffn",
                    "layers": ["ffn", "head"],
                    "maxBatchSize": 32,
                    "device": "cuda:1",
                    "precision": "int8",
                },
            ],
        }
    )
    files = render_repository(cfg, tmp_path)
    names = sorted(p.parent.name if p.name == "config.pbtxt" else p.parent.parent.name for p in files)
    assert set(names) == {"tiny", "tiny__0_attn", "tiny__1_ffn", "tiny__2_attn", "tiny__3_ffn"}
    seg0 = (tmp_path / "tiny__0_attn" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in seg0 and "max_batch_size: 8" in seg0
    assert "kind: KIND_GPU" in seg0 and "gpus: [ 0 ]" in seg0
    assert "max_queue_delay_microseconds: 3000" in seg0
    assert 'value: "FP16"' in seg0  # fp16 through the TensorRT accelerator
    seg1 = (tmp_path / "tiny__1_ffn" / "config.pbtxt").read_text()
    assert "gpus: [ 1 ]" in seg1 and "max_batch_size: 32" in seg1 and "tensorrt" not in seg1
    import onnx

    q = onnx.load(str(tmp_path / "tiny__1_ffn" / "1" / "model.onnx"))
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in q.graph.node)
    ens = (tmp_path / "tiny" / "config.pbtxt").read_text()
    assert 'platform: "ensemble"' in ens and "max_batch_size: 8" in ens
    steps = [line.split('"')[1] for line in ens.splitlines() if "model_name:" in line]
    assert steps == ["tiny__0_attn", "tiny__1_ffn", "tiny__2_attn", "tiny__3_ffn"]
    assert 'output_map { key: "embeddings" value: "embeddings" }' in ens
    # every intermediate tensor an ensemble step consumes is produced by an earlier step
    produced = {"input_ids", "attention_mask"}
    for block in ens.split("model_name:")[1:]:
        ins = [seg.split('value: "')[1].split('"')[0] for seg in block.split("input_map")[1:]]
        assert set(ins) <= produced
        produced |= {seg.split('value: "')[1].split('"')[0] for seg in block.split("output_map")[1:]}


def test_render_single_model_cpu(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "model": {"name": "m", "uri": "builtin:tiny-bert"},
            "batching": {"maxBatchSize": 12, "dynamic": "Disabled"},
        }
    )
    render_repository(cfg, tmp_path)
    text = (tmp_path / "m" / "config.pbtxt").read_text()
    assert "max_batch_size: 12" in text and "dynamic_batching" not in text
    assert "kind: KIND_GPU" in text  # engine=triton targets GPU nodes unless a shard says cpu
    assert (tmp_path / "m" / "1" / "model.onnx").stat().st_size > 1000
    cpu = parse_config(
        {
            "model": {"name": "c", "uri": "builtin:tiny-bert"},
            "shards": [{"name": "all", "layers": ["all"], "device": "cpu", "maxBatchSize": 5}],
        }
    )
    render_repository(cpu, tmp_path)
    text = (tmp_path / "c" / "config.pbtxt").read_text()
    assert "KIND_CPU" in text and "dynamic_batching" in text and "max_batch_size: 16" in text


async def test_triton_engine_client_against_outrider(server_factory: Call, tiny_config: Call) -> None:
    async with server_factory(tiny_config()) as srv:

        def drive() -> tuple[int, np.ndarray, dict[str, Any]]:
            eng = TritonEngine(srv.url, "tiny")
            eng.load(max_batch_size=6, delay_ms=1.0, precision=PrecisionPolicy.FP32)
            assert eng.wait_ready(30)
            ids = np.array([[101, 2054, 2003, 102]], dtype=np.int64)
            emb = eng.embed_ids(ids, np.ones_like(ids))
            return eng.max_batch_size(), emb, eng.statistics()

        mbs, emb, stats = await asyncio.to_thread(drive)
        assert mbs == 6
        pipe = build_pipeline(ensure_builtin("tiny-bert") / "model.onnx", [], PrecisionPolicy.FP32)
        np.testing.assert_allclose(emb, pipe.run(pad_rows([np.array([101, 2054, 2003, 102])])), atol=1e-5)
        pipe.close()
        assert stats["inference_stats"]["success"]["count"] == 1


@pytest.mark.slow
async def test_real_minilm_over_http(server_factory: Call, tiny_config: Call, triton: Call) -> None:
    """The real all-MiniLM-L6-v2, adaptive precision, text in: semantics hold and int8 stays close."""
    cfg = tiny_config(
        model={"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
        precision={"policy": "adaptive", "accuracyFloor": "0.99"},
        server={"intraOpThreads": 0},
    )
    async with server_factory(cfg) as srv:
        model = srv.server.models["minilm"]
        assert model.agreement["int8"] >= 0.99  # per-channel int8 keeps MiniLM above the floor
        assert model.agreement["adaptive"] >= 0.99
        import tritonclient.http as th

        t = th.InferInput("text", [3], "BYTES")
        t.set_data_from_numpy(
            np.array(
                [
                    b"A man is eating food.",
                    b"A man is eating a piece of bread.",
                    b"The girl is carrying a baby.",
                ],
                dtype=np.object_,
            )
        )
        c = triton(srv.url)
        emb = (await c.infer("minilm", [t])).as_numpy("embeddings")
        assert emb.shape == (3, 384)
        sim = emb @ emb.T
        assert sim[0, 1] > 0.6 and sim[0, 2] < 0.3 and sim[0, 1] > sim[0, 2] + 0.4

    # the real model cut into the documented two shards (12 alternating segments) equals the whole
    from outrider_runtime.config import ShardConfig

    path = ensure_builtin("all-minilm-l6-v2") / "model.onnx"
    shards = [
        ShardConfig.model_validate(
            {"name": "attn", "layers": ["embeddings", "attention"], "maxBatchSize": 2}
        ),
        ShardConfig.model_validate({"name": "ffn", "layers": ["ffn", "head"], "maxBatchSize": 3}),
    ]
    whole = build_pipeline(path, [], PrecisionPolicy.FP32)
    sharded = build_pipeline(path, shards, PrecisionPolicy.FP32)
    rows = [np.array([101, 1037, 2158, 2003, 5983, 2833, 1012, 102]), np.array([101, 7592, 102])] * 3
    feeds = pad_rows(rows)
    assert sharded.segment_count == 12
    np.testing.assert_allclose(await sharded.run_async(feeds), whole.run(feeds), atol=1e-5)
    whole.close()
    sharded.close()
