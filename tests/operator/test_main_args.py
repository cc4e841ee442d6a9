"""Operator command-line flags: the node model cache must be an absolute host path."""

from __future__ import annotations

import pytest

from outrider_operator.main import parse_args


def test_node_model_cache_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTRIDER_NODE_MODEL_CACHE", raising=False)
    assert parse_args([]).node_model_cache is None
    assert parse_args(["--node-model-cache", "/var/cache/outrider"]).node_model_cache == "/var/cache/outrider"
    monkeypatch.setenv("OUTRIDER_NODE_MODEL_CACHE", "/mnt/models")
    assert parse_args([]).node_model_cache == "/mnt/models"


def test_relative_node_model_cache_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--node-model-cache", "cache"])
    assert "must be an absolute host path" in capsys.readouterr().err


def test_scheduler_name_flag_environment_and_refusal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OUTRIDER_SCHEDULER_NAME", raising=False)
    assert parse_args([]).scheduler_name == "outrider"
    assert parse_args(["--scheduler-name", "outrider-b"]).scheduler_name == "outrider-b"
    monkeypatch.setenv("OUTRIDER_SCHEDULER_NAME", "from-env")
    assert parse_args([]).scheduler_name == "from-env"
    with pytest.raises(SystemExit):
        parse_args(["--scheduler-name", "Not Valid"])
    assert "--scheduler-name must be a lowercase DNS subdomain" in capsys.readouterr().err


def test_in_cluster_server_is_the_address_the_kubelet_gives_not_a_dns_name() -> None:
    from outrider_operator.main import in_cluster_server

    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(env) == "https://10.96.0.1:443"
    v6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_server(v6) == "https://[fd00::1]:6443"
    assert in_cluster_server({}) is None and in_cluster_server({"KUBERNETES_SERVICE_HOST": "x"}) is None
