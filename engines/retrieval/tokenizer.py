"""bm25s's default tokenisation, without bm25s: lower-case, scikit-learn's word regex, English stop words.

``bm25s.tokenize(texts)`` (bm25s 0.3.x, MIT licence) lower-cases each text,
splits it with scikit-learn's ``CountVectorizer`` pattern ``(?u)\\b\\w\\w+\\b``
(runs of two or more word characters: one-letter words and punctuation are
dropped) and removes its English stop words. :func:`tokenize` does the same, so
an index built from our tokens equals one built from bm25s's. Document length
in BM25 is counted after stop-word removal, as bm25s counts it.

>>> tokenize("The Cat sat on the mat, and it's 3 o'clock.")
['cat', 'sat', 'mat', 'clock']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from workbench_engines.errors import EngineError

TOKEN_PATTERN = r"(?u)\b\w\w+\b"
"""scikit-learn's CountVectorizer default, which bm25s uses."""

# Data copied from bm25s/stopwords.py (STOPWORDS_EN, bm25s 0.3.16, MIT licence,
# https://github.com/xhluca/bm25s); it is the classic Lucene English stop set.
STOPWORDS_EN: tuple[str, ...] = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in",
    "into", "is", "it", "no", "not", "of", "on", "or", "such", "that", "the",
    "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
)  # fmt: skip

_SPLIT = re.compile(TOKEN_PATTERN).findall


def stopword_set(stopwords: str | Iterable[str] | None) -> frozenset[str]:
    """The stop words for a name (``"english"``/``"en"``), an explicit list, or none (``None``)."""
    if stopwords is None or stopwords is False:
        return frozenset()
    if isinstance(stopwords, str):
        if stopwords.lower() in ("english", "en"):
            return frozenset(STOPWORDS_EN)
        raise EngineError(f"unknown stop-word list {stopwords!r}: use 'english', None, or a list of words")
    return frozenset(stopwords)


def tokenize(text: str, *, lower: bool = True, stopwords: str | Iterable[str] | None = "english") -> list[str]:
    """The BM25 terms of ``text`` in order (repeats kept: they are term frequencies)."""
    if not isinstance(text, str):
        raise EngineError(f"tokenize needs a str, got {type(text).__name__}")
    stop = stopword_set(stopwords)
    words = _SPLIT(text.lower() if lower else text)
    return [w for w in words if w not in stop] if stop else words


def tokenize_many(
    texts: Iterable[str], *, lower: bool = True, stopwords: str | Iterable[str] | None = "english"
) -> list[list[str]]:
    """:func:`tokenize` for each text, with the stop-word set built once."""
    stop = stopword_set(stopwords)
    out = []
    for text in texts:
        if not isinstance(text, str):
            raise EngineError(f"tokenize needs a str, got {type(text).__name__}")
        words = _SPLIT(text.lower() if lower else text)
        out.append([w for w in words if w not in stop] if stop else words)
    return out
