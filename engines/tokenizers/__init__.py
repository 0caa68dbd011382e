"""Tokenizers: byte-level BPE (encode, train, load), WordPiece, Unigram, and peers.

Entry points other code relies on:

- :func:`load` (``"cl100k_base"``, or the path of a saved tokenizer) returns an
  object with ``encode``, ``encode_batch``, ``decode``, ``decode_bytes`` and
  ``vocab_size``;
- :func:`train_bpe` learns a byte-level BPE vocabulary from text or a file;
- :func:`load_gguf_tokenizer` reads the vocabulary inside a GGUF model file, and
  :func:`render_chat` / :func:`render_gguf_chat` render a model's chat template.
"""

from __future__ import annotations

from pathlib import Path

from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.bpe import BPETokenizer, SpecialTokenError
from workbench_engines.tokenizers.bpe_train import TrainResult, train_bpe
from workbench_engines.tokenizers.chat import ChatTemplateError, render_chat, render_gguf_chat
from workbench_engines.tokenizers.formats import (
    VocabFileError,
    load_cl100k,
    load_hf_bpe,
    load_saved,
    load_tiktoken_file,
    save,
)
from workbench_engines.tokenizers.gguf_vocab import GGUFTokenizer, load_gguf_tokenizer

__all__ = [
    "BPETokenizer",
    "ChatTemplateError",
    "GGUFTokenizer",
    "SpecialTokenError",
    "TrainResult",
    "VocabFileError",
    "load",
    "load_gguf_tokenizer",
    "load_hf_bpe",
    "load_tiktoken_file",
    "render_chat",
    "render_gguf_chat",
    "save",
    "train_bpe",
]


def load(name: str | Path, *, backend: str = "native") -> BPETokenizer:
    """A byte-level BPE tokenizer by name (``cl100k_base``) or saved-file path."""
    if str(name) in ("cl100k_base", "cl100k"):
        return load_cl100k(backend)
    path = Path(name)
    if path.suffix == ".json":
        return load_hf_bpe(path, backend)
    if path.exists():
        return load_saved(path, backend)
    raise EngineError(f"unknown tokenizer {str(name)!r}: give cl100k_base or the path of a saved tokenizer")
