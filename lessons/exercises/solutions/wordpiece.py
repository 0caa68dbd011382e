"""Reference: greedy longest-match-first WordPiece on one word."""


def wordpiece(word: str, vocab: set[str], unk: str = "[UNK]", max_chars: int = 100) -> list[str]:
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            candidate = word[start:end] if start == 0 else "##" + word[start:end]
            if candidate in vocab:
                pieces.append(candidate)
                start = end
                break
        else:
            return [unk]
    return pieces
