"""BPETokenizer: byte-level BPE with a pre-tokenisation pattern and special tokens.

The same object serves cl100k_base (loaded from a tiktoken rank file), a
tokenizer trained here, or a byte-level model from an HF ``tokenizer.json``.
Ids are ranks: token r was the r-th learned (bytes 0..255 come first for
ours). Special tokens follow tiktoken's rules: text that looks like one is an
error unless it is explicitly allowed (then it becomes the special id) or
explicitly not disallowed (then it is encoded as ordinary text).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import regex

from workbench_engines.errors import EngineError
from workbench_engines.nativelib import check_threads
from workbench_engines.tokenizers import pretokenize
from workbench_engines.tokenizers.bpe_reference import bpe_merge
from workbench_engines.tokenizers.ids import check_id_space

SpecialSet = Collection[str] | Literal["all"]


class SpecialTokenError(EngineError, ValueError):
    """Text contained a special token that the caller did not allow."""


def to_utf8(text: str) -> bytes:
    """UTF-8 bytes of text; lone surrogates (which UTF-8 cannot hold) become U+FFFD, as in tiktoken."""
    if not isinstance(text, str):
        raise TypeError(
            f"encode takes str, got {type(text).__name__}; decode bytes to text first "
            "(bytes.decode('utf-8') says where they are not UTF-8)"
        )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


@dataclass
class BPETokenizer:
    """A byte-level BPE tokenizer: ranked byte strings, a split pattern, special tokens."""

    name: str
    ranks: dict[bytes, int]
    pattern: str = "cl100k"
    special_tokens: dict[str, int] = field(default_factory=dict)
    backend: str = "native"
    """``native`` (C) or ``reference`` (the Python of bpe_reference.py)."""

    def __post_init__(self) -> None:
        if self.backend not in ("native", "reference"):
            raise ValueError(f"unknown backend {self.backend!r}; choose native or reference")
        if len(self.ranks) < 256:
            raise EngineError(f"a byte-level vocabulary needs all 256 bytes; {self.name} has {len(self.ranks)} tokens")
        missing = [b for b in range(256) if bytes([b]) not in self.ranks]
        if missing:
            raise EngineError(f"{self.name}: byte 0x{missing[0]:02x} is not a token ({len(missing)} bytes missing)")
        tokens = len(self.ranks) + len(self.special_tokens)
        size = check_id_space([*self.ranks.values(), *self.special_tokens.values()], tokens, self.name)
        self._decoder: list[bytes | None] = [None] * size
        for token, rank in self.ranks.items():
            if self._decoder[rank] is not None:
                raise EngineError(f"{self.name}: rank {rank} is used twice")
            self._decoder[rank] = token
        for text, rank in self.special_tokens.items():
            if self._decoder[rank] is not None:
                raise EngineError(f"{self.name}: special token {text!r} reuses id {rank}")
            self._decoder[rank] = text.encode("utf-8")
        self._special_ids = set(self.special_tokens.values())
        self._split = pretokenize.compiled(self.pattern)
        self._native_pattern = pretokenize.pattern_name(self.pattern)
        self._native = None
        if self.backend == "native":
            from workbench_engines.tokenizers.bpe_native import NativeBPE

            by_rank: list[bytes | None] = [None] * (max(self.ranks.values()) + 1)
            for token, rank in self.ranks.items():
                by_rank[rank] = token
            self._native = NativeBPE(by_rank, self._native_pattern or "whole")

    # ---- sizes -----------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """One more than the largest id (ordinary or special)."""
        return len(self._decoder)

    @property
    def n_ordinary(self) -> int:
        """Tokens learned from bytes (the vocabulary without special tokens)."""
        return len(self.ranks)

    # ---- encoding --------------------------------------------------------
    def encode(
        self,
        text: str,
        *,
        allowed_special: SpecialSet = frozenset(),
        disallowed_special: SpecialSet = "all",
    ) -> list[int]:
        """Token ids of text. Special-token text raises unless allowed or not disallowed."""
        if not isinstance(text, str):
            to_utf8(text)  # raises the TypeError that says what to do
        segments = list(self._segments(text, allowed_special, disallowed_special))
        if len(segments) == 1 and segments[0][0] == "text":
            return self._ordinary(text)
        ids: list[int] = []
        for kind, chunk in segments:
            if kind == "text":
                ids += self._ordinary(chunk)
            else:
                ids.append(self.special_tokens[chunk])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of text with special-token text treated as plain text."""
        return self._ordinary(text)

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        threads: int | None = None,
        allowed_special: SpecialSet = frozenset(),
        disallowed_special: SpecialSet = "all",
    ) -> list[list[int]]:
        """Ids of each text; the native backend encodes texts on ``threads`` threads (None: the CPUs here).

        threads is checked whichever backend runs (once: the native module checks its own), so threads=0 is
        refused everywhere, not read as "default".
        """
        allowed = self._resolve(allowed_special, set())
        if self._native is None or self._native_pattern is None or allowed:
            check_threads(threads)
            return [self.encode(t, allowed_special=allowed_special, disallowed_special=disallowed_special) for t in texts]
        disallowed = self._resolve(disallowed_special, allowed)
        for text in texts:
            self._check_disallowed(text, disallowed)
        return self.encode_ordinary_batch(texts, threads=threads)

    def encode_ordinary_batch(self, texts: Sequence[str], *, threads: int | None = None) -> list[list[int]]:
        """encode_ordinary of each text, on ``threads`` threads with the native backend (None: the CPUs here)."""
        if self._native is None or self._native_pattern is None:
            check_threads(threads)
            return [self._ordinary(t) for t in texts]
        return self._native.encode_batch_lists([to_utf8(t) for t in texts], threads)

    @property
    def long_piece_path(self) -> str:
        """How a piece over 128 bytes is merged: "backtracking" (C, linear time), "backtracking, pairs by
        encoding" (the same, slower per pair, for a vocabulary whose merge tree it cannot read), "heap"
        (C, O(n log n), for a vocabulary with a token that its own bytes do not merge back to) or "reference"
        (bpe_reference.py's Python)."""
        return self._native.long_piece_path if self._native is not None else "reference"

    def _resolve(self, which: SpecialSet, minus: set[str]) -> set[str]:
        if which == "all":
            return set(self.special_tokens) - minus
        if isinstance(which, str):
            raise TypeError(f"special-token sets are collections or 'all', got the string {which!r}")
        unknown = set(which) - set(self.special_tokens)
        if unknown:
            raise SpecialTokenError(f"{self.name} has no special token {sorted(unknown)[0]!r}")
        return set(which)

    def _check_disallowed(self, text: str, disallowed: set[str]) -> None:
        if not disallowed:
            return
        # str.find per token is far faster than one regex search over a long text. Looking for the tokens' first
        # characters (cl100k's all begin "<") is faster still, a memchr each, and rules them all out on most text.
        if all(first not in text for first in {token[0] for token in disallowed}):
            return
        hits = [(at, token) for token in disallowed if (at := text.find(token)) >= 0]
        if hits:
            at, token = min(hits)
            raise SpecialTokenError(
                f"text contains the special token {token!r} at character {at}; "
                f"pass allowed_special={{{token!r}}} to encode it as a special token, "
                "or disallowed_special=() to encode it as ordinary text"
            )

    def _segments(self, text: str, allowed_special: SpecialSet, disallowed_special: SpecialSet):
        allowed = self._resolve(allowed_special, set())
        disallowed = self._resolve(disallowed_special, allowed) - allowed
        self._check_disallowed(text, disallowed)
        if not allowed:
            yield "text", text
            return
        if not any(token in text for token in allowed):
            yield "text", text
            return
        start = 0
        for found in _special_regex(tuple(sorted(allowed))).finditer(text):
            if found.start() > start:
                yield "text", text[start : found.start()]
            yield "special", found.group()
            start = found.end()
        if start < len(text):
            yield "text", text[start:]

    def _ordinary(self, text: str) -> list[int]:
        if not isinstance(text, str):
            to_utf8(text)  # raises the TypeError that says what to do
        if not text:
            return []
        if self._native is not None:
            if self._native_pattern is not None:
                data = self._native.utf8_view(text)
                return self._native.to_list(self._native.encode(data if data is not None else to_utf8(text)))
            pieces = [to_utf8(p) for p in self._split.findall(text)]
            return [i for a in self._native.encode_batch(pieces, 1) for i in a.tolist()]
        return [i for piece in self._split.findall(text) for i in bpe_merge(to_utf8(piece), self.ranks)]

    # ---- decoding --------------------------------------------------------
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ids joined; an id outside the vocabulary is an error."""
        ids = list(ids)
        try:
            if ids and (min(ids) < 0 or any(type(i) is bool for i in ids)):
                raise IndexError  # True would index the list as 1: token_bytes refuses it by name
            parts = [self._decoder[i] for i in ids]
        except (IndexError, TypeError):
            parts = [self.token_bytes(i) for i in ids]
        if None in parts:
            self.token_bytes(ids[parts.index(None)])
        return b"".join(parts)  # type: ignore[arg-type]

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Text of ids; bytes that do not form UTF-8 (a split character) become U+FFFD."""
        return self.decode_bytes(list(ids)).decode("utf-8", errors=errors)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one id."""
        if isinstance(token_id, bool) or not isinstance(token_id, (int, np.integer)):
            raise EngineError(f"token ids are integers, got {token_id!r}")
        if not 0 <= token_id < len(self._decoder) or self._decoder[token_id] is None:
            raise EngineError(f"token id {token_id} is not in {self.name}'s vocabulary (size {self.vocab_size})")
        return self._decoder[token_id]  # type: ignore[return-value]

    def __repr__(self) -> str:
        """A short summary: the vocabulary itself is too long to print (100k tokens for cl100k_base)."""
        pattern = self.pattern if len(self.pattern) <= 40 else self.pattern[:37] + "..."
        return (f"{type(self).__name__}(name={self.name!r}, tokens={len(self.ranks)}, "
                f"special_tokens={len(self.special_tokens)}, pattern={pattern!r}, backend={self.backend!r})")

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    def pieces(self, text: str) -> list[str]:
        """The pre-tokenisation pieces of text under this tokenizer's pattern."""
        return self._split.findall(text)

    def with_backend(self, backend: str) -> "BPETokenizer":
        """The same vocabulary on another backend."""
        return BPETokenizer(self.name, self.ranks, self.pattern, dict(self.special_tokens), backend)


def _special_regex(tokens: tuple[str, ...]) -> regex.Pattern[str]:
    return _SPECIAL_CACHE.get(tokens) or _SPECIAL_CACHE.setdefault(
        tokens, regex.compile("|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True)))
    )


_SPECIAL_CACHE: dict[tuple[str, ...], regex.Pattern[str]] = {}
