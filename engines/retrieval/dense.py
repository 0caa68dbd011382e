"""Dense retrieval: documents embedded once by MiniLM, cached on disk, searched exactly by inner product.

A dense retriever maps the query and every document to unit vectors
(:func:`workbench_engines.embeddings.sentence.embed`) and ranks documents by
their dot product with the query, the cosine. The search is exact
(:class:`workbench_engines.search.FlatIndex`): at a few thousand documents an
approximate index would save nothing worth its lost recall.

Embedding is the slow part: measured on 2 cores with NumPy's BLAS on one
thread, all-MiniLM-L6-v2 in NumPy takes about 0.05 s per 128-token article,
about 1 min 40 s for the 2,087 BBC articles of the headline task (their
headlines, about 10 s). Documents are cut to their first :data:`DOC_TOKENS` WordPiece
tokens ([CLS] and [SEP] included): the length all-MiniLM-L6-v2 was fine-tuned
at (its model card), half the 256 that sentence-transformers keeps, and half
the cost. A BBC headline is mostly paraphrased by the article's first lines,
so little of what a headline matches is cut away.

The vectors are cached as one ``.npy`` under ``data_dir()/retrieval``, named by
model, truncation, document count and a SHA-256 of the texts: a different
corpus or truncation gets its own file. It is written to a temporary file and
renamed (a cancelled or crashed build never leaves half a cache, and a failed
write removes its temporary file), and a file
that does not load, has the wrong shape, or holds rows that are not unit
vectors is rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench_engines.embeddings.sentence import MAX_TOKENS, MODEL_NAME, check_texts, embed
from workbench_engines.errors import EngineError
from workbench_engines.paths import data_dir
from workbench_engines.progress import Progress
from workbench_engines.search import FlatIndex

DOC_TOKENS = 128
"""Tokens kept of each document (see the module docstring)."""
DIM = 384
CACHE_VERSION = 1
"""Bumped when the embedding code changes what it writes: old caches then stop matching."""


def cache_key(texts: Sequence[str], max_tokens: int) -> str:
    """The cache's file stem: model, truncation, count and a hash of the texts."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return f"{MODEL_NAME}-v{CACHE_VERSION}-t{max_tokens}-n{len(texts)}-{digest.hexdigest()[:16]}"


def cache_path(texts: Sequence[str], max_tokens: int) -> Path:
    """Where the embeddings of ``texts`` cut at ``max_tokens`` are kept."""
    return data_dir() / "retrieval" / f"{cache_key(texts, max_tokens)}.npy"


def read_cache(path: Path, rows: int) -> np.ndarray | None:
    """The cached (rows, 384) unit vectors at ``path``, or None if missing, unreadable or not what was asked."""
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if vectors.dtype != np.float32 or vectors.shape != (rows, DIM) or not np.isfinite(vectors).all():
        return None
    if not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
        return None
    return np.ascontiguousarray(vectors)


def write_cache(path: Path, vectors: np.ndarray) -> None:
    """Save atomically: a temporary file of this writer, then a rename over ``path``.

    Raises:
        OSError: the folder or file could not be written (a full disk, no permission); the temporary file is
            removed first, so a failed write leaves nothing behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, vectors, allow_pickle=False)
        tmp.replace(path)
    except BaseException:
        with suppress(OSError):  # the write's own error is the one to report
            tmp.unlink(missing_ok=True)
        raise


def embed_cached(texts: Sequence[str], *, max_tokens: int, cache: bool = True, backend: str = "auto",
                 progress: Progress | None = None, what: str = "texts") -> tuple[np.ndarray, float | None, Path | None]:
    """(vectors (N, 384), seconds spent embedding or None if read from the cache, the cache file or None).

    The cache file is None when ``cache`` is off or the vectors could not be written (an unwritable data folder,
    a full disk): the vectors are still returned, and the next run embeds them again.
    """
    texts = check_texts(texts)
    if not texts:
        raise EngineError(f"no {what} to embed: the corpus is empty")
    path = cache_path(texts, max_tokens) if cache else None
    if path is not None:
        vectors = read_cache(path, len(texts))
        if vectors is not None:
            return vectors, None, path
    started = time.perf_counter()
    vectors = embed(texts, max_tokens=max_tokens, backend=backend, progress=progress, what=what)
    seconds = time.perf_counter() - started
    if path is not None:
        try:
            write_cache(path, vectors)
        except OSError:
            path = None  # write_cache left no temporary file; the caller sees path None and can say why
    return vectors, seconds, path


@dataclass(frozen=True)
class DenseHits:
    """The top documents for one query, best first."""

    doc_ids: np.ndarray
    """(K,) int64."""
    scores: np.ndarray
    """(K,) float32 cosines, non-increasing."""


@dataclass
class DenseIndex:
    """Unit document vectors and an exact inner-product index over them."""

    vectors: np.ndarray
    """(N, 384) float32, unit rows."""
    max_tokens: int
    seconds: float | None = None
    """Time the documents took to embed; None when they came from the cache."""
    path: Path | None = None
    """The cache file, if any."""
    backend: str = "auto"
    flat: FlatIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.flat = FlatIndex(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    def embed_queries(self, queries: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """(Q, 384) unit vectors of the queries (cut at sentence-transformers' 256 tokens)."""
        return embed(check_texts(queries, "query"), max_tokens=MAX_TOKENS, backend=self.backend, progress=progress,
                     what="queries")

    def search_vectors(self, query_vectors: np.ndarray, k: int) -> list[DenseHits]:
        """The k nearest documents of each query vector (Q, 384); k must not exceed the corpus."""
        result = self.flat.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k, backend="auto")
        return [DenseHits(ids, values) for ids, values in zip(result.ids, result.values)]

    def search(self, query: str, k: int = 10) -> DenseHits:
        """The k documents nearest ``query``."""
        return self.search_vectors(self.embed_queries([query]), k)[0]


def build_dense(documents: Sequence[str], *, max_tokens: int = DOC_TOKENS, cache: bool = True, backend: str = "auto",
                progress: Progress | None = None, what: str = "articles") -> DenseIndex:
    """Embed ``documents`` (or read them from the cache) into a :class:`DenseIndex`.

    progress(fraction, what) follows the batches and may raise to cancel: nothing is cached then.

    Raises:
        EngineError: an empty corpus or document, a bad max_tokens, or the minilm extra missing.
    """
    vectors, seconds, path = embed_cached(documents, max_tokens=max_tokens, cache=cache, backend=backend,
                                          progress=progress, what=what)
    return DenseIndex(vectors, max_tokens, seconds, path, backend)
