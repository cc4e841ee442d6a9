"""Cheap bounds every inference request meets before any of it is decoded, tokenized or queued.

A request's header names each input's shape before its data; the shape alone says how many rows
and tokens the request would hold, so a request over the model's bounds is refused before a single
element is decoded (a 4 MB body of a million empty strings is a 400 in milliseconds, not seconds of
decoding on the event loop). Text is cut to :attr:`InputLimits.max_text_chars` characters before it
is tokenized: the tokenizer keeps at most ``maxSequenceLength`` tokens anyway, and no real text
needs more than :data:`TEXT_CHARS_PER_TOKEN` characters per token to reach that many, so the cut
changes no answer while a multi-megabyte text costs microseconds instead of seconds.

Bodies larger than :data:`OFFLOAD_BYTES` are decoded and tokenized on a small pool of worker
threads (:data:`DECODE_WORKERS`), so liveness, metrics and small requests keep being answered while
a large one is prepared, and at most that many large bodies are expanded in memory at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from outrider_runtime.errors import BadRequestError

__all__ = [
    "DECODE_WORKERS",
    "INPUTS",
    "OFFLOAD_BYTES",
    "PAD_FACTOR",
    "TEXT_CHARS_PER_TOKEN",
    "InputLimits",
    "cut_utf8",
]

INPUTS = ("text", "input_ids", "attention_mask")
"""The inputs the runtime's embedding models take."""
TEXT_CHARS_PER_TOKEN = 16
"""Characters of text kept per token of ``maxSequenceLength`` (English averages about 4 per token)."""
PAD_FACTOR = 4
"""``input_ids`` rows may be padded to at most this many times ``maxSequenceLength`` (the mask
then says how much of each row is real); longer rows are refused before they are decoded."""
OFFLOAD_BYTES = 64 * 1024
"""Request bodies over this size are decoded off the event loop."""
DECODE_WORKERS = 2
"""Threads that decode large bodies: at most this many are expanded in memory at once."""


@dataclass(frozen=True)
class InputLimits:
    """What one request to a model may hold: rows (``maxBatchSize``) and tokens per row."""

    max_rows: int
    """The model's live ``maxBatchSize``."""
    max_len: int
    """The model's maximum sequence length in tokens."""

    @property
    def max_text_chars(self) -> int:
        """Characters of one text kept for tokenizing."""
        return TEXT_CHARS_PER_TOKEN * self.max_len

    @property
    def max_row_elements(self) -> int:
        """Elements one ``input_ids``/``attention_mask`` row may hold, padding included."""
        return PAD_FACTOR * self.max_len

    def check(self, name: str, datatype: str, shape: list[int]) -> None:
        """Refuse an input whose declared name or shape is out of bounds (nothing decoded yet)."""
        if name not in INPUTS:
            raise BadRequestError(
                f"unknown input {name!r}; the model takes 'text', or 'input_ids' with optional "
                f"'attention_mask'"
            )
        if shape and shape[0] > self.max_rows:
            raise BadRequestError(
                f"input {name!r} holds {shape[0]} rows; this model's maxBatchSize is {self.max_rows} "
                f"(split the request)"
            )
        per_row = math.prod(shape[1:]) if shape else 1
        if name == "text" and per_row > 1:
            raise BadRequestError(f"input 'text' must have shape [N] or [N, 1], got {shape}")
        if name != "text" and per_row > self.max_row_elements:
            raise BadRequestError(
                f"input {name!r} rows hold {per_row} elements; this model takes at most "
                f"{self.max_len} tokens per row (padding up to {self.max_row_elements})"
            )


def cut_utf8(raw: bytes, max_chars: int) -> str:
    """Decode at most ``max_chars`` characters of UTF-8 ``raw``; invalid UTF-8 in that part is a 400.

    Only the first ``4 * max_chars`` bytes are looked at (no character is longer), so the cost
    does not grow with the element's size; a character the byte cut splits is dropped.
    """
    head = raw[: 4 * max_chars]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut by the byte limit is not an error; anything else is
        if len(head) == len(raw) or exc.start < len(head) - 3 or exc.reason != "unexpected end of data":
            raise BadRequestError(f"input 'text' is not valid UTF-8: {exc}") from exc
        text = head[: exc.start].decode("utf-8")
    return text[:max_chars]
