"""Reciprocal-rank fusion (Cormack, Clarke & Büttcher, 2009, "Reciprocal rank fusion outperforms
Condorcet and individual rank learning methods"):

    RRF(d) = sum over rankings r that hold d of 1 / (k + rank_r(d)),   ranks from 1, k = 60

Only ranks matter, never scores, so a BM25 list and a dense list fuse without
calibrating one against the other. Ties in the fused score go to the document
ranked best in any list, then to the earlier list, so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from workbench_engines.errors import EngineError

RRF_K = 60
"""Cormack et al.'s constant: it damps the weight of the very top ranks."""


@dataclass(frozen=True)
class Fused:
    """A fused ranking, best first."""

    doc_ids: list
    scores: list[float]


def rrf(rankings: Sequence[Sequence[Hashable]], k: float = RRF_K, limit: int | None = None) -> Fused:
    """Fuse ``rankings`` (each a list of document ids, best first) by reciprocal rank.

    A document repeated within one ranking counts at its first (best) rank.
    ``limit`` keeps only the first ``limit`` fused documents.
    """
    if isinstance(rankings, (str, bytes)) or not isinstance(rankings, Sequence):
        raise EngineError("rrf needs a list of rankings (each a list of document ids)")
    if not (k >= 0):
        raise EngineError(f"the RRF constant k must be ≥ 0, got {k}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise EngineError(f"limit must be an int ≥ 1, got {limit!r}")
    score: dict = {}
    best: dict = {}  # doc -> (best rank, list index) for tie-breaking
    for li, ranking in enumerate(rankings):
        seen = set()
        for rank, doc in enumerate(ranking, start=1):
            doc = int(doc) if hasattr(doc, "__index__") else doc
            if doc in seen:
                continue
            seen.add(doc)
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + rank)
            best[doc] = min(best.get(doc, (rank, li)), (rank, li))
    order = sorted(score, key=lambda d: (-score[d], best[d]))
    if limit is not None:
        order = order[:limit]
    return Fused(order, [score[d] for d in order])
