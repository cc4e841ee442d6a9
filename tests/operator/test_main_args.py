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
