"""The mini-former: n transformer blocks whose every design choice is a switch, for ablations.

Unlike ``gpt.GPT``, which fixes the Llama recipe, every choice here is a
config field: the norm (LayerNorm, Ba et al., 2016, or RMSNorm, Zhang &
Sennrich, 2019), its placement (pre-LN: x + f(norm(x)), the GPT-2 / Llama
layout, Xiong et al., 2020; post-LN: norm(x + f(x)), the original
Transformer's, Vaswani et al., 2017), residual connections on or off (He et
al., 2016), the feed-forward (GELU MLP, SwiGLU or a mixture of experts,
Shazeer et al., 2017; Fedus et al., 2022) and the attention mask (causal,
bidirectional, or prefix-LM: bidirectional over a prefix, causal after it).
Positions come from RoPE (Su et al., 2021). One extra embedding row is the
[MASK] token of masked LM.

Shapes use the project's letters: B batch, T time, C channels (``d_model``),
NH heads, HS head size (C / NH), V vocab (the head's outputs; the embedding
has V + 1 rows), E experts, K top-k.

Example::

    >>> model = MiniFormer(MiniConfig(vocab_size=100, norm="layer", placement="post"))
    >>> model(torch.zeros(2, 8, dtype=torch.long), attention="bidirectional").logits.shape
    torch.Size([2, 8, 100])
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
    """A mini-former's sizes and switches; two configs that differ in one field make an ablation.

    Raises:
        EngineError: a switch has an unknown value, d_model does not split
            into n_heads heads of even size, or a size is not positive.
    """

    vocab_size: int
    """V, not counting the [MASK] row."""
    context: int = 256
    """The longest sequence; also the RoPE table length."""
    d_model: int = 64
    """C: the residual stream width."""
    n_layers: int = 2
    n_heads: int = 4
    """NH."""
    hidden: int = 256
    """The feed-forward width (each expert's, with ffn="moe")."""
    norm: str = "rms"
    """One of NORMS: "layer" or "rms"."""
    placement: str = "pre"
    """One of PLACEMENTS: "pre" (norm inside the residual branch) or "post" (after the sum)."""
    residual: bool = True
    """False drops the skip connections, to show why deep stacks need them."""
    ffn: str = "swiglu"
    """One of FFNS: "gelu", "swiglu" or "moe"."""
    n_experts: int = 4
    """E, with ffn="moe"."""
    top_k: int = 1
    """K: experts each token is routed to."""
    capacity_factor: float = 1.25
    """Slack on each expert's even share: capacity = ceil(factor · tokens · K / E); overflow is dropped
    (Fedus et al., 2022)."""
    router_noise: float = 0.0
    """Std of Gaussian noise on the logits that pick experts, in training only (a fixed-scale form of
    Shazeer et al., 2017's noisy top-k gating)."""

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
        """The fields as a plain dict (``MiniConfig(**d)`` reads it back)."""
        return asdict(self)


def attention_mask(kind: str, length: int, prefix: torch.Tensor | None = None) -> torch.Tensor | None:
    """Boolean (B or 1, 1, T, T) mask (True = may attend), or None for bidirectional attention.

    Args:
        kind: "causal", "bidirectional" or "prefix".
        length: T, the sequence length.
        prefix: (B,) int, prefix-LM's bidirectional prefix length per sequence.

    Returns:
        None for "bidirectional"; (1, 1, T, T) bool for "causal";
        (B, 1, T, T) bool for "prefix". The 1 broadcasts over heads.

    Raises:
        EngineError: an unknown kind, or "prefix" without prefix.
    """
    if kind == "bidirectional":
        return None
    query = torch.arange(length)[:, None]  # (T, 1)
    key = torch.arange(length)[None, :]  # (1, T)
    causal = key <= query  # (T, T)
    if kind == "causal":
        return causal[None, None]
    if kind == "prefix":
        if prefix is None:
            raise EngineError("a prefix-LM mask needs the prefix length of each sequence")
        in_prefix = key[None] < prefix[:, None, None]  # (B, 1, T): every query sees the whole prefix
        return (causal[None] | in_prefix)[:, None]
    raise EngineError(f"unknown attention {kind!r}; choose causal, bidirectional or prefix")


class SelfAttention(nn.Module):
    """Multi-head attention, softmax(Q Kᵀ / √HS + mask) V (Vaswani et al., 2017, eq. 1), with RoPE.

    One fused projection makes Q, K and V; no biases.

    Args:
        config: Supplies C and NH.
    """

    def __init__(self, config: MiniConfig) -> None:
        super().__init__()
        self.heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, cos, sin, mask) -> torch.Tensor:
        """Attend across the sequence under ``mask``.

        Args:
            x: (B, T, C) float.
            cos: (T, HS/2) float32, RoPE angles.
            sin: (T, HS/2) float32.
            mask: None (all pairs) or bool (B or 1, 1, T, T), from ``attention_mask``.

        Returns:
            (B, T, C), x's dtype.
        """
        b, t, d = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, NH, T, HS) each
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, NH, T, HS)
        return self.out(y.transpose(1, 2).reshape(b, t, d))  # (B, T, C)


