"""Vector search: exact top-k, IVF and HNSW (C kernels), with recall@k measured against exact search.

Every index takes float32, C-contiguous (N, D) arrays without NaN or inf and
returns a :class:`SearchResult` (ids and values, best first; ties to the
lower id). Metric "ip" is the inner product, the cosine once rows are unit
length (``normalize_rows``); "l2" the squared Euclidean distance.

  FlatIndex / exact_search   exact: blocked BLAS product + C top-k (exact.py)
  reference_search           the same in NumPy alone (full matrix, stable argsort)
  IVFFlatIndex, kmeans       k-means coarse quantiser, inverted lists, nprobe (ivf.py, kmeans.py)
  HNSWIndex                  Malkov & Yashunin's graph in C, inner product (hnsw.py)
  recall_at_k, queries_per_second   the figures a benchmark reports (metrics.py)

Example:
    >>> x = normalize_rows(vectors)                      # (N, D) float32
    >>> truth = FlatIndex(x).search(queries, 10).ids     # (Q, 10)
    >>> with HNSWIndex.build(x, M=16, ef_construction=100) as graph:
    ...     recall_at_k(graph.search(queries, 10, ef_search=64).ids, truth)
"""

from workbench_engines.search._checks import METRICS, normalize_rows
from workbench_engines.search.exact import FlatIndex, exact_search, reference_search
from workbench_engines.search.hnsw import HNSWIndex
from workbench_engines.search.ivf import IVFFlatIndex
from workbench_engines.search.kmeans import KMeansResult, kmeans
from workbench_engines.search.metrics import queries_per_second, recall_at_k
from workbench_engines.search.result import SearchResult

__all__ = [
    "METRICS", "FlatIndex", "HNSWIndex", "IVFFlatIndex", "KMeansResult", "SearchResult", "exact_search", "kmeans",
    "normalize_rows", "queries_per_second", "recall_at_k", "reference_search",
]
