"""Reference: adjacent pair counts weighted by word counts."""

from collections import Counter


def count_pairs(words: list[list[int]], counts: list[int]) -> dict[tuple[int, int], int]:
    stats: Counter[tuple[int, int]] = Counter()
    for symbols, count in zip(words, counts):
        for pair in zip(symbols, symbols[1:]):
            stats[pair] += count
    return dict(stats)
