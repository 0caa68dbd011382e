"""A small decoder-only GPT in torch: RoPE, RMSNorm, SwiGLU, optional grouped-query attention.

The Llama recipe (Touvron et al., 2023) at a size a laptop CPU trains in
minutes: pre-norm blocks (Xiong et al., 2020) with RMSNorm (Zhang & Sennrich,
2019), rotary positions (RoPE, Su et al., 2021), a SwiGLU feed-forward
(Shazeer, 2020) and grouped-query attention (GQA, Ainslie et al., 2023).
``forward(ids, cache)`` runs with or without a KV cache
(``workbench_engines.kvcache``): with one, only the new tokens are computed and
their keys and values are appended.

Shapes use the project's letters: B batch, T time (the new tokens), C channels
(``d_model``), NH query heads, HS head size (``head_dim``), V vocab; plus KVH,
the key/value heads (``kv_heads``, NH / KVH query heads share each), and
``past``, the tokens already in the cache.

Example::

    >>> model = GPT(GPTConfig(vocab_size=256, d_model=64, n_heads=4, n_kv_heads=2))
    >>> model(torch.zeros(2, 10, dtype=torch.long)).shape   # ids (B, T) -> logits (B, T, V)
    torch.Size([2, 10, 256])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from workbench_engines.errors import EngineError
from workbench_engines.models.layers import RMSNorm, SwiGLU, apply_rope, rope_tables


class ContextTooLong(EngineError, ValueError):
    """More tokens than the model's context window (past + T > context): RoPE has no angles beyond it."""


@dataclass(frozen=True)
class GPTConfig:
    """A GPT's shape: every size the model, its RoPE tables and a KV cache are built from.

    Frozen and checked on construction, so a bad size fails here rather than
    as a reshape error deep in a forward pass.

    Raises:
        EngineError: a size is not positive, d_model does not split into
            n_heads heads of even size, or n_heads is not a multiple of KVH.
    """

    vocab_size: int
    """V: rows of the embedding, which is also the output projection."""
    context: int = 512
    """The most positions one sequence may hold, cached ones included."""
    d_model: int = 128
    """C: the width of the residual stream."""
    n_layers: int = 4
    n_heads: int = 4
    """NH: query heads."""
    n_kv_heads: int | None = None
    """Key/value heads (GQA); None means one per query head."""
    d_ff: int | None = None
    """SwiGLU hidden width; None means 8/3·d_model rounded up to a multiple of 32."""
    rope_base: float = 10000.0
    """RoPE's base in θ_i = base^(−2i/HS)."""
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise EngineError(f"GPTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise EngineError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.head_dim % 2:
            raise EngineError(f"RoPE needs an even head dimension, got {self.head_dim}")
        if self.n_heads % self.kv_heads:
            raise EngineError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.kv_heads}")

    @property
    def head_dim(self) -> int:
        """HS = C / NH."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """KVH: n_kv_heads, or NH when unset (plain multi-head attention); 1 is multi-query (Shazeer, 2019)."""
        return self.n_kv_heads or self.n_heads

    @property
    def hidden(self) -> int:
        """The SwiGLU width: d_ff, or 8/3·C rounded up to a multiple of 32 (a 4·C MLP's parameters in 3 matrices)."""
        return self.d_ff or 32 * math.ceil(8 * self.d_model / 3 / 32)

    def kv_bytes_per_token(self, bytes_per_value: int = 4) -> int:
        """Bytes of K and V one token adds to the cache: 2 · layers · kv_heads · head_dim · bytes."""
        return 2 * self.n_layers * self.kv_heads * self.head_dim * bytes_per_value

    def as_dict(self) -> dict:
        """The fields as a plain dict: what checkpoints and shipped weights store, and ``GPTConfig(**d)`` reads."""
        return asdict(self)


class Cache(Protocol):
    """What the model needs of a KV cache; workbench_engines.kvcache has the implementations."""

    length: int
    """Tokens already stored per sequence."""

    def reserve(self, new: int, ids: torch.Tensor | None = None) -> None:
        """Make room for ``new`` more tokens per sequence, whose ids are ``ids`` (B, new) (raises when full)."""

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, KVH, new, HS) at positions length..; return all keys and values so far.

        Returns:
            (keys, values), each (B, KVH, length + new, HS).
        """

    def commit(self, new: int) -> None:
        """The forward pass is done: the ``new`` tokens now count as stored."""

    def fused_decode(self, batch: int, new: int) -> bool:
        """Whether this pass's attention is the cache's own decode_step(layer, q, k, v, scale)."""


class Attention(nn.Module):
    """Causal self-attention, softmax(Q Kᵀ / √HS) V (Vaswani et al., 2017, eq. 1), with RoPE and GQA.

    Keys and values have KVH heads, queries NH; each key/value head serves
    NH / KVH query heads (Ainslie et al., 2023), which shrinks the KV cache by
    that factor. No biases, as in Llama.

    Args:
        config: Supplies C, NH, KVH and HS.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        d, h, kv = config.d_model, config.n_heads, config.kv_heads
        self.q = nn.Linear(d, h * config.head_dim, bias=False)
        self.kv = nn.Linear(d, 2 * kv * config.head_dim, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layer: int,
                cache: Cache | None) -> torch.Tensor:
        """Attend from the T new tokens to themselves and to every cached one before them.

        Args:
            x: (B, T, C) float, the normed residual stream.
            cos: (T, HS/2) float32, RoPE angles for positions past..past+T-1.
            sin: (T, HS/2) float32, likewise.
            layer: This block's index, the slot it uses in the cache.
            cache: None, or the KV cache to read from and append to.

        Returns:
            (B, T, C), x's dtype: what the block adds to the residual stream.
        """
        c = self.config
        b, t, _ = x.shape  # (B, T, C)
        q = self.q(x).view(b, t, c.n_heads, c.head_dim).transpose(1, 2)  # (B, NH, T, HS)
        k, v = self.kv(x).view(b, t, 2, c.kv_heads, c.head_dim).permute(2, 0, 3, 1, 4)  # (B, KVH, T, HS) each
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache.length
            if cache.fused_decode(b, t):
                # A paged cache that stores k, v and attends over its blocks in place (engines/kvcache/native.py).
                y = cache.decode_step(layer, q, k, v, 1.0 / math.sqrt(c.head_dim))  # (B, NH, T, HS)
                return self.out(y.transpose(1, 2).reshape(b, t, c.d_model))
            k, v = cache.update(layer, k, v)  # (B, KVH, past + T, HS) each
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1, enable_gqa=c.kv_heads != c.n_heads)
        else:
            # Queries sit at positions past..past+t-1 and see every key up to their own: mask (T, past + T).
            mask = None
            if t > 1:
                mask = torch.arange(past + t, device=x.device)[None, :] <= torch.arange(past, past + t, device=x.device)[:, None]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=c.kv_heads != c.n_heads)
        # y (B, NH, T, HS) -> heads side by side (B, T, C) -> out projection
        return self.out(y.transpose(1, 2).reshape(b, t, c.d_model))


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + ffn(norm(x)).

    Pre-LN (Xiong et al., 2020) leaves the residual stream itself unnormalised,
    so gradients reach early layers undamped and training needs little warm-up.

    Args:
        config: The model's sizes.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config)
        self.ffn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.ffn = SwiGLU(config.d_model, config.hidden)

    def forward(self, x, cos, sin, layer: int, cache: Cache | None) -> torch.Tensor:
        """One block on the residual stream.

        Args:
            x: (B, T, C) float, the residual stream.
            cos: (T, HS/2) float32, RoPE angles (see ``Attention.forward``).
            sin: (T, HS/2) float32.
            layer: This block's index in the cache.
            cache: None, or the KV cache.

        Returns:
            (B, T, C), x's dtype.
        """
        x = x + self.attn(self.attn_norm(x), cos, sin, layer, cache)  # (B, T, C)
        return x + self.ffn(self.ffn_norm(x))


