"""Configuration loading and the ``outrider extender serve`` process over real HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from outrider_scheduler.extender.config import ExtenderConfig
from outrider_scheduler.extender.errors import ConfigError
from outrider_scheduler.extender.simulation import make_node, make_pod

REPO = Path(__file__).resolve().parents[2]
OUTRIDER = [sys.executable, "-c", "import sys; from outrider_cli import main; sys.exit(main())"]


def test_defaults_are_pinned() -> None:
    c = ExtenderConfig()
    assert (c.host, c.port, c.budget_ms, c.watch_deployments) == ("127.0.0.1", 8765, 200.0, True)


def test_from_mapping_overrides_weights_and_args() -> None:
    c = ExtenderConfig.from_mapping(
        {
            "listen": {"port": 9000},
            "budgetMs": 50,
            "strategies": {"gpuFit": {"weight": 5, "args": {"requireInventory": True}}},
        }
    )
    assert c.port == 9000 and c.budget_ms == 50.0
    assert c.strategies["gpuFit"].weight == 5 and c.strategies["gpuFit"].args == {"requireInventory": True}
    assert c.strategies["cacheLocality"].weight == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bogus": 1}, "unknown config keys ['bogus']"),
        ({"listen": {"port": 70000}}, "listen.port must be within"),
        ({"budgetMs": 0}, "budgetMs must be > 0"),
        ({"strategies": {"magic": {}}}, "unknown strategy 'magic'"),
        ({"strategies": {"gpuFit": {"weight": -1}}}, "strategies.gpuFit.weight must be >= 0"),
        ({"strategies": {"gpuFit": {"weight": "high"}}}, "must be an integer"),
        ({"strategies": {"gpuFit": {"args": {"memoryHeadroomMiB": -5}}}}, "memoryHeadroomMiB must be >= 0"),
    ],
)
def test_bad_config_fails_at_construction(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ExtenderConfig.from_mapping(data)
    assert message in str(exc.value)


def test_from_file_reports_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read extender config"):
        ExtenderConfig.from_file(tmp_path / "missing.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(proc: subprocess.Popen[str], url: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll the extender's ``/healthz`` until it answers; its body (fails with the process output)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"extender did not start: {proc.communicate(timeout=5)[0]}") from None
            time.sleep(0.2)


def test_serve_subprocess_with_static_cluster(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.json"
    cluster.write_text(
        json.dumps(
            {
                "nodes": [make_node("h100", "h100-sxm5-80gb-x8"), make_node("l4", "l4-x4")],
                "pods": [make_pod("busy", 4, node_name="l4")],
            }
        )
    )
    config = tmp_path / "extender.yaml"
    config.write_text("budgetMs: 100\nstrategies:\n  fragmentation: {weight: 0}\n")
    port = _free_port()
    proc = subprocess.Popen(
        [*OUTRIDER, "extender", "serve", "--config", str(config),
         "--port", str(port), "--static-cluster", str(cluster), "--log-format", "json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert _healthy(proc, f"{base}/healthz")["nodes"] == 2
        body = json.dumps({"Pod": make_pod("p", 1), "NodeNames": ["h100", "l4"]}).encode()
        req = urllib.request.Request(f"{base}/scheduler/filter", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            result = json.loads(resp.read())
        assert result["NodeNames"] == ["h100"]
        assert "0 of 4 free" in result["FailedNodes"]["l4"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert '"message": "serving a static cluster of 2 nodes' in out


def test_serve_rejects_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("budgetMs: -3\n")
    proc = subprocess.run(
        [*OUTRIDER, "extender", "serve", "--config", str(config), "--static-cluster", "x"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "budgetMs must be > 0" in proc.stderr and "Traceback" not in proc.stderr


def test_shipped_scheduler_config_matches_the_local_cluster() -> None:
    import yaml

    from outrider_devcluster.configs import extender_config

    shipped = yaml.safe_load((REPO / "deploy" / "scheduler-config.yaml").read_text())
    assert shipped["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert shipped["kind"] == "KubeSchedulerConfiguration"
    assert [p["schedulerName"] for p in shipped["profiles"]] == ["outrider"]
    (ours,) = shipped["extenders"]
    local = extender_config("http://127.0.0.1:8765/scheduler")
    assert ours == local
    c = ExtenderConfig()
    assert ours["urlPrefix"] == f"http://{c.host}:{c.port}/scheduler"


def test_serve_without_credentials_says_so() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    proc = subprocess.run(
        [*OUTRIDER, "extender", "serve", "--port", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert "cannot use in-cluster credentials (no --kubeconfig given)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_with_a_separate_metrics_listener(tmp_path: Path) -> None:
    # in the chart the scheduler API listens on 127.0.0.1 only (kube-scheduler is in the same pod);
    # Prometheus and the kubelet's probe reach /metrics and /healthz on the metrics port
    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps({"nodes": [make_node("h100", "h100-sxm5-80gb-x8")], "pods": []}))
    port, metrics = _free_port(), _free_port()
    proc = subprocess.Popen(
        [*OUTRIDER, "extender", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--metrics-port", str(metrics), "--metrics-host", "127.0.0.1", "--static-cluster", str(cluster)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert _healthy(proc, f"http://127.0.0.1:{metrics}/healthz")["nodes"] == 1
        body = json.dumps({"Pod": make_pod("p", 1), "NodeNames": ["h100"]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/scheduler/filter", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["NodeNames"] == ["h100"]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as resp:
            assert 'outrider_extender_requests_total{outcome="ok",verb="filter"} 1.0' in resp.read().decode()
        on_metrics = urllib.request.Request(
            f"http://127.0.0.1:{metrics}/scheduler/filter", data=body, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(on_metrics, timeout=5)
        assert refused.value.code in (404, 405)  # the scheduler API is not on the metrics listener
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"metrics and health on http://127.0.0.1:{metrics}/metrics" in out
