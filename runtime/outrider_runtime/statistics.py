"""Triton-style inference statistics of one model (the statistics extension's ``model_stats``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Accumulator", "Stats"]


@dataclass
class Accumulator:
    """A count and the nanoseconds it took (one Triton duration statistic)."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, n: int = 1) -> None:
        """Count ``n`` more taking ``seconds`` in all."""
        self.count += n
        self.ns += int(seconds * 1e9)

    def as_dict(self) -> dict[str, int]:
        """Triton's JSON form."""
        return {"count": self.count, "ns": self.ns}


@dataclass
class Stats:
    """Triton-style inference statistics of one model."""

    success: Accumulator = field(default_factory=Accumulator)
    fail: Accumulator = field(default_factory=Accumulator)
    queue: Accumulator = field(default_factory=Accumulator)
    compute: Accumulator = field(default_factory=Accumulator)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    batches: dict[int, Accumulator] = field(default_factory=lambda: defaultdict(Accumulator))

    def as_triton(self, name: str) -> dict[str, Any]:
        """The ``model_stats`` entry of Triton's statistics extension."""
        zero = {"count": 0, "ns": 0}
        return {
            "name": name,
            "version": "1",
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.as_dict(),
                "fail": self.fail.as_dict(),
                "queue": self.queue.as_dict(),
                "compute_input": zero,
                "compute_infer": self.compute.as_dict(),
                "compute_output": zero,
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": zero,
                    "compute_infer": acc.as_dict(),
                    "compute_output": zero,
                }
                for size, acc in sorted(self.batches.items())
            ],
        }
