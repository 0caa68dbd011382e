"""Exercise: encode one piece with a ranked BPE vocabulary.

Track: Tokenization · lesson: bpe-from-scratch

ranks maps byte strings to ranks (single bytes are always present). Start
from the piece's single bytes; repeatedly merge the adjacent pair whose
concatenation has the lowest rank, the leftmost one on a tie, until no
adjacent concatenation is in ranks. Return the ranks of the final parts.
This is tiktoken's algorithm: on cl100k_base your output must equal it.
"""


def bpe_encode(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    return ...  # your code here
