"""The tokenizer a model's files carry (``tokenizer.json``), through the ``tokenizers`` library."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["Tokenizer"]


class Tokenizer:
    """The model's fast tokenizer: texts to token ids, truncated to the sequence length, unpadded."""

    def __init__(self, path: Path, max_len: int) -> None:
        from tokenizers import Tokenizer as HfTokenizer

        self._tok = HfTokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.enable_truncation(max_len)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """One array of token ids per text."""
        return [np.asarray(e.ids, dtype=np.int64) for e in self._tok.encode_batch(texts)]
