"""A BPETokenizer from the vocabulary inside a GGUF model file (llama.cpp's "gpt2" tokenizer model).

A GGUF carries no tokenizer.json; the vocabulary is metadata under llama.cpp's key names:

    tokenizer.ggml.model        "gpt2": byte-level BPE (anything else is refused)
    tokenizer.ggml.pre          the pre-tokeniser by llama.cpp's name: "smollm" or "gpt-2"
    tokenizer.ggml.tokens       token i's text, each byte spelled as GPT-2 prints it ("Ġ" is a space)
    tokenizer.ggml.token_type   1 normal, 3 control (<|im_start|>, ...: our special tokens)
    tokenizer.ggml.merges       "a b" pairs in the order they were learned
    tokenizer.ggml.bos_token_id, eos_token_id, add_bos_token   (optional)

HF and llama.cpp encode with the merges: of the adjacent pairs that are listed merges,
the one listed first is joined first. Our encoders (bpe_reference.py, wb_bpe.c) are
tiktoken's: of the adjacent pairs whose concatenation is a token, the one with the
lowest id is joined first, and a piece that is itself a token is taken whole. What
SmolLM2-135M-Instruct's vocabulary holds, and how each difference is dealt with:

- Ids follow merge order: merge k creates token 252 + k (ids 0-16 are control tokens,
  17-251 single bytes). Every merge joins two tokens into a token, and no token is made
  by two merges, so "first merge" and "lowest id" pick the same pair. Checked on load;
  a file where it fails is refused, naming the merge.
- Every token longer than a byte comes from a merge. A token no merge makes could be
  joined by id but never by merges; such a file is refused, naming the token.
- 58,541 (token, split) pairs join a token from two tokens other than its merge (" the"
  from " " and "the", not " t" and "he"). Joining by id would take such a pair where the
  merges would not, but merge-based encoding never leaves one side by side in what we
  checked: every piece of the plays, every token's split with random neighbours
  (290,000 strings) and 300,000 random runs of 2-4 tokens encode identically.
- HF builds this BPE with ignore_merges=False (the merges decide even when the whole
  piece is a token); we take such a piece whole. The same, because every token's own
  text merges back to that token (tests/test_gguf_tokenizer.py checks all 49,135).
- 21 of the 256 bytes have no token: 0xC0, 0xC1 and 0xF5-0xFF (never in UTF-8), 0xF1
  and 0xF2 (lead bytes of planes 4-11, where nothing is assigned) and six control
  characters (0x04, 0x06, 0x13, 0x14, 0x16, 0x1D). HF's BPE here has no unknown token:
  it leaves such a byte out of its piece and merges what remains across the gap
  (" \\x04\\u0600" gives the tokens of " \\u0600"), so decoding loses those bytes. (llama.cpp,
  as we read its code, drops the byte after merging instead, so there the neighbours
  stay apart.) :class:`GGUFTokenizer` does what HF does: text holding such a byte is
  split as usual, the bytes are taken out of each piece, and the pieces are merged by
  the Python reference on either backend (the C encoder splits and merges in one pass).
  Both encoders still need a rank for every byte, so a missing byte gets a placeholder
  id past the vocabulary, which no encoding returns.

    >>> tok = load_gguf_tokenizer(gguf_file.bundled_model_path())
    >>> tok.encode("<|im_start|>user\\nHi 42", allowed_special="all")
    [1, 4093, 198, 26843, 216, 36, 34]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench_engines import gguf_file
from workbench_engines.backends import resolve
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.bpe import BPETokenizer, SpecialSet, to_utf8
from workbench_engines.tokenizers.bpe_reference import bpe_merge
from workbench_engines.tokenizers.formats import bytes_to_unicode
from workbench_engines.tokenizers.pretokenize import split_bytes_native

if TYPE_CHECKING:
    from gguf import GGUFReader

PRE_TOKENIZERS = {"smollm": "smollm", "gpt-2": "gpt2"}
"""llama.cpp's pre-tokeniser names (tokenizer.ggml.pre) -> our pattern names."""
NORMAL, CONTROL = 1, 3
"""tokenizer.ggml.token_type values (llama.cpp's LLAMA_TOKEN_TYPE_*) this loader takes."""
@dataclass(kw_only=True, repr=False)  # BPETokenizer's short repr, not the vocabulary
class GGUFTokenizer(BPETokenizer):
    """A BPETokenizer over a GGUF vocabulary, whose missing bytes encode to nothing (see the module).

    Ids at or past ``model_vocab`` are placeholders for bytes without a token: no
    encoding returns them and they do not decode.
    """

    model_vocab: int
    """The number of ids the model knows (the file's token count)."""
    bos_id: int | None = None
    """The id that starts a text, where the file names one (<|im_start|> for SmolLM2)."""
    eos_id: int | None = None
    """The id that ends a turn or a text (<|im_end|> for SmolLM2-Instruct)."""
    add_bos: bool = False
    """Whether the model expects bos_id before every text (tokenizer.ggml.add_bos_token)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # Placeholders sit at the end of the id space; cut off, they are unknown ids.
        del self._decoder[self.model_vocab :]
        self._missing = bytes(b for b in range(256) if self.ranks[bytes([b])] >= self.model_vocab)
        self._gaps = re.compile(b"[%s]" % re.escape(self._missing)) if self._missing else None

    @property
    def n_ordinary(self) -> int:
        return len(self.ranks) - len(self._missing)

    def _has_gaps(self, text: str) -> bool:
        return self._gaps is not None and self._gaps.search(to_utf8(text)) is not None

    def _ordinary(self, text: str) -> list[int]:
        if not self._has_gaps(text):
            return super()._ordinary(text)
        data = to_utf8(text)
        if self.backend == "native":
            pieces = split_bytes_native(data, self.pattern)
        else:
            pieces = [to_utf8(piece) for piece in self.pieces(data.decode("utf-8"))]
        kept = (piece.translate(None, self._missing) for piece in pieces)
        return [i for piece in kept if piece for i in bpe_merge(piece, self.ranks)]

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        threads: int | None = None,
        allowed_special: SpecialSet = frozenset(),
        disallowed_special: SpecialSet = "all",
    ) -> list[list[int]]:
        if any(self._has_gaps(text) for text in texts):
            return [self.encode(t, allowed_special=allowed_special, disallowed_special=disallowed_special) for t in texts]
        return super().encode_batch(texts, threads=threads, allowed_special=allowed_special,
                                    disallowed_special=disallowed_special)

    def with_backend(self, backend: str) -> GGUFTokenizer:
        return replace(self, backend=backend)


def load_gguf_tokenizer(source: str | Path | GGUFReader, backend: str = "auto") -> GGUFTokenizer:
    """The byte-level BPE tokenizer a GGUF file describes, token-identical to HF's.

    Args:
        source: the path of a .gguf file, or a ``gguf.GGUFReader`` already open on one
            (opening reads every tensor's header: about 2 s for SmolLM2).
        backend: "native", "reference" or "auto" (native where the C build loaded).

    Raises:
        EngineError: the file is not a GGUF, its tokenizer is not byte-level BPE, its
            pre-tokeniser is unknown, a metadata key is missing, or its merges do not
            follow its ids (the message names the value, key or merge).
    """
    reader = open_gguf(source)
    where = _where(reader)
    model = _field(reader, "tokenizer.ggml.model", where)
    if model != "gpt2":
        raise EngineError(f"{where}: tokenizer.ggml.model is {model!r}; only byte-level BPE ('gpt2') is supported")
    pre = _field(reader, "tokenizer.ggml.pre", where)
    if pre not in PRE_TOKENIZERS:
        raise EngineError(
            f"{where}: unknown pre-tokeniser tokenizer.ggml.pre = {pre!r} (known: {', '.join(PRE_TOKENIZERS)})"
        )
    tokens = _field(reader, "tokenizer.ggml.tokens", where)
    types = _field(reader, "tokenizer.ggml.token_type", where)
    merges = _field(reader, "tokenizer.ggml.merges", where)
    if len(types) != len(tokens):
        raise EngineError(f"{where}: {len(tokens)} tokens but {len(types)} token types")

    ranks, specials = _vocabulary(tokens, types, where)
    _check_merges(tokens, types, merges, where)
    for k, byte in enumerate(b for b in range(256) if bytes([b]) not in ranks):
        ranks[bytes([byte])] = len(tokens) + k
    return GGUFTokenizer(
        Path(where).name.split(".")[0],
        ranks,
        PRE_TOKENIZERS[pre],
        specials,
        resolve(backend).name,
        model_vocab=len(tokens),
        bos_id=_field(reader, "tokenizer.ggml.bos_token_id", where, default=None),
        eos_id=_field(reader, "tokenizer.ggml.eos_token_id", where, default=None),
        add_bos=bool(_field(reader, "tokenizer.ggml.add_bos_token", where, default=False)),
    )


def read_chat_template(source: str | Path | GGUFReader) -> str:
    """The Jinja chat template a GGUF file carries (tokenizer.chat_template)."""
    reader = open_gguf(source)
    where = _where(reader)
    return _field(reader, "tokenizer.chat_template", where)


def special_token_texts(source: str | Path | GGUFReader) -> dict[str, str]:
    """bos_token, eos_token, unk_token and pad_token as text, for a chat template to use."""
    reader = open_gguf(source)
    where = _where(reader)
    tokens = _field(reader, "tokenizer.ggml.tokens", where)
    texts = {}
    for name, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        token_id = _field(reader, f"tokenizer.ggml.{key}_token_id", where, default=None)
        if token_id is not None and 0 <= token_id < len(tokens):
            texts[f"{name}_token"] = tokens[token_id]
    return texts


def open_gguf(source: str | Path | GGUFReader) -> GGUFReader:
    """A reader on a GGUF file (a reader given is returned as it is); GGUFError when it is not one."""
    from gguf import GGUFReader

    return source if isinstance(source, GGUFReader) else gguf_file.open_gguf(source)


def _where(reader: GGUFReader) -> str:
    return str(getattr(reader.data, "filename", None) or "GGUF")


_MISSING = object()


def _field(reader: GGUFReader, key: str, where: str, default: Any = _MISSING) -> Any:
    field = reader.fields.get(key)
    if field is None:
        if default is _MISSING:
            raise EngineError(f"{where}: the GGUF metadata has no {key}")
        return default
    return field.contents()


def _vocabulary(tokens: list[str], types: list[int], where: str) -> tuple[dict[bytes, int], dict[str, int]]:
    """{token bytes: id} of the normal tokens, and {text: id} of the control (special) ones."""
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    ranks: dict[bytes, int] = {}
    specials: dict[str, int] = {}
    for token_id, (token, kind) in enumerate(zip(tokens, types)):
        if kind == CONTROL:
            specials[token] = token_id
        elif kind == NORMAL:
            try:
                data = bytes(byte_of[c] for c in token)
            except KeyError as exc:
                raise EngineError(f"{where}: token {token_id} ({token!r}) is not spelled in GPT-2's byte alphabet "
                                  f"({exc.args[0]!r} stands for no byte)") from exc
            if data in ranks:
                raise EngineError(f"{where}: tokens {ranks[data]} and {token_id} are both {token!r}")
            ranks[data] = token_id
        else:
            raise EngineError(f"{where}: token {token_id} ({token!r}) has token type {kind}; "
                              f"only normal ({NORMAL}) and control ({CONTROL}) tokens are supported")
    return ranks, specials


def _check_merges(tokens: list[str], types: list[int], merges: list[str], where: str) -> None:
    """Refuse merges under which joining by id would differ from joining by merge order."""
    ids = {token: i for i, (token, kind) in enumerate(zip(tokens, types)) if kind == NORMAL}
    previous = -1
    made = set()
    for number, merge in enumerate(merges):
        left, _, right = merge.partition(" ")
        joined = ids.get(left + right)
        if left not in ids or right not in ids or joined is None:
            raise EngineError(f"{where}: merge {number} ({merge!r}) does not join two tokens into a token")
        if joined <= previous:
            raise EngineError(f"{where}: merge {number} ({merge!r}) makes token {joined}, not above the "
                              f"{previous} of the merge before; ids must follow merge order")
        previous = joined
        made.add(joined)
    for token, token_id in ids.items():
        if len(token) > 1 and token_id not in made:
            raise EngineError(f"{where}: token {token_id} ({token!r}) is made by no merge; "
                              "joining by id could produce it where HF's merges never do")
