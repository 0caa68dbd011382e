"""Exercise: WordPiece's greedy longest-match-first.

Track: Tokenization · lesson: wordpiece

Split one (already normalised) word into pieces from vocab: take the longest
prefix in vocab, then from where it ended the longest "##"-prefixed
continuation, and so on. If some position cannot be matched, or the word is
longer than max_chars characters, return [unk] alone.
wordpiece("unaffable", {"un", "##aff", "##able", ...}) == ["un", "##aff", "##able"].
"""


def wordpiece(word: str, vocab: set[str], unk: str = "[UNK]", max_chars: int = 100) -> list[str]:
    return ...  # your code here