class Block(nn.Module):
    """One attention + feed-forward block, laid out as the config's switches say.

    Args:
        config: The sizes and switches (norm, placement, residual, ffn).
    """

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
        """(output (B, T, C), balancing loss): a dense feed-forward's loss is a 0-d zero."""
        if isinstance(self.ffn, MoELayer):
            return self.ffn(x)
        return self.ffn(x), x.new_zeros(())

    def forward(self, x, cos, sin, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """One block on the residual stream.

        Args:
            x: (B, T, C) float, the residual stream.
            cos: (T, HS/2) float32, RoPE angles.
            sin: (T, HS/2) float32.
            mask: None or bool (B or 1, 1, T, T).

        Returns:
            (x, aux): the new stream (B, T, C), and the MoE balancing loss (0-d; zero without experts).
        """
        c = self.config
        keep = 1.0 if c.residual else 0.0  # 0 cuts the skip path: each sublayer sees only the last one's output
        if c.placement == "pre":
            x = keep * x + self.attn(self.norm1(x), cos, sin, mask)  # (B, T, C)
            f, aux = self._ffn(self.norm2(x))  # (B, T, C), ()
            return keep * x + f, aux
        x = self.norm1(keep * x + self.attn(x, cos, sin, mask))  # (B, T, C)
        f, aux = self._ffn(x)  # (B, T, C), ()
        return self.norm2(keep * x + f), aux


@dataclass
class MiniOutput:
    """What ``MiniFormer.forward`` returns: the objectives add aux_loss to their cross-entropy."""

    logits: torch.Tensor
    """(B, T, V) float."""
    aux_loss: torch.Tensor
    """Sum of the MoE layers' balancing losses (0 without experts)."""
    hidden: list[torch.Tensor] | None = None
    """The residual stream after the embedding and after each block, when asked for: n_layers + 1 of (B, T, C)."""


class MiniFormer(nn.Module):
    """Embedding (V + 1 rows, the last [MASK]) → n_layers blocks → final norm → untied linear head to V.

    Linear and embedding weights start at N(0, 0.02²), as in GPT-2; norms at 1.

    Args:
        config: The sizes and switches.
    """

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
        """Logits for every position under the chosen attention mask.

        Args:
            ids: (B, T) int64 token ids; ``config.mask_token`` is allowed.
            attention: "causal", "bidirectional" or "prefix" (see ``attention_mask``).
            prefix: (B,) int64 prefix lengths, for attention="prefix".
            keep_hidden: Also return the residual stream after every block.

        Returns:
            MiniOutput with logits (B, T, V), the summed balancing loss (0-d)
            and, when asked, the hidden states.

        Raises:
            EngineError: T exceeds the context, or the attention kind is invalid.
        """
        b, t = ids.shape
        if t > self.config.context:
            raise EngineError(f"{t} tokens do not fit the context of {self.config.context}")
        mask = attention_mask(attention, t, prefix)  # None or (B or 1, 1, T, T)
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]  # (T, HS/2) each
        x = self.embed(ids)  # (B, T, C)
        hidden = [x] if keep_hidden else None
        aux = x.new_zeros(())
        for block in self.blocks:
            x, block_aux = block(x, cos, sin, mask)  # (B, T, C), ()
            aux = aux + block_aux
            if hidden is not None:
                hidden.append(x)
        return MiniOutput(self.head(self.final_norm(x)), aux, hidden)  # logits (B, T, V)
