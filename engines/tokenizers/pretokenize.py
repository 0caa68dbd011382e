"""Pre-tokenisation: the regex split that byte-level BPE applies before merging.

Each piece is encoded on its own, so merges never cross a piece boundary:
" dog" and "dog." never share a token with the space or the full stop. The
patterns are GPT-2's and cl100k_base's, as tiktoken writes them, and
SmolLM2's, which runs in two stages (see :data:`SMOLLM_STAGES`); the ``regex``
module (which knows ``\\p{L}`` and possessive quantifiers) is the reference,
and native/src/wb_pretok.c is the fast scanner tested against it.

One known difference: about 17,000 code points assigned in recent Unicode
versions are letters to the ``regex`` module but not yet to tiktoken's Rust
regex. The C tables follow tiktoken there (cl100k must match it token for
token), so on those characters alone the reference splits differently.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Protocol

import numpy as np
import regex

from workbench_engines.errors import EngineError
from workbench_engines.nativelib import check_status, native

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
SMOLLM_STAGES = (r"\p{N}", GPT2_PATTERN)
"""SmolLM2's split: every number character becomes a piece of its own, then
GPT-2's pattern splits each stretch between them as if it were the whole text.

It is HF's ``Sequence([Digits(individual_digits=True), ByteLevel()])`` and
llama.cpp's ``regex_exprs`` for the "smollm" pre-tokeniser. Splitting the
stretch on its own matters: GPT-2 alone gives ``"a  1"`` as ``a| | 1`` (the
last space joins the number), SmolLM2 as ``a|  |1`` (``\\s++$`` sees the end of
the stretch before the 1).

>>> split("in 1999,  42 ٣²", "smollm")
['in', ' ', '1', '9', '9', '9', ',', '  ', '4', '2', ' ', '٣', '²']
"""
PATTERNS: dict[str, str | tuple[str, ...]] = {"gpt2": GPT2_PATTERN, "cl100k": CL100K_PATTERN, "smollm": SMOLLM_STAGES}
"""Named patterns: one regex, or a tuple of stages (each splits the pieces of the one before)."""
# The patterns the C scanner knows, each wb_pretok.h's WB_PATTERN_<NAME>.
NATIVE_PATTERNS = ("whole", "gpt2", "cl100k", "smollm")


class Splitter(Protocol):
    """What :func:`compiled` returns: a compiled regex, or the stages of a staged pattern."""

    def findall(self, text: str) -> list[str]: ...


class StagedSplit:
    """A pattern in stages: each stage's regex cuts every piece of the stage before
    into its matches and the text between them (HF's "isolated" split behaviour)."""

    def __init__(self, stages: tuple[regex.Pattern[str], ...]) -> None:
        self.stages = stages

    def findall(self, text: str) -> list[str]:
        pieces = [text] if text else []
        for stage in self.stages:
            pieces = [part for piece in pieces for part in _isolated(stage, piece)]
        return pieces


def _isolated(stage: regex.Pattern[str], piece: str) -> Iterator[str]:
    start = 0
    for found in stage.finditer(piece):
        if found.start() > start:
            yield piece[start : found.start()]
        yield found.group()
        start = found.end()
    if start < len(piece):
        yield piece[start:]


def native_pattern_id(lib, name: str) -> int:
    """wb_pretok.h's id for one of NATIVE_PATTERNS, read from the loaded library."""
    return getattr(lib, f"WB_PATTERN_{name.upper()}")


def pattern_name(pattern: str) -> str | None:
    """The short name of a known pattern given by name or by its regex text, else None."""
    if pattern in PATTERNS:
        return pattern
    for name, text in PATTERNS.items():
        if pattern == text:
            return name
    return None


@cache
def compiled(pattern: str) -> Splitter:
    """The splitter for a pattern name or regex text (clear error if invalid)."""
    spec = PATTERNS.get(pattern, pattern)
    if isinstance(spec, tuple):
        return StagedSplit(tuple(_regex(stage) for stage in spec))
    return _regex(spec)


def _regex(text: str) -> regex.Pattern[str]:
    try:
        return regex.compile(text)
    except regex.error as exc:
        raise EngineError(f"invalid pre-tokenisation pattern {text!r}: {exc}") from exc


def split(text: str, pattern: str = "cl100k", *, backend: str = "reference") -> list[str]:
    """The pieces of text under pattern (a name or a regex); they join back to text."""
    if backend == "reference":
        return compiled(pattern).findall(text)
    if backend == "native":
        data = text.encode("utf-8")
        return [piece.decode("utf-8") for piece in split_bytes_native(data, pattern)]
    raise ValueError(f"unknown backend {backend!r}; choose reference or native")


def split_bytes_native(data: bytes, pattern: str = "cl100k") -> list[bytes]:
    """The C scanner's pieces of UTF-8 bytes (invalid bytes count as punctuation)."""
    name = pattern_name(pattern)
    if name is None:
        raise EngineError(f"the native pre-tokeniser knows {', '.join(PATTERNS)}, not {pattern!r}")
    module = native()
    ends = np.empty(max(len(data), 1), dtype=np.uint32)
    count = module.ffi.new("size_t *")
    status = module.lib.wb_pretok_split(
        native_pattern_id(module.lib, name),
        module.ffi.from_buffer(data),
        len(data),
        module.ffi.from_buffer("uint32_t[]", ends, require_writable=True),
        len(ends),
        count,
    )
    check_status("wb_pretok_split", status)
    pieces, start = [], 0
    for end in ends[: count[0]].tolist():
        pieces.append(data[start:end])
        start = end
    return pieces
