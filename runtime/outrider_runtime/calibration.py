"""The built-in calibration set: English sentences of graded length for precision agreement checks."""

from __future__ import annotations

__all__ = ["CALIBRATION_SENTENCES", "calibration_texts"]

_BASE = [
    "Hello.",
    "The cat sleeps.",
    "A man is eating food.",
    "The girl is carrying a baby.",
    "A man is riding a white horse on an enclosed ground.",
    "Two dogs are running through a field of tall grass near the river.",
    "The scheduler places inference pods on nodes whose GPUs have enough free memory.",
    "Predictive autoscaling adds replicas before the morning traffic peak instead of after it.",
    "Quantization trades a little accuracy for a large gain in throughput on commodity processors.",
    "A woman is slicing tomatoes while a child watches from the kitchen table, asking questions.",
    "Batching many small requests together amortizes the fixed cost of each model invocation.",
    "The weather service warned that heavy rain would continue through the weekend in the north.",
]

CALIBRATION_SENTENCES: tuple[str, ...] = tuple(_BASE)
"""Short to medium sentences (3 to ~25 tokens)."""


def calibration_texts() -> list[str]:
    """Calibration texts from 3 to ~250 tokens: the base sentences and concatenations of them."""
    texts = list(_BASE)
    for n in (2, 4, 8, 12):
        for start in range(0, len(_BASE), 3):
            texts.append(" ".join(_BASE[(start + k) % len(_BASE)] for k in range(n)))
    return texts
