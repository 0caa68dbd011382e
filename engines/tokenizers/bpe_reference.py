"""Byte-level BPE encoding in plain Python: the algorithm the lesson explains.

A piece's bytes start as single-byte tokens; then, over and over, the
adjacent pair whose concatenation has the lowest rank (was learned earliest)
is merged, the leftmost one on a tie, until no adjacent concatenation is in
the vocabulary. This is tiktoken's rank-based BPE; native/src/wb_bpe.c does
the same, faster.
"""

from __future__ import annotations

import heapq

# Above this many bytes the scan (quadratic in the piece) gives way to a heap.
SHORT_PIECE = 128


def bpe_merge(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """Token ids (ranks) of one pre-tokenised piece."""
    if piece in ranks:
        return [ranks[piece]]
    if len(piece) > SHORT_PIECE:
        return bpe_merge_long(piece, ranks)
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        # The pair that was merged earliest during training goes first.
        best_rank, best_at = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best_rank is None or rank < best_rank):
                best_rank, best_at = rank, i
        if best_rank is None:
            break
        parts[best_at : best_at + 2] = [parts[best_at] + parts[best_at + 1]]
    return [ranks[part] for part in parts]


def bpe_merge_long(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """bpe_merge in O(n log n) for long pieces (a megabyte of one repeated letter).

    Parts form a linked list keyed by their start byte; a heap holds
    (rank of a part joined with its successor, start). An entry is stale when
    its part was absorbed or has grown since (a grown part spells a longer
    string, so its pair has a different rank).
    """
    n = len(piece)
    following = list(range(1, n + 1))  # following[s]: start of the part after s (n at the end)
    previous = list(range(-1, n - 1))
    alive = [True] * n

    def pair_rank(start: int) -> int | None:
        end = following[start]
        return ranks.get(piece[start : following[end]]) if end < n else None

    heap = [(rank, s) for s in range(n - 1) if (rank := pair_rank(s)) is not None]
    heapq.heapify(heap)
    while heap:
        rank, start = heapq.heappop(heap)
        if not alive[start] or pair_rank(start) != rank:
            continue
        absorbed = following[start]
        alive[absorbed] = False
        following[start] = following[absorbed]
        if following[start] < n:
            previous[following[start]] = start
        for s in (start, previous[start]):
            if s >= 0 and (new_rank := pair_rank(s)) is not None:
                heapq.heappush(heap, (new_rank, s))
    out, start = [], 0
    while start < n:
        out.append(ranks[piece[start : following[start]]])
        start = following[start]
    return out


def bpe_merge_steps(piece: bytes, ranks: dict[bytes, int]) -> list[list[bytes]]:
    """Every state of bpe_merge on piece, from single bytes to the final parts (for labs)."""
    parts = [piece[i : i + 1] for i in range(len(piece))]
    steps = [list(parts)]
    while len(parts) > 1:
        candidates = [
            (ranks[parts[i] + parts[i + 1]], i)
            for i in range(len(parts) - 1)
            if parts[i] + parts[i + 1] in ranks
        ]
        if not candidates:
            break
        _, at = min(candidates)
        parts[at : at + 2] = [parts[at] + parts[at + 1]]
        steps.append(list(parts))
    return steps
