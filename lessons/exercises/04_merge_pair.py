"""Exercise: apply one BPE merge.

Track: Tokenization · lesson: bpe-from-scratch

Return a new list where every occurrence of the adjacent pair (a, b) in
symbols is replaced by new_id, scanning left to right, so overlapping
occurrences merge greedily: merge_pair([7, 7, 7], (7, 7), 9) == [9, 7].
Do not modify the input list.
"""


def merge_pair(symbols: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    return ...  # your code here