class GPT(nn.Module):
    """Token embedding → n pre-norm blocks → RMSNorm → tied output projection.

    The output projection reuses the embedding matrix (weight tying, Press &
    Wolf, 2017): one V × C table instead of two. Weights start at N(0, 0.02²),
    as GPT-2's code does; the projections into the residual stream are scaled
    by a further 1/√(2·n_layers), GPT-2's 1/√N for N residual layers
    (Radford et al., 2019).

    Args:
        config: The model's sizes.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        cos, sin = rope_tables(config.head_dim, config.context, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        # GPT-2's scaled init of the projections that write into the residual stream.
        for block in self.blocks:
            for proj in (block.attn.out, block.ffn.down):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        """N(0, 0.02²) for every linear and embedding weight."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def parameter_count(self) -> int:
        """All parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, ids: torch.Tensor, cache: Cache | None = None, last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, V) for ids (B, T); with a cache, ids are the tokens after those stored.

        Args:
            ids: (B, T) int64 token ids.
            cache: None for a plain pass; with a cache, its ``length`` tokens
                (past) are attended to and these T are appended.
            last_only: Score only the last position, (B, 1, V): all that
                generating the next token reads. The output projection is the
                largest matrix of a small model, and a prompt's other
                positions would pay for it for nothing.

        Returns:
            (B, T, V) logits, float32 (bfloat16 under autocast): position t
            scores the token that follows ids[:, t]. (B, 1, V) with last_only.

        Raises:
            EngineError: ids is not 2-D.
            ContextTooLong: past + T exceeds the context.
        """
        return self.unembed(self.features(ids, cache, last_only))  # (B, T, V)

    def features(self, ids: torch.Tensor, cache: Cache | None = None, last_only: bool = False) -> torch.Tensor:
        """The final normed residual stream (B, T, C) that ``forward`` scores against the embedding; the
        arguments, cache handling and errors are forward's."""
        if ids.ndim != 2:
            raise EngineError(f"ids must be [batch, tokens], got shape {tuple(ids.shape)}")
        t = ids.shape[1]
        past = cache.length if cache is not None else 0
        if past + t > self.config.context:
            raise ContextTooLong(
                f"{past + t} tokens do not fit the model's context of {self.config.context}"
            )
        if cache is not None:
            cache.reserve(t, ids)
        cos, sin = self.rope_cos[past : past + t], self.rope_sin[past : past + t]  # (T, HS/2) each
        x = self.embed(ids)  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, cos, sin, layer, cache)  # (B, T, C)
        if cache is not None:
            cache.commit(t)
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        return self.norm(x)  # (B, T, C)

    def unembed(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) of the normed residual stream x (B, T, C): the tied output projection x Eᵀ."""
        return F.linear(x, self.embed.weight)
