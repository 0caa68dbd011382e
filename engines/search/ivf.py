"""IVF-Flat: a k-means coarse quantiser and inverted lists, searched by probing the nprobe nearest lists.

Jégou, Douze & Schmid, "Product quantization for nearest neighbor search"
(TPAMI 2011), §IV: partition the database by a coarse quantiser (k-means
with nlist centroids); a query scans only the lists of its nprobe nearest
centroids. The vectors are stored whole ("Flat", no residual codes), so the
only error is a neighbour in a list that was not probed: nprobe = nlist
scans everything and is exact, and recall rises with nprobe.

Lists are one contiguous array: the vectors sorted by list (stably, so ids
ascend within a list) with offsets, scanned by wb_search_ivf_scan_f32.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.nativelib import check_status, native
from workbench_engines.search import _checks
from workbench_engines.search.exact import FlatIndex, _finish_l2
from workbench_engines.search.kmeans import KMeansResult, kmeans
from workbench_engines.search.result import SearchResult


class IVFFlatIndex:
    """Inverted file over nlist k-means lists; train(), add(), then search(queries, k, nprobe).

    Example:
        >>> index = IVFFlatIndex(dim=50, nlist=256)
        >>> index.train(vectors); index.add(vectors)
        >>> index.search(queries, k=10, nprobe=8).ids       # (Q, 10)
    """

    def __init__(self, dim: int, nlist: int, metric: str = "ip") -> None:
        self.dim = _checks.integer(dim, "dim", low=1)
        self.nlist = _checks.integer(nlist, "nlist", low=1)
        self.metric = _checks.metric(metric)
        self.centroids: np.ndarray | None = None
        self.training: KMeansResult | None = None
        self._parts: list[np.ndarray] = []
        self.vectors = np.zeros((0, self.dim), np.float32)  # (N, D), sorted by list
        self.ids = np.zeros(0, np.int64)  # (N,) database id of each stored row
        self.offsets = np.zeros(self.nlist + 1, np.int64)  # list l holds rows offsets[l]:offsets[l+1]
        self.bias: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def train(self, x: np.ndarray, *, iterations: int = 25, seed: int = 0, max_points_per_centroid: int | None = 256,
              threads: int | None = None) -> KMeansResult:
        """Fit the coarse quantiser on x (N, D) float32 (see kmeans)."""
        _checks.matrix(x, "x", self.dim)
        self.training = kmeans(x, self.nlist, iterations=iterations, metric=self.metric, seed=seed,
                               max_points_per_centroid=max_points_per_centroid, threads=threads)
        self.centroids = self.training.centroids
        if self._parts:
            self._rebuild(threads)
        return self.training

    def add(self, x: np.ndarray, threads: int | None = None) -> None:
        """Append x (N, D) float32; their ids continue from len(self)."""
        if self.centroids is None:
            raise EngineError("train the IVF index before adding vectors")
        self._parts.append(_checks.matrix(x, "x", self.dim).copy())
        self._rebuild(threads)

    def _rebuild(self, threads: int | None) -> None:
        data = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts = [data]
        lists = FlatIndex(self.centroids, self.metric).search(data, 1, threads=threads).ids[:, 0]  # (N,)
        order = np.argsort(lists, kind="stable")
        self.vectors = np.ascontiguousarray(data[order])
        self.ids = order.astype(np.int64)
        self.offsets = np.zeros(self.nlist + 1, np.int64)
        np.cumsum(np.bincount(lists, minlength=self.nlist), out=self.offsets[1:])
        self.bias = None
        if self.metric == "l2":
            self.bias = (-0.5 * np.einsum("ij,ij->i", self.vectors, self.vectors)).astype(np.float32)

    def list_sizes(self) -> np.ndarray:
        """(nlist,) how many vectors each list holds."""
        return np.diff(self.offsets)

    def bytes_per_vector(self) -> float:
        """The float32 vector, its int64 id (and L2 bias), plus the centroids and offsets shared out."""
        n = max(len(self), 1)
        shared = self.nlist * (4 * self.dim + 8) + 8
        return 4.0 * self.dim + 8.0 + (4.0 if self.bias is not None else 0.0) + shared / n

    def search(self, queries: np.ndarray, k: int, nprobe: int = 1, threads: int | None = None) -> SearchResult:
        """The k nearest stored vectors among the nprobe nearest lists of each query (Q, D) float32."""
        if self.centroids is None:
            raise EngineError("the IVF index is not trained")
        queries = _checks.matrix(queries, "queries", self.dim)
        k = _checks.top_k(k, len(self))
        nprobe = _checks.integer(nprobe, "nprobe", low=1, high=self.nlist)
        n_threads = _checks.threads(threads)
        probes = FlatIndex(self.centroids, self.metric).search(queries, nprobe, threads=n_threads).ids  # (Q, nprobe)
        module = native()
        ffi, lib = module.ffi, module.lib
        nq = queries.shape[0]
        scores = np.empty((nq, k), np.float32)
        ids = np.empty((nq, k), np.int64)
        status = lib.wb_search_ivf_scan_f32(
            ffi.from_buffer("float[]", scores, require_writable=True),
            ffi.from_buffer("int64_t[]", ids, require_writable=True),
            ffi.from_buffer("float[]", queries), nq,
            ffi.from_buffer("float[]", self.vectors),
            ffi.NULL if self.bias is None else ffi.from_buffer("float[]", self.bias),
            ffi.from_buffer("int64_t[]", self.ids), ffi.from_buffer("int64_t[]", self.offsets), self.nlist, self.dim,
            ffi.from_buffer("int64_t[]", probes), nprobe, k, n_threads)
        check_status("wb_search_ivf_scan_f32", status)
        if self.metric == "l2":
            found = ids >= 0
            scores = np.where(found, _finish_l2(queries, scores), np.float32(np.inf)).astype(np.float32)
        return SearchResult(ids=ids, values=scores, metric=self.metric)
