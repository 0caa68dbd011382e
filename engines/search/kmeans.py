"""k-means (Lloyd's algorithm) for IVF's coarse quantiser, assignments by the C exact search.

Lloyd (1957/1982): alternate (1) assign every point to its nearest centroid
and (2) move every centroid to the mean of its points; the within-cluster sum
of squares never increases. Here:
  - init: a seeded random sample of distinct points (as faiss does);
  - a cluster left empty is re-seeded with the point worst served by its
    centroid (largest distance, or lowest inner product), so every list is used;
  - metric "ip" runs spherical k-means (Dhillon & Modha, "Concept
    decompositions for large sparse text data using clustering", 2001):
    assignment by largest inner product and centroids scaled to unit length,
    which on unit vectors is k-means on the sphere; "l2" is plain k-means.
Training may use a sample of at most max_points_per_centroid × k points
(faiss's default 256), which is all a centroid's position needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.search import _checks
from workbench_engines.search.exact import FlatIndex


@dataclass(frozen=True)
class KMeansResult:
    """centroids (K, D) float32; assignment (N,) int64 of the training points; objective per iteration
    (mean squared distance for "l2", mean inner product for "ip"); how many empty clusters were re-seeded."""

    centroids: np.ndarray
    assignment: np.ndarray
    objective: list[float]
    reseeded: int


def _update(x: np.ndarray, assignment: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    # one bincount per dimension: far faster than np.add.at's unbuffered scatter
    sums = np.stack([np.bincount(assignment, weights=x[:, j], minlength=k) for j in range(x.shape[1])], axis=1)  # (K, D)
    counts = np.bincount(assignment, minlength=k)  # (K,)
    centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    if metric == "ip":
        centroids = _checks.normalize_rows(centroids)
    return centroids, counts


def kmeans(x: np.ndarray, k: int, *, iterations: int = 25, metric: str = "l2", seed: int = 0,
           max_points_per_centroid: int | None = 256, threads: int | None = None) -> KMeansResult:
    """Lloyd's k-means of x (N, D) float32 into k clusters (see the module docstring)."""
    metric = _checks.metric(metric)
    x = _checks.matrix(x, "x")
    k = _checks.integer(k, "k", low=1)
    iterations = _checks.integer(iterations, "iterations", low=1)
    n_threads = _checks.threads(threads)
    if k > x.shape[0]:
        raise EngineError(f"k-means needs at least k = {k} points, got {x.shape[0]}")
    rng = np.random.default_rng(seed)
    train = x
    if max_points_per_centroid is not None and x.shape[0] > max_points_per_centroid * k:
        train = np.ascontiguousarray(x[np.sort(rng.choice(x.shape[0], max_points_per_centroid * k, replace=False))])
    centroids = np.ascontiguousarray(train[rng.choice(train.shape[0], k, replace=False)])  # (K, D)
    objective, reseeded = [], 0
    for _ in range(iterations):
        nearest = FlatIndex(centroids, metric).search(train, 1, threads=n_threads)
        assignment, value = nearest.ids[:, 0], nearest.values[:, 0]  # (N,), (N,)
        objective.append(float(value.mean()))
        centroids, counts = _update(train, assignment, k, metric)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            worst = np.argsort(value if metric == "ip" else -value, kind="stable")[: len(empty)]
            centroids[empty] = train[worst]
            reseeded += len(empty)
    nearest = FlatIndex(centroids, metric).search(train, 1, threads=n_threads)
    return KMeansResult(centroids=centroids, assignment=nearest.ids[:, 0], objective=objective, reseeded=reseeded)
