"""Token streams for training: a corpus encoded once, split into train and validation, sampled in windows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench_engines import corpus
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.bpe import BPETokenizer

END_OF_TEXT = "<|endoftext|>"


@dataclass
class TokenData:
    train: np.ndarray
    """Training tokens, documents joined by the end-of-text token (int32)."""
    val: np.ndarray
    """Held-out tokens: the last ``val_fraction`` of every document."""

    def windows(self, split: str, rng: np.random.Generator, batch: int, seq_len: int) -> np.ndarray:
        """``batch`` random windows of seq_len + 1 tokens (inputs and their next-token targets)."""
        ids = self.train if split == "train" else self.val
        if len(ids) < seq_len + 1:
            raise EngineError(f"the {split} split has {len(ids)} tokens, fewer than one window of {seq_len + 1}")
        starts = rng.integers(0, len(ids) - seq_len, size=batch)
        return np.stack([ids[s : s + seq_len + 1] for s in starts])

    def val_windows(self, seq_len: int, limit: int) -> np.ndarray:
        """Consecutive, non-overlapping validation windows (the same ones every time)."""
        n = min(limit, (len(self.val) - 1) // seq_len)
        if n < 1:
            raise EngineError(f"the validation split has {len(self.val)} tokens, fewer than one window of {seq_len + 1}")
        return np.stack([self.val[i * seq_len : i * seq_len + seq_len + 1] for i in range(n)])


def encode_corpus(tokenizer: BPETokenizer, path: str | Path | None = None, *, val_fraction: float = 0.05,
                  limit_bytes: int | None = None) -> TokenData:
    """Encode every document of the corpus (default: the plays) and hold out the end of each one."""
    if not 0 < val_fraction < 1:
        raise EngineError(f"val_fraction must be in (0, 1), got {val_fraction}")
    eot = tokenizer.special_tokens.get(END_OF_TEXT)
    if eot is None:
        raise EngineError(f"the tokenizer has no {END_OF_TEXT} token to separate documents")
    files = corpus.corpus_files(path)
    texts, used = [], 0
    for file in files:
        text = corpus.read_text(file)
        if limit_bytes is not None:
            text = text[: max(0, limit_bytes - used)]
        if text:
            texts.append(text)
            used += len(text)
    if not texts:
        raise EngineError("the corpus is empty")
    train, val = [], []
    for ids in tokenizer.encode_batch(texts):
        cut = max(1, int(len(ids) * (1 - val_fraction)))
        train.extend(ids[:cut] + [eot])
        val.extend(ids[cut:] + [eot])
    return TokenData(np.asarray(train, dtype=np.int32), np.asarray(val, dtype=np.int32))
