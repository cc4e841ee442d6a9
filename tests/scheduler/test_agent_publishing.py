"""Publishing the inventory on the Node (rate limiting; a real PATCH over HTTP), the agent loop,
its metrics and the ``outrider check-environment`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from outrider_operator.api.inventory import GpuInventory
from outrider_scheduler.agent.discovery import discover
from outrider_scheduler.agent.errors import PublishError
from outrider_scheduler.agent.metrics import AgentMetrics
from outrider_scheduler.agent.nvml import RecordedBackend, Snapshot, load_recorded
from outrider_scheduler.agent.publishing import KubernetesNodePatcher, NodePublisher
from outrider_scheduler.agent.runner import AgentLoop

REPO = Path(__file__).resolve().parents[2]
OUTRIDER = [sys.executable, "-c", "import sys; from outrider_cli import main; sys.exit(main())"]


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        if self.fail:
            raise PublishError("patching node n failed: HTTP 403 Forbidden")
        self.calls.append((name, body))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _inventory(fixture: str = "l4-x4") -> GpuInventory:
    return discover(RecordedBackend(fixture), cache_dir=None)


def test_publish_rate_limits_and_heartbeats() -> None:
    rec, clock = Recorder(), Clock()
    pub = NodePublisher("n1", rec, min_interval_s=30, max_interval_s=300, clock=clock)
    inv = _inventory()
    assert pub.publish(inv) == "patched"
    name, body = rec.calls[0]
    assert name == "n1"
    assert body["metadata"]["labels"] == {
        "outrider.dev/gpu-product": "L4",
        "outrider.dev/gpu-architecture": "ada",
    }
    assert GpuInventory.from_annotation(body["metadata"]["annotations"]["outrider.dev/gpu-inventory"]).gpus
    clock.now += 10
    changed = inv.model_copy(update={"cached_models": ["minilm"]})
    assert pub.publish(changed) == "skipped"  # too soon, even though it changed
    clock.now += 25
    assert pub.publish(changed) == "patched"  # changed and due
    clock.now += 60
    assert pub.publish(changed) == "skipped"  # unchanged: wait for the heartbeat
    clock.now += 300
    assert pub.publish(changed) == "patched"  # heartbeat
    assert len(rec.calls) == 3


def test_small_memory_moves_do_not_republish() -> None:
    rec, clock = Recorder(), Clock()
    pub = NodePublisher("n1", rec, min_interval_s=0, max_interval_s=300, memory_step_mib=1024, clock=clock)
    inv = _inventory("h100-sxm5-80gb-x8")
    pub.publish(inv)
    gpus = [g.model_copy(update={"memory_free_mib": g.memory_free_mib - 10}) for g in inv.gpus]
    assert pub.publish(inv.model_copy(update={"gpus": gpus})) == "skipped"
    gpus = [g.model_copy(update={"memory_free_mib": g.memory_free_mib - 40000}) for g in inv.gpus]
    assert pub.publish(inv.model_copy(update={"gpus": gpus})) == "patched"


def test_failed_publish_is_retried_next_round() -> None:
    rec, clock = Recorder(fail=True), Clock()
    pub = NodePublisher("n", rec, clock=clock)
    assert pub.publish(_inventory()) == "failed"
    rec.fail = False
    assert pub.publish(_inventory()) == "patched"


class _ApiServer(BaseHTTPRequestHandler):
    received: list[tuple[str, str, dict[str, Any]]] = []
    status = 200

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n"}}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def apiserver() -> Iterator[str]:
    _ApiServer.received = []
    _ApiServer.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_kubernetes_patcher_sends_a_merge_patch(apiserver: str) -> None:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = apiserver
    patcher = KubernetesNodePatcher(client.ApiClient(cfg))
    NodePublisher("gpu-7", patcher).publish(_inventory("t4-x1"))
    path, content_type, body = _ApiServer.received[0]
    assert path == "/api/v1/nodes/gpu-7"
    assert "patch" in content_type
    assert body["metadata"]["labels"]["outrider.dev/gpu-product"] == "T4"
    _ApiServer.status = 403
    with pytest.raises(PublishError, match="HTTP 403"):
        patcher.patch_node("gpu-7", {"metadata": {}})


def test_agent_loop_metrics_and_resilience() -> None:
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    rec = Recorder()
    loop = AgentLoop(
        RecordedBackend("a100-sxm4-80gb-x8"), NodePublisher("n", rec, clock=Clock()), metrics, interval_s=0.01
    )
    assert loop.step() == "patched"
    assert loop.step() == "skipped"
    text = generate_latest(registry).decode()
    assert 'outrider_agent_gpu_utilization_ratio{gpu="3",product="A100",uuid=' in text
    assert "outrider_agent_gpus 8.0" in text and "outrider_agent_cpu_only 0.0" in text
    assert 'outrider_agent_publishes_total{result="patched"} 1.0' in text
    used = registry.get_sample_value(
        "outrider_agent_gpu_memory_used_bytes",
        {"gpu": "3", "uuid": loop.last.gpus[3].uuid, "product": "A100"},  # type: ignore[union-attr]
    )
    assert used == 60000 * 1024 * 1024

    class Flaky:
        calls = 0

        def snapshot(self) -> Snapshot:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("transient driver hiccup")
            loop.stop_event.set()
            return load_recorded("t4-x1")

    loop.backend = Flaky()
    loop.run()  # must not raise: the failure is logged and the next round succeeds
    assert Flaky.calls == 2 and loop.last is not None and loop.last.gpus[0].short_product == "T4"


def test_check_environment_on_this_machine() -> None:
    proc = subprocess.run(
        [*OUTRIDER, "check-environment"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("driver:")
    assert "missing:" in proc.stdout


def test_check_environment_recorded_json_and_record(tmp_path: Path) -> None:
    record = tmp_path / "rec.json"
    proc = subprocess.run(
        [*OUTRIDER, "check-environment", "--recorded", "h100-sxm5-80gb-x8", "--json", "--record", str(record),
         "--cache-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    inv = GpuInventory.model_validate(json.loads(proc.stdout))
    assert len(inv.gpus) == 8 and inv.gpus[0].short_product == "H100"
    assert load_recorded(record) == load_recorded("h100-sxm5-80gb-x8")
    text = subprocess.run(
        [*OUTRIDER, "check-environment", "--recorded", "t4-x1", "--cache-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "fp8: no GPU here executes fp8" in text and "T4" in text


def test_agent_process_publishes_once(apiserver: str, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": apiserver}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    (tmp_path / "cache" / "minilm").mkdir(parents=True)
    (tmp_path / "cache" / "minilm" / "model.onnx").write_bytes(b"x")
    proc = subprocess.run(
        [sys.executable, "-m", "outrider_scheduler.agent", "--node-name", "gpu-9",
         "--kubeconfig", str(kubeconfig), "--recorded", "l40s-x4", "--cache-dir", str(tmp_path / "cache"),
         "--once"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    path, _, body = _ApiServer.received[0]
    assert path == "/api/v1/nodes/gpu-9"
    inv = GpuInventory.from_annotation(body["metadata"]["annotations"]["outrider.dev/gpu-inventory"])
    assert [g.short_product for g in inv.gpus] == ["L40S"] * 4 and inv.cached_models == ["minilm"]
    assert "discovered 4 GPUs" in proc.stderr


def test_agent_process_needs_a_node_name() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}
    proc = subprocess.run(
        [sys.executable, "-m", "outrider_scheduler.agent", "--once"],
        cwd=REPO, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 2 and "--node-name" in proc.stderr


def test_agent_process_reports_a_bad_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    proc = subprocess.run(
        [sys.executable, "-m", "outrider_scheduler.agent", "--node-name", "n", "--kubeconfig", str(missing),
         "--once"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and f"cannot use {missing}" in proc.stderr and "Traceback" not in proc.stderr
