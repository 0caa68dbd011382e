"""Recall@k against exact search, and queries per second (median of repeats)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.search import _checks


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int | None = None) -> float:
    """Mean over queries of |found[:, :k] ∩ truth[:, :k]| / k: the share of the true k nearest that were found.

    found, truth: (Q, ≥k) integer ids (an approximate index's -1 padding never matches). k defaults to
    truth's width.
    """
    found, truth = np.asarray(found), np.asarray(truth)
    if found.ndim != 2 or truth.ndim != 2 or found.shape[0] != truth.shape[0]:
        raise EngineError(f"found and truth must be (Q, k) id arrays with the same Q, got {found.shape} and {truth.shape}")
    if not (np.issubdtype(found.dtype, np.integer) and np.issubdtype(truth.dtype, np.integer)):
        raise EngineError(f"ids must be integers, got {found.dtype} and {truth.dtype}")
    k = truth.shape[1] if k is None else _checks.integer(k, "k", low=1)
    if k < 1 or k > min(found.shape[1], truth.shape[1]) or found.shape[0] == 0:
        raise EngineError(f"recall@{k} needs at least one query and k ids per row, got {found.shape} and {truth.shape}")
    f, t = found[:, :k], truth[:, :k]
    hits = (f[:, :, None] == t[:, None, :]) & (t[:, None, :] >= 0)  # (Q, k, k)
    return float(hits.any(axis=2).sum() / t.size)


def queries_per_second(search: Callable[[np.ndarray], object], queries: np.ndarray, repeats: int = 5,
                       warmup: int = 1) -> tuple[float, object]:
    """(queries/s from the median of ``repeats`` timed calls of search(queries), the last call's result).

    One warm-up call first (page faults, caches); the median, not the mean, so one call delayed by
    another process on a shared machine does not move the figure.
    """
    repeats = _checks.integer(repeats, "repeats", low=1)
    warmup = _checks.integer(warmup, "warmup", low=0)
    if len(queries) == 0:
        raise EngineError("no queries to time")
    result = None
    for _ in range(warmup):
        result = search(queries)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = search(queries)
        times.append(time.perf_counter() - start)
    return len(queries) / float(np.median(times)), result
