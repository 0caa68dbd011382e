"""HNSW (Malkov & Yashunin 2016/2018) in C: a layered proximity graph searched greedily, then by a beam.

native/src/wb_hnsw.c holds the algorithm and its citations; this
class owns the C graph (``wb_hnsw_new`` / ``wb_hnsw_free``), checks
everything before a pointer crosses, and frees the graph deterministically:
``close()`` (or a ``with`` block) frees it at once, and a finalizer frees it
when the object is collected if nobody called close().

Similarity is the inner product: normalise vectors and queries to unit
length (``normalize_rows``) for cosine search, the case the graph's
neighbour heuristic is built for. The build is single-threaded and
deterministic: the same vectors, M, efConstruction and seed give the same
graph. Queries of a batch are shared among threads.

Knobs: M links per node on the upper layers (2M on layer 0), efConstruction
the beam width while inserting, efSearch (≥ k) the beam width while
searching: larger beams cost time and buy recall.
"""

from __future__ import annotations

import weakref
from typing import Self

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.nativelib import check_status, native
from workbench_engines.search import _checks
from workbench_engines.search.result import SearchResult


class HNSWIndex:
    """An HNSW graph over up to ``capacity`` vectors of ``dim`` floats (inner product).

    Example:
        >>> with HNSWIndex(dim=50, capacity=len(x), M=16, ef_construction=100) as index:
        ...     index.add(normalize_rows(x))                         # (N, 50)
        ...     index.search(normalize_rows(q), k=10, ef_search=64).ids  # (Q, 10)
    """

    def __init__(self, dim: int, capacity: int, M: int = 16, ef_construction: int = 100, seed: int = 0) -> None:
        module = native()
        self._ffi, self._lib = module.ffi, module.lib
        self.dim = _checks.integer(dim, "dim", low=1)
        self.capacity = _checks.integer(capacity, "capacity", low=1, high=2**31 - 2)
        self.M = _checks.integer(M, "M", low=2, high=int(self._lib.WB_HNSW_MAX_M) // 2)
        self.ef_construction = _checks.integer(ef_construction, "ef_construction", low=1)
        self.seed = _checks.integer(seed, "seed", low=0, high=2**64 - 1)
        handle = self._ffi.new("wb_hnsw **")
        check_status("wb_hnsw_new", self._lib.wb_hnsw_new(handle, self.dim, self.capacity, self.M,
                                                          self.ef_construction, self.seed))
        self._handle = handle[0]
        self._finalizer = weakref.finalize(self, self._lib.wb_hnsw_free, self._handle)

    @classmethod
    def build(cls, vectors: np.ndarray, M: int = 16, ef_construction: int = 100, seed: int = 0) -> HNSWIndex:
        """A graph holding exactly ``vectors`` (N, D) float32."""
        _checks.matrix(vectors, "vectors")
        index = cls(vectors.shape[1], vectors.shape[0], M, ef_construction, seed)
        index.add(vectors)
        return index

    def _live(self):
        if not self._finalizer.alive:
            raise EngineError("this HNSW index is closed")
        return self._handle

    def close(self) -> None:
        """Free the C graph now; later calls raise EngineError. Safe to call twice."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._lib.wb_hnsw_size(self._live()))

    def add(self, vectors: np.ndarray) -> None:
        """Insert vectors (N, D) float32 one by one; their ids continue from len(self)."""
        handle = self._live()
        vectors = _checks.matrix(vectors, "vectors", self.dim)
        room = self.capacity - len(self)
        if vectors.shape[0] > room:
            raise EngineError(f"{vectors.shape[0]} vectors do not fit: the index has room for {room} more")
        status = self._lib.wb_hnsw_add_f32(handle, self._ffi.from_buffer("float[]", vectors), vectors.shape[0])
        check_status("wb_hnsw_add_f32", status)

    def search(self, queries: np.ndarray, k: int, ef_search: int = 64, threads: int | None = None) -> SearchResult:
        """The k most similar vectors (inner product) of each query (Q, D) float32, by a beam of ef_search ≥ k."""
        handle = self._live()
        queries = _checks.matrix(queries, "queries", self.dim)
        k = _checks.top_k(k, len(self))
        ef_search = _checks.integer(ef_search, "ef_search", low=1)
        if ef_search < k:
            raise EngineError(f"ef_search = {ef_search} must be at least k = {k}: the beam holds the results")
        n_threads = _checks.threads(threads)
        nq = queries.shape[0]
        scores = np.empty((nq, k), np.float32)
        ids = np.empty((nq, k), np.int64)
        status = self._lib.wb_hnsw_search_f32(handle, self._ffi.from_buffer("float[]", scores, require_writable=True),
                                              self._ffi.from_buffer("int64_t[]", ids, require_writable=True),
                                              self._ffi.from_buffer("float[]", queries), nq, k, ef_search, n_threads)
        check_status("wb_hnsw_search_f32", status)
        return SearchResult(ids=ids, values=scores, metric="ip")

    def bytes_total(self) -> int:
        """Every byte the C graph holds: vectors, layer-0 links for the full capacity, upper layers, levels."""
        return int(self._lib.wb_hnsw_bytes(self._live()))

    def bytes_per_vector(self) -> float:
        """bytes_total() over the vectors held (over the capacity while empty)."""
        return self.bytes_total() / max(len(self), 1)

    def max_level(self) -> int:
        """The top layer of the graph (-1 while empty)."""
        return int(self._lib.wb_hnsw_max_level(self._live()))

    def links(self, node: int, layer: int) -> np.ndarray | None:
        """The out-links (int32 ids) of node on layer, or None if the node does not reach that layer."""
        handle = self._live()
        node = _checks.integer(node, "node", low=0, high=len(self) - 1)
        layer = _checks.integer(layer, "layer", low=0)
        out = np.empty(2 * self.M, np.int32)
        count = self._ffi.new("int64_t *")
        status = self._lib.wb_hnsw_links(handle, self._ffi.from_buffer("int32_t[]", out, require_writable=True),
                                         len(out), node, layer, count)
        check_status("wb_hnsw_links", status)
        return None if count[0] < 0 else out[: count[0]].copy()
