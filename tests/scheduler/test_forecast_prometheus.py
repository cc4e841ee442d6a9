"""The live forecaster against a real Prometheus server loaded with a real trace (no mocked HTTP).

The test backfills a slice of the shared Azure 2024 trace as a request counter with
``promtool tsdb create-blocks-from openmetrics``, starts its own ``prometheus`` on a free
127.0.0.1 port with a temporary storage folder, and stops it at the end. Needs Debian's
``prometheus`` package (``prometheus`` and ``promtool`` on PATH).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from outrider_scheduler.forecast import prometheus as prometheus_module
from outrider_scheduler.forecast.ensemble import EnsembleSettings
from outrider_scheduler.forecast.errors import MetricsUnavailableError
from outrider_scheduler.forecast.metrics import ForecastMetrics
from outrider_scheduler.forecast.model import ModelSettings
from outrider_scheduler.forecast.prometheus import PrometheusSource
from outrider_scheduler.forecast.service import ForecasterService, ForecasterSettings
from outrider_scheduler.forecast.traces import load_trace

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces"
BINARIES = shutil.which("prometheus") and shutil.which("promtool")
pytestmark = [
    pytest.mark.skipif(not TRACES.is_dir(), reason=f"shared traces folder {TRACES} is absent"),
    pytest.mark.skipif(
        not BINARIES, reason="prometheus/promtool not on PATH (apt-get install -y prometheus)"
    ),
]

STEPS = 4 * 360  # four hours of 10-s bins


@dataclass
class Loaded:
    url: str
    proc: subprocess.Popen[bytes]
    start: float
    end: float
    counts: np.ndarray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    root = tmp_path_factory.mktemp("prom")
    counts = load_trace(TRACES / "azure_llm_2024_conv_10s.csv").counts[1 : STEPS + 1]
    end = float(int(time.time() - 1800) // 10 * 10)
    start = end - STEPS * 10
    lines = ["# HELP outrider_runtime_requests Requests served.", "# TYPE outrider_runtime_requests counter"]
    total = 0.0
    for i in range(STEPS + 1):
        labels = '{namespace="ns",deployment="chat"}'
        lines.append(f"outrider_runtime_requests_total{labels} {total:.0f} {start + 10 * i:.0f}")
        if i < STEPS:
            total += counts[i]
    lines.append("# EOF")
    (root / "in.om").write_text("\n".join(lines) + "\n")
    data = root / "data"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(root / "in.om"), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = _free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(
                f"prometheus did not become ready: {(root / 'prometheus.log').read_text()[-2000:]}"
            )
        time.sleep(0.3)
    try:
        yield Loaded(url, proc, start, end, counts)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_query_range_gives_the_trace_counts(prometheus: Loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    src = PrometheusSource(prometheus.url)
    monkeypatch.setattr(prometheus_module, "MAX_POINTS", 500)  # exercise the chunking
    series = src.fetch("ns", "chat", prometheus.start, prometheus.end, 10)
    assert series.t0 == prometheus.start and series.step_seconds == 10
    np.testing.assert_array_equal(series.y, prometheus.counts)


def test_unknown_deployment_is_metrics_unavailable(prometheus: Loaded) -> None:
    with pytest.raises(MetricsUnavailableError, match="no samples"):
        PrometheusSource(prometheus.url).fetch("ns", "nope", prometheus.start, prometheus.end, 10)


def test_service_forecasts_from_prometheus_and_survives_it_going_away(prometheus: Loaded) -> None:
    registry = CollectorRegistry()
    settings = ForecasterSettings(
        history_seconds=STEPS * 10,
        learned_min_history_seconds=3600,
        refit_interval_seconds=3600,
        recalibrate_interval_seconds=60,
        model=ModelSettings(max_iter=30, max_rows=2000),
        ensemble=EnsembleSettings(calib_window_seconds=3600, loss_window_seconds=3600),
    )
    svc = ForecasterService(PrometheusSource(prometheus.url), settings, ForecastMetrics(registry))
    try:
        svc.add("ns", "chat")
        now = prometheus.end + 1
        first = svc.cycle(now)["ns/chat"]
        assert first.forecasting and first.reason in ("ColdStart", "Learned")
        svc.wait_for_refits(timeout=120)
        res = svc.cycle(now + 10)["ns/chat"]
        assert res.forecasting and res.reason == "Learned", res
        recent = prometheus.counts[-30:].mean() / 10
        assert 0.5 * recent < res.p50_rps < 2 * recent
        assert res.p50_rps <= res.p90_rps <= res.peak_p90_rps
        assert res.condition() == {
            "type": "Forecasting",
            "status": "True",
            "reason": "Learned",
            "message": res.message,
        }
        text = generate_latest(registry).decode()
        assert 'outrider_forecaster_learned_model_active{deployment="ns/chat"} 1.0' in text
        assert 'outrider_forecaster_forecasting_status{deployment="ns/chat",reason="Learned"} 1.0' in text
        assert "outrider_forecaster_forecast_requests_per_second" in text
        # Prometheus goes away: the service reports it and keeps the last forecast
        prometheus.proc.terminate()
        prometheus.proc.wait(timeout=20)
        down = svc.cycle(now + 600)["ns/chat"]
        assert not down.forecasting and down.reason == "MetricsUnavailable"
        assert "cannot reach Prometheus" in down.message
        assert down.p90_rps == res.p90_rps
        assert (
            'outrider_forecaster_source_errors_total{deployment="ns/chat"} 1.0'
            in generate_latest(registry).decode()
        )
        assert 'outrider_forecaster_calibration_age_seconds{deployment="ns/chat"}' in text
        # a deployment no longer forecast leaves no series behind (an alert on one would never clear)
        svc.remove("ns", "chat")
        assert 'deployment="ns/chat"' not in generate_latest(registry).decode()
    finally:
        svc.close()
