"""Token streams for training: a corpus encoded once, split into train and validation, sampled in windows.

Encoding is the slow part, so it happens once; a window is then just a slice
of an int32 array. A window holds T + 1 tokens: the model reads the first T
and is scored on predicting the last T (B batch, T time, as elsewhere).

Example::

    >>> data = encode_corpus(shipped_tokenizer())
    >>> data.windows("train", np.random.default_rng(0), 8, 64).shape   # (B, T+1)
    (8, 65)
"""

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
    """A corpus as two flat token arrays, with the windows the training loop samples from them."""

    train: np.ndarray
    """Training tokens, documents joined by the end-of-text token (int32)."""
    val: np.ndarray
    """Held-out tokens: the last ``val_fraction`` of every document."""

    def windows(self, split: str, rng: np.random.Generator, batch: int, seq_len: int) -> np.ndarray:
        """``batch`` random windows of seq_len + 1 tokens (inputs and their next-token targets).

        Args:
            split: "train", or anything else for the validation split.
            rng: Draws the start positions; the caller's generator makes runs repeatable.
            batch: B.
            seq_len: T.

        Returns:
            (B, T+1) int32.

        Raises:
            EngineError: the split is shorter than one window.
        """
        ids = self.train if split == "train" else self.val
        if len(ids) < seq_len + 1:
            raise EngineError(f"the {split} split has {len(ids)} tokens, fewer than one window of {seq_len + 1}")
        starts = rng.integers(0, len(ids) - seq_len, size=batch)  # (B,)
        return np.stack([ids[s : s + seq_len + 1] for s in starts])

    def val_windows(self, seq_len: int, limit: int) -> np.ndarray:
        """Consecutive, non-overlapping validation windows (the same ones every time).

        Neighbouring windows share their boundary token (one's target is the
        next one's first input), so no target is skipped.

        Args:
            seq_len: T.
            limit: The most windows to return.

        Returns:
            (n, T+1) int32, n = min(limit, windows that fit).

        Raises:
            EngineError: the split is shorter than one window.
        """
        n = min(limit, (len(self.val) - 1) // seq_len)
        if n < 1:
            raise EngineError(f"the validation split has {len(self.val)} tokens, fewer than one window of {seq_len + 1}")
        return np.stack([self.val[i * seq_len : i * seq_len + seq_len + 1] for i in range(n)])


def held_out_start(tokens: int, val_fraction: float = 0.05) -> int:
    """Where a document of ``tokens`` tokens is cut: tokens from here on are held out (at least one is trained on)."""
    return max(1, int(tokens * (1 - val_fraction)))


def encode_corpus(tokenizer: BPETokenizer, path: str | Path | None = None, *, val_fraction: float = 0.05,
                  limit_bytes: int | None = None) -> TokenData:
    """Encode every document of the corpus (default: the plays) and hold out the end of each one.

    Holding out each document's end, rather than whole documents, keeps every
    play's vocabulary and style in both splits.

    Args:
        tokenizer: Must have the <|endoftext|> special token, which ends every document.
        path: The corpus folder; None for the default corpus.
        val_fraction: The share of each document's tokens held out.
        limit_bytes: Use only the first limit_bytes characters of text across files (for quick runs).

    Returns:
        TokenData with int32 train and val arrays.

    Raises:
        EngineError: a bad val_fraction, no <|endoftext|> token, or an empty corpus.
    """
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
        cut = held_out_start(len(ids), val_fraction)
        train.extend(ids[:cut] + [eot])
        val.extend(ids[cut:] + [eot])
    return TokenData(np.asarray(train, dtype=np.int32), np.asarray(val, dtype=np.int32))
