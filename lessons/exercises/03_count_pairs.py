"""Exercise: count adjacent pairs, the first step of BPE training.

Track: Tokenization · lesson: bpe-from-scratch

Given words as lists of symbol ids with how often each word occurs, return a
dict mapping each adjacent pair (a, b) to its total count, weighted by the
word counts. count_pairs([[1, 2, 3], [2, 3]], [5, 2]) == {(1, 2): 5, (2, 3): 7}.
"""


def count_pairs(words: list[list[int]], counts: list[int]) -> dict[tuple[int, int], int]:
    return ...  # your code here
