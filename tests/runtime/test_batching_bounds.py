"""One declaration of the batching bounds, honoured by every place a batching knob can be set."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from outrider_operator.api.execution import MAX_BATCH_DELAY_MS, MAX_BATCH_SIZE, MAX_LOOKAHEAD_WINDOW
from outrider_operator.api.resource import parse_spec
from outrider_operator.api.runtime import BatchingUpdate
from outrider_runtime.config import parse_config
from outrider_runtime.errors import BadRequestError, ConfigError
from outrider_runtime.load_override import LoadOverride

KNOBS = {
    "maxBatchSize": MAX_BATCH_SIZE,
    "minBatchDelayMs": MAX_BATCH_DELAY_MS,
    "lookaheadWindow": MAX_LOOKAHEAD_WINDOW,
}
MODEL = {"name": "m", "uri": "builtin:tiny-bert"}


def _spec(batching: dict[str, Any]) -> object:
    return parse_spec({"model": MODEL, "batching": batching})


def _runtime(batching: dict[str, Any]) -> object:
    return parse_config({"model": MODEL, "batching": batching})


def _admin(batching: dict[str, Any]) -> object:
    return BatchingUpdate.model_validate(batching)


@pytest.mark.parametrize("where", [_spec, _runtime, _admin], ids=["spec", "runtime-config", "admin-api"])
@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_the_spec_the_runtime_config_and_the_admin_api_share_each_bound(where: Any, knob: str) -> None:
    where({knob: KNOBS[knob]})  # the bound itself is accepted everywhere
    with pytest.raises((ValidationError, ConfigError)):
        where({knob: KNOBS[knob] + 1})


def test_a_repository_loads_override_shares_them_too() -> None:
    LoadOverride.from_triton_config(json.dumps({"max_batch_size": MAX_BATCH_SIZE}))
    with pytest.raises(BadRequestError, match=f"1..{MAX_BATCH_SIZE}"):
        LoadOverride.from_triton_config(json.dumps({"max_batch_size": MAX_BATCH_SIZE + 1}))
    top = MAX_BATCH_DELAY_MS * 1000
    LoadOverride.from_triton_config(json.dumps({"dynamic_batching": {"max_queue_delay_microseconds": top}}))
    with pytest.raises(BadRequestError, match="max_queue_delay_microseconds"):
        LoadOverride.from_triton_config(
            json.dumps({"dynamic_batching": {"max_queue_delay_microseconds": top + 1}})
        )
