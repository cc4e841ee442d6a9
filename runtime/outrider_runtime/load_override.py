"""What a repository ``load`` request may override, parsed from its Triton-style model config JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

from outrider_operator.api.execution import MAX_BATCH_DELAY_MS, MAX_BATCH_SIZE
from outrider_runtime.config import PrecisionPolicy
from outrider_runtime.errors import BadRequestError

__all__ = ["LoadOverride"]


@dataclass(frozen=True)
class LoadOverride:
    """Settings a repository ``load`` request may override (from a Triton-style config JSON)."""

    max_batch_size: int | None = None
    min_batch_delay_ms: float | None = None
    precision: PrecisionPolicy | None = None

    @classmethod
    def from_triton_config(cls, text: str) -> LoadOverride:
        """Parse the ``config`` parameter of a load request (Triton model config as JSON)."""
        try:
            cfg = json.loads(text)
        except ValueError as exc:
            raise BadRequestError(f"load config override is not valid JSON: {exc}") from exc
        if not isinstance(cfg, dict):
            raise BadRequestError("load config override must be a JSON object")
        known = {
            "name",
            "platform",
            "backend",
            "input",
            "output",
            "instance_group",
            "version_policy",
            "max_batch_size",
            "dynamic_batching",
            "parameters",
            "optimization",
        }
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise BadRequestError(f"load config override has unsupported fields: {unknown}")
        mbs = cfg.get("max_batch_size")
        if mbs is not None and (
            isinstance(mbs, bool) or not isinstance(mbs, int) or not 1 <= mbs <= MAX_BATCH_SIZE
        ):
            raise BadRequestError(f"max_batch_size must be an integer in 1..{MAX_BATCH_SIZE}, got {mbs!r}")
        delay = None
        dyn = cfg.get("dynamic_batching")
        if isinstance(dyn, dict) and "max_queue_delay_microseconds" in dyn:
            raw_delay = dyn["max_queue_delay_microseconds"]
            if isinstance(raw_delay, str) and raw_delay.isdigit():
                raw_delay = int(raw_delay)  # protobuf JSON writes uint64 as a string
            if (
                isinstance(raw_delay, bool)
                or not isinstance(raw_delay, int | float)
                or not 0 <= raw_delay <= MAX_BATCH_DELAY_MS * 1000
            ):
                raise BadRequestError(
                    "dynamic_batching.max_queue_delay_microseconds must be a number in "
                    f"0..{MAX_BATCH_DELAY_MS * 1000} ({MAX_BATCH_DELAY_MS // 1000} s), got {raw_delay!r}"
                )
            delay = float(raw_delay) / 1000.0
        prec = None
        params = cfg.get("parameters") or {}
        if "precision" in params:
            raw = params["precision"]
            value = raw.get("string_value") if isinstance(raw, dict) else raw
            try:
                prec = PrecisionPolicy(str(value))
            except ValueError as exc:
                raise BadRequestError(
                    f"parameters.precision must be one of fp32|fp16|bf16|int8|adaptive, got {value!r}"
                ) from exc
        return cls(max_batch_size=mbs, min_batch_delay_ms=delay, precision=prec)
