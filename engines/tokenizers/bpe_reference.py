"""Byte-level BPE encoding in plain Python: the algorithm the lesson explains.

A piece's bytes start as single-byte tokens; then, over and over, the
adjacent pair whose concatenation has the lowest rank (was learned earliest)
is merged, the leftmost one on a tie, until no adjacent concatenation is in
the vocabulary. This is tiktoken's rank-based BPE; native/src/wb_bpe.c does
the same, faster.
"""

from __future__ import annotations


def bpe_merge(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """Token ids (ranks) of one pre-tokenised piece."""
    if piece in ranks:
        return [ranks[piece]]
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
