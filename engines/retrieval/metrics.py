"""Ranking metrics for retrieval: recall@k, reciprocal rank (MRR) and nDCG@k.

Each per-query function takes ``ranked`` (document ids, best first) and
``relevant`` (a set of ids, or a mapping id → graded gain for nDCG).
:func:`evaluate` averages them over queries. A query with no relevant document
is an error: every metric here would be undefined (0/0) for it.

nDCG (Järvelin & Kekäläinen, 2002, "Cumulated gain-based evaluation of IR
techniques") in the form most evaluations now use (the paper itself leaves the
first b ranks undiscounted and divides by log_b(i) after them):

    DCG@k  = sum over ranks i = 1..k of gain(doc_i) / log2(i + 1)
    nDCG@k = DCG@k / IDCG@k,  IDCG@k = DCG@k of the ideal order (gains sorted descending)

A document listed twice earns its gain at its first rank only (nDCG stays ≤ 1).

With one relevant document at rank r ≤ k, nDCG@k = 1 / log2(r + 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from workbench_engines.errors import EngineError


def _check(ranked: Sequence, relevant, k: int | None) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
        raise EngineError(f"k must be an int ≥ 1, got {k!r}")
    if not relevant:
        raise EngineError("a query needs at least one relevant document (the metric is 0/0 otherwise)")


def _ids(ranked: Iterable) -> list:
    return [int(r) if hasattr(r, "__index__") else r for r in ranked]


def recall_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """Fraction of the relevant documents found in the first ``k`` of ``ranked``."""
    relevant = set(relevant)
    _check(ranked, relevant, k)
    return len(relevant.intersection(_ids(ranked)[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence, relevant: Iterable, k: int | None = None) -> float:
    """1 / rank of the first relevant document (ranks from 1), 0 if none in the first ``k`` (all if None)."""
    relevant = set(relevant)
    _check(ranked, relevant, k)
    for i, doc in enumerate(_ids(ranked)[:k] if k else _ids(ranked)):
        if doc in relevant:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at_k(ranked: Sequence, relevant: Iterable | Mapping, k: int) -> float:
    """nDCG@k (formula in the module docstring); a set means gain 1 for each relevant id."""
    gains = {d: float(g) for d, g in relevant.items()} if isinstance(relevant, Mapping) else dict.fromkeys(relevant, 1.0)
    _check(ranked, gains, k)
    if any(g < 0 for g in gains.values()):
        raise EngineError("nDCG gains must be ≥ 0")
    first = {}
    for i, doc in enumerate(_ids(ranked)[:k]):
        first.setdefault(doc, i)
    dcg = sum(gains.get(doc, 0.0) / math.log2(i + 2) for doc, i in first.items())
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        raise EngineError("nDCG needs at least one positive gain")
    return dcg / idcg


def evaluate(ranked_lists: Sequence[Sequence], relevant: Sequence, ks: Iterable[int] = (1, 10)) -> dict[str, float]:
    """Mean recall@k and nDCG@k for each k, and MRR (uncut), over queries.

    Returns keys ``recall@k``, ``ndcg@k`` for each k and ``mrr``.
    """
    if len(ranked_lists) != len(relevant):
        raise EngineError(f"{len(ranked_lists)} ranked lists but {len(relevant)} relevance sets")
    if not ranked_lists:
        raise EngineError("no queries to evaluate")
    n = len(ranked_lists)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = sum(recall_at_k(r, g, k) for r, g in zip(ranked_lists, relevant)) / n
        out[f"ndcg@{k}"] = sum(ndcg_at_k(r, g, k) for r, g in zip(ranked_lists, relevant)) / n
    out["mrr"] = sum(reciprocal_rank(r, g) for r, g in zip(ranked_lists, relevant)) / n
    return out
