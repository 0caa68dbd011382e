"""Split documents into chunks for retrieval: fixed word windows, sentences, or recursive separators.

Every chunk keeps its document's id and its character span in that document,
with the invariant ``text[chunk.start:chunk.end] == chunk.text`` (so a hit can
be shown in place, and overlapping chunks can be merged back). Chunks never
start or end with whitespace.

- :func:`fixed_chunks`: ``size`` words per chunk, consecutive chunks sharing ``overlap`` words.
- :func:`sentence_chunks`: ``per_chunk`` sentences per chunk (a sentence ends at
  ``.``, ``!`` or ``?`` before whitespace, or at a blank line), sharing ``overlap`` sentences.
- :func:`recursive_chunks`: chunks of at most ``size`` characters, cut at the
  coarsest separator that works (``"\\n\\n"``, then ``"\\n"``, ``". "``, ``" "``,
  then anywhere), in the spirit of LangChain's RecursiveCharacterTextSplitter:
  pieces are packed greedily and a new chunk repeats up to ``overlap``
  characters of trailing pieces from the last one.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from workbench_engines.errors import EngineError

SEPARATORS = ("\n\n", "\n", ". ", " ")
_WORD = re.compile(r"\S+")
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+(?=\s|$)|(?=\n\s*\n)|$)", re.DOTALL)


@dataclass(frozen=True)
class Chunk:
    """A piece of one document."""

    doc_id: Hashable
    start: int
    """Character offset in the document (inclusive)."""
    end: int
    """Character offset in the document (exclusive)."""
    text: str


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise EngineError(f"{name} must be an int ≥ {low}, got {value!r}")


def _check_overlap(size: int, overlap: int) -> None:
    _check_int("overlap", overlap, 0)
    if overlap >= size:
        raise EngineError(f"overlap ({overlap}) must be smaller than the chunk size ({size})")


def _windows(spans: list[tuple[int, int]], per: int, overlap: int, text: str, doc_id) -> list[Chunk]:
    """Chunks of ``per`` consecutive spans, advancing by ``per - overlap``."""
    out = []
    step = per - overlap
    for i in range(0, len(spans), step):
        group = spans[i : i + per]
        start, end = group[0][0], group[-1][1]
        out.append(Chunk(doc_id, start, end, text[start:end]))
        if i + per >= len(spans):
            break
    return out


def fixed_chunks(text: str, size: int = 200, overlap: int = 0, doc_id: Hashable = 0) -> list[Chunk]:
    """Chunks of ``size`` whitespace-separated words, consecutive ones sharing ``overlap`` words."""
    _check_int("size", size, 1)
    _check_overlap(size, overlap)
    words = [m.span() for m in _WORD.finditer(text)]
    return _windows(words, size, overlap, text, doc_id)


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (rule in the module docstring)."""
    return [_trim(text, *m.span()) for m in _SENTENCE.finditer(text)]


def sentence_chunks(text: str, per_chunk: int = 3, overlap: int = 0, doc_id: Hashable = 0) -> list[Chunk]:
    """Chunks of ``per_chunk`` sentences, consecutive ones sharing ``overlap`` sentences."""
    _check_int("per_chunk", per_chunk, 1)
    _check_overlap(per_chunk, overlap)
    return _windows(sentences(text), per_chunk, overlap, text, doc_id)


def _pieces(text: str, start: int, end: int, seps: Sequence[str], size: int) -> list[tuple[int, int]]:
    """Contiguous spans tiling [start, end), each at most ``size`` characters, cut at the coarsest separator."""
    if end - start <= size:
        return [(start, end)]
    for i, sep in enumerate(seps):
        at = text.find(sep, start, end)
        if at < 0:
            continue
        out, lo = [], start
        while at >= 0:
            hi = at + len(sep)  # the separator stays with the piece before it
            out.extend(_pieces(text, lo, hi, seps[i + 1 :], size))
            lo = hi
            at = text.find(sep, lo, end)
        if lo < end:
            out.extend(_pieces(text, lo, end, seps[i + 1 :], size))
        return out
    return [(s, min(s + size, end)) for s in range(start, end, size)]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def recursive_chunks(
    text: str, size: int = 1000, overlap: int = 0, doc_id: Hashable = 0, separators: Sequence[str] = SEPARATORS
) -> list[Chunk]:
    """Chunks of at most ``size`` characters cut at separators (see the module docstring)."""
    _check_int("size", size, 1)
    _check_overlap(size, overlap)
    if any(not s for s in separators):
        raise EngineError("separators must be non-empty strings")
    out: list[Chunk] = []
    current: list[tuple[int, int]] = []

    def emit() -> None:
        s, e = _trim(text, current[0][0], current[-1][1])
        if s < e and not (out and out[-1].start == s and out[-1].end == e):
            out.append(Chunk(doc_id, s, e, text[s:e]))

    for piece in _pieces(text, 0, len(text), tuple(separators), size):
        if current and piece[1] - current[0][0] > size:
            emit()
            # keep trailing pieces worth at most `overlap` characters that still leave room for `piece`
            while current and (current[-1][1] - current[0][0] > overlap or piece[1] - current[0][0] > size):
                current.pop(0)
        current.append(piece)
    if current:
        emit()
    return out


def chunk_documents(texts: Sequence[str], method: str = "recursive", doc_ids: Sequence | None = None, **options) -> list[Chunk]:
    """Chunks of every document, with ``method`` one of ``fixed``, ``sentence``, ``recursive``;
    ``doc_ids`` default to the documents' positions."""
    split = {"fixed": fixed_chunks, "sentence": sentence_chunks, "recursive": recursive_chunks}.get(method)
    if split is None:
        raise EngineError(f"chunking method {method!r}: use fixed, sentence or recursive")
    if doc_ids is not None and len(doc_ids) != len(texts):
        raise EngineError(f"{len(doc_ids)} doc_ids for {len(texts)} documents")
    ids = range(len(texts)) if doc_ids is None else doc_ids
    return [c for text, d in zip(texts, ids) for c in split(text, doc_id=d, **options)]
