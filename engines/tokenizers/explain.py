"""Tokenization taken apart for the lessons: characters and their bytes, and vocabulary size against length.

Each function returns the numbers a lab shows, computed with this package's
tokenizers and trainers.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Callable

from workbench_engines.backends import resolve
from workbench_engines.tokenizers.bpe import BPETokenizer

FORMS = ("NFC", "NFD", "NFKC", "NFKD")


@dataclass(frozen=True)
class Character:
    """One code point of a text: what it is and the UTF-8 bytes it costs."""

    char: str
    code_point: int
    category: str
    """Unicode general category, e.g. Ll (lowercase letter), Mn (combining mark)."""
    name: str
    utf8: bytes


@dataclass(frozen=True)
class NormalisedText:
    form: str
    text: str
    """The text after normalisation."""
    characters: list[Character]

    @property
    def utf8_bytes(self) -> int:
        return sum(len(c.utf8) for c in self.characters)


def utf8(text: str) -> bytes:
    """UTF-8 bytes of text; a lone surrogate (typed as \\ud800) keeps its three bytes instead of failing."""
    return text.encode("utf-8", "surrogatepass")


def characters(text: str, form: str = "NFC") -> NormalisedText:
    """Every code point of text after Unicode normalisation ``form`` (NFC, NFD, NFKC or NFKD)."""
    if form not in FORMS:
        raise ValueError(f"unknown normalisation form {form!r}; choose one of {', '.join(FORMS)}")
    normal = unicodedata.normalize(form, text)
    chars = [Character(ch, ord(ch), unicodedata.category(ch), unicodedata.name(ch, "?"), utf8(ch)) for ch in normal]
    return NormalisedText(form, normal, chars)


@dataclass(frozen=True)
class VocabPoint:
    """How long held-out text gets with one vocabulary size."""

    vocab_size: int
    tokens_per_1000_bytes: float

    @property
    def bytes_per_token(self) -> float:
        return 1000 / self.tokens_per_1000_bytes


@dataclass(frozen=True)
class VocabSweep:
    points: list[VocabPoint]
    backend: str
    """The BPE backend that trained and encoded, with the reason it was chosen."""
    train_bytes: int
    held_out_bytes: int


def vocab_sweep(text: str, sizes: list[int], *, backend: str = "auto",
                progress: Callable[[float, str], None] | None = None) -> VocabSweep:
    """Train byte-level BPE once on the first 90% of text up to the largest size, then encode
    the last 10% with every smaller vocabulary (the first ``size`` ranks of the same merges)."""
    from workbench_engines.tokenizers.bpe_train import train_bpe

    choice = resolve(backend)
    cut = int(len(text) * 0.9)
    train, held = text[:cut], text[cut:]
    sizes = sorted({int(v) for v in sizes})
    report = (lambda done, total, what: progress(0.8 * done / max(total, 1), what)) if progress else None
    result = train_bpe(train, max(sizes), pattern="gpt2", special_tokens=(), backend=choice.name, progress=report)
    ranks = sorted(result.tokenizer.ranks.items(), key=lambda kv: kv[1])
    held_bytes = len(utf8(held))
    points = []
    for k, size in enumerate(sizes):
        if progress:
            progress(0.8 + 0.2 * k / len(sizes), f"encoding with {size:,} tokens")
        tokenizer = BPETokenizer(f"bpe-{size}", dict(ranks[:size]), "gpt2", {}, choice.name)
        points.append(VocabPoint(size, 1000 * len(tokenizer.encode(held)) / held_bytes))
    return VocabSweep(points, str(choice), len(utf8(train)), held_bytes)
