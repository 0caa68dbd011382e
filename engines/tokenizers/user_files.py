"""A learner's own tokenizer, by path: an HF ``tokenizer.json`` or a tiktoken ``.tiktoken`` rank file.

Each file is shown twice where the workbench can read it: through our own
engine (byte-level BPE by rank, :mod:`workbench_engines.tokenizers.bpe`) and
through the library it was made for (HF tokenizers, or tiktoken with the
pre-tokenisation pattern the learner names, since a rank file carries none).
The two must produce the same ids; a lab says so or shows where they part.
A file our engine cannot read (WordPiece, Unigram, a non-byte-level BPE) is
still shown through its library, with the reason beside it.

Every problem with the file is a :class:`VocabFileError` whose message starts
with ``path:line`` (or ``path:line:column`` for broken JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench_engines.backends import resolve
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers import pretokenize
from workbench_engines.tokenizers.formats import (
    VocabFileError,
    load_hf_bpe,
    read_tiktoken_ranks,
    read_tokenizer_json,
)
from workbench_engines.tokenizers.peers import Token, TokenizerView, bpe_view, label_bytes

RANK_FILE_PATTERNS = ("cl100k", "gpt2")
"""The patterns a rank file can be paired with: single regexes both we and tiktoken run."""


@dataclass(frozen=True)
class UserTokenizer:
    """One file, read: its views (ours first where we could read it) and its pre-tokeniser."""

    path: Path
    kind: str
    """"tokenizer.json" or "tiktoken"."""
    views: list[TokenizerView]
    split: Callable[[str], list[str]]
    """The library's pre-tokenisation of a text: the pieces BPE (or WordPiece) then works inside."""
    split_by: str
    """Who split: HF's pre-tokenizer, or the named pattern."""
    note: str = ""
    """Why our engine is missing from views, when it is."""

    def agreement(self, text: str) -> str | None:
        """Whether ours and the library's give the same ids on text ("same ids" / where they differ); None
        when only the library's view exists."""
        if len(self.views) < 2:
            return None
        ours, theirs = ([t.id for t in view.tokens(text)] for view in self.views[:2])
        if ours == theirs:
            return f"same {len(ours)} ids"
        first = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        return f"DIFFERENT from token {first}: {ours[first:first + 4]} vs {theirs[first:first + 4]}"


def load_user_tokenizer(path: str | Path, pattern: str = "cl100k", backend: str = "auto") -> UserTokenizer:
    """Read a tokenizer.json or .tiktoken file (by its suffix; anything else is tried as tokenizer.json).

    Args:
        path: The file, ``~`` allowed.
        pattern: For a rank file only: the pre-tokenisation it was made with (cl100k or gpt2).
        backend: Our BPE engine's backend: native, reference, or auto (native where it is built).

    Raises:
        VocabFileError: the file is missing, malformed, or its library refuses it (path:line in the message).
    """
    path = Path(path).expanduser()
    backend = resolve(backend).name
    if path.suffix == ".tiktoken":
        return _rank_file(path, pattern, backend)
    return _tokenizer_json(path, backend)


def _rank_file(path: Path, pattern: str, backend: str) -> UserTokenizer:
    import tiktoken

    if pattern not in RANK_FILE_PATTERNS:
        raise VocabFileError(f"{path}: pattern {pattern!r} is not one of {', '.join(RANK_FILE_PATTERNS)}")
    ranks = read_tiktoken_ranks(path)
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise VocabFileError(f"{path}: byte-level BPE needs all 256 single bytes; {len(missing)} are missing "
                             f"(first: {missing[0]:#04x})")
    from workbench_engines.tokenizers.bpe import BPETokenizer

    ours = BPETokenizer(path.stem, ranks, pattern, {}, backend)
    try:
        enc = tiktoken.Encoding(f"{path.stem}-user", pat_str=pretokenize.PATTERNS[pattern], mergeable_ranks=ranks,
                                special_tokens={})
    except Exception as exc:  # noqa: BLE001 - tiktoken's own refusal, reported against the file
        raise VocabFileError(f"{path}: tiktoken refused it ({exc})") from exc

    def theirs(text: str) -> list[Token]:
        return [Token(i, label_bytes(enc.decode_single_token_bytes(i))) for i in enc.encode(text, disallowed_special=())]

    views = [bpe_view(ours, f"{path.name} (workbench)"),
             TokenizerView(f"{path.name} (tiktoken)", "byte-level BPE", enc.n_vocab, theirs, False)]
    return UserTokenizer(path, "tiktoken", views, lambda text: pretokenize.split(text, pattern, backend=backend),
                         f"the {pattern} pattern")


def _tokenizer_json(path: Path, backend: str) -> UserTokenizer:
    from tokenizers import Tokenizer

    spec, text = read_tokenizer_json(path)
    try:
        hf = Tokenizer.from_str(text)
    except Exception as exc:  # noqa: BLE001 - HF's own refusal, reported against the file
        raise VocabFileError(f"{path}: HF tokenizers refused it ({exc})") from exc
    hf.no_padding()
    hf.no_truncation()
    family = {"BPE": "BPE", "WordPiece": "WordPiece", "Unigram": "Unigram", "WordLevel": "word level"}.get(
        (spec.get("model") or {}).get("type"), "unknown model")

    def theirs(text: str) -> list[Token]:
        enc = hf.encode(text, add_special_tokens=False)
        return [Token(i, t) for i, t in zip(enc.ids, enc.tokens)]

    library = TokenizerView(f"{path.name} (HF tokenizers)", family, hf.get_vocab_size(), theirs, False)
    views, note = [library], ""
    try:
        views.insert(0, bpe_view(load_hf_bpe(path, backend), f"{path.name} (workbench)"))
    except EngineError as exc:
        note = f"the workbench reads byte-level BPE only: {exc}"

    def split(text: str) -> list[str]:
        if hf.pre_tokenizer is None:
            return [text] if text else []
        normal = hf.normalizer.normalize_str(text) if hf.normalizer is not None else text
        return [piece for piece, _ in hf.pre_tokenizer.pre_tokenize_str(normal)]

    return UserTokenizer(path, "tokenizer.json", views, split, "HF's pre-tokenizer", note)
