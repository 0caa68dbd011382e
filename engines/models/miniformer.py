"""The mini-former: n transformer blocks whose every design choice is a switch, for ablations.

Norm (LayerNorm or RMSNorm), its placement (pre-LN: x + f(norm(x)), the
GPT-2 / Llama layout; post-LN: norm(x + f(x)), the original Transformer's),
residual connections on or off, the feed-forward (GELU MLP, SwiGLU or a
mixture of experts) and the attention mask (causal, bidirectional, or
prefix-LM: bidirectional over a prefix, causal after it). Positions come
from RoPE. One extra embedding row is the [MASK] token of masked LM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workbench_engines.errors import EngineError
from workbench_engines.models.layers import GELUMLP, LayerNorm, RMSNorm, SwiGLU, apply_rope, rope_tables
from workbench_engines.moe.layer import MoELayer

NORMS = ("layer", "rms")
PLACEMENTS = ("pre", "post")
FFNS = ("gelu", "swiglu", "moe")


@dataclass(frozen=True)
class MiniConfig:
    vocab_size: int
    context: int = 256
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    hidden: int = 256
    norm: str = "rms"
    placement: str = "pre"
    residual: bool = True
    ffn: str = "swiglu"
    n_experts: int = 4
    top_k: int = 1
    capacity_factor: float = 1.25
    router_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.norm not in NORMS or self.placement not in PLACEMENTS or self.ffn not in FFNS:
            raise EngineError(f"norm must be one of {NORMS}, placement one of {PLACEMENTS}, ffn one of {FFNS}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise EngineError(f"d_model {self.d_model} must split into {self.n_heads} heads of even size")
        for name in ("vocab_size", "context", "n_layers", "hidden"):
            if getattr(self, name) < 1:
                raise EngineError(f"MiniConfig.{name} must be positive")

    @property
    def mask_token(self) -> int:
        """The id of [MASK]: one past the vocabulary."""
        return self.vocab_size

    def as_dict(self) -> dict:
        return asdict(self)


def attention_mask(kind: str, length: int, prefix: torch.Tensor | None = None) -> torch.Tensor | None:
    """Boolean [B or 1, 1, L, L] mask (True = may attend), or None for bidirectional attention.

    prefix [B]: prefix-LM's bidirectional prefix length per sequence.
    """
    if kind == "bidirectional":
        return None
    query = torch.arange(length)[:, None]
    key = torch.arange(length)[None, :]
    causal = key <= query
    if kind == "causal":
        return causal[None, None]
    if kind == "prefix":
        if prefix is None:
            raise EngineError("a prefix-LM mask needs the prefix length of each sequence")
        in_prefix = key[None] < prefix[:, None, None]  # [B, 1, L]: every query sees the whole prefix
        return (causal[None] | in_prefix)[:, None]
    raise EngineError(f"unknown attention {kind!r}; choose causal, bidirectional or prefix")


class SelfAttention(nn.Module):
    def __init__(self, config: MiniConfig) -> None:
        super().__init__()
        self.heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, cos, sin, mask) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, config: MiniConfig) -> None:
        super().__init__()
        self.config = config
        norm = LayerNorm if config.norm == "layer" else RMSNorm
        self.norm1, self.norm2 = norm(config.d_model), norm(config.d_model)
        self.attn = SelfAttention(config)
        if config.ffn == "moe":
            self.ffn = MoELayer(config.d_model, config.hidden, config.n_experts, config.top_k, config.capacity_factor,
                                config.router_noise)
        elif config.ffn == "swiglu":
            self.ffn = SwiGLU(config.d_model, config.hidden)
        else:
            self.ffn = GELUMLP(config.d_model, config.hidden)

    def _ffn(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.ffn, MoELayer):
            return self.ffn(x)
        return self.ffn(x), x.new_zeros(())

    def forward(self, x, cos, sin, mask) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        keep = 1.0 if c.residual else 0.0
        if c.placement == "pre":
            x = keep * x + self.attn(self.norm1(x), cos, sin, mask)
            f, aux = self._ffn(self.norm2(x))
            return keep * x + f, aux
        x = self.norm1(keep * x + self.attn(x, cos, sin, mask))
        f, aux = self._ffn(x)
        return self.norm2(keep * x + f), aux


@dataclass
class MiniOutput:
    logits: torch.Tensor
    aux_loss: torch.Tensor
    """Sum of the MoE layers' balancing losses (0 without experts)."""
    hidden: list[torch.Tensor] | None = None
    """The residual stream after the embedding and after each block, when asked for."""


class MiniFormer(nn.Module):
    def __init__(self, config: MiniConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size + 1, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        norm = LayerNorm if config.norm == "layer" else RMSNorm
        # Pre-LN leaves the stream unnormalised, so it needs a final norm; post-LN ends on one.
        self.final_norm = norm(config.d_model) if config.placement == "pre" else nn.Identity()
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        cos, sin = rope_tables(config.d_model // config.n_heads, config.context)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def parameter_count(self, active: bool = False) -> int:
        """All parameters, or those one token uses (top_k of the experts) when active=True."""
        total = sum(p.numel() for p in self.parameters())
        if not active or self.config.ffn != "moe":
            return total
        per_expert = sum(p.numel() for p in self.blocks[0].ffn.experts[0].parameters())
        idle = (self.config.n_experts - self.config.top_k) * per_expert * self.config.n_layers
        return total - idle

    def forward(self, ids: torch.Tensor, attention: str = "causal", prefix: torch.Tensor | None = None,
                keep_hidden: bool = False) -> MiniOutput:
        b, t = ids.shape
        if t > self.config.context:
            raise EngineError(f"{t} tokens do not fit the context of {self.config.context}")
        mask = attention_mask(attention, t, prefix)
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.embed(ids)
        hidden = [x] if keep_hidden else None
        aux = x.new_zeros(())
        for block in self.blocks:
            x, block_aux = block(x, cos, sin, mask)
            aux = aux + block_aux
            if hidden is not None:
                hidden.append(x)
        return MiniOutput(self.head(self.final_norm(x)), aux, hidden)
