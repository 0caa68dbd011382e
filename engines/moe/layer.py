"""A trainable mixture-of-experts feed-forward layer in torch, for the mini-former.

Each token's router logits pick its top-k experts (Shazeer et al., 2017),
gated by a softmax over the chosen logits; every expert takes at most
capacity = ceil(factor · tokens · k / experts) tokens, first come first
served in token order, the rest pass through as zero (Switch Transformer,
Fedus et al., 2022). The layer returns the Switch balancing loss
E · Σ_e f_e P_e beside its output. This is workbench_engines.moe's routing, written in
torch so that autograd trains the router and the experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workbench_engines.errors import EngineError
from workbench_engines.models.layers import SwiGLU


@dataclass
class RoutingStats:
    counts: torch.Tensor
    """Tokens each expert processed in the last forward pass (after dropping)."""
    routed: torch.Tensor
    """Tokens the router sent to each expert (before dropping)."""
    dropped: int
    """(token, slot) assignments dropped for lack of capacity."""
    assignments: int
    experts: torch.Tensor
    """[tokens, k] the experts each token was sent to (labs show them)."""
    gates: torch.Tensor
    """[tokens, k] their gate weights."""


class MoELayer(nn.Module):
    def __init__(self, d_model: int, hidden: int, n_experts: int, k: int = 1, capacity_factor: float = 1.25,
                 noise_std: float = 0.0) -> None:
        super().__init__()
        if n_experts < 1 or not 1 <= k <= n_experts:
            raise EngineError(f"need 1 <= k <= n_experts, got k={k} with {n_experts} experts")
        if not capacity_factor > 0:
            raise EngineError(f"capacity_factor must be > 0, got {capacity_factor}")
        self.n_experts, self.k = n_experts, k
        self.capacity_factor, self.noise_std = capacity_factor, noise_std
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(d_model, hidden) for _ in range(n_experts))
        self.stats: RoutingStats | None = None

    def capacity(self, tokens: int) -> int:
        return math.ceil(self.capacity_factor * tokens * self.k / self.n_experts)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output shaped like x, balancing loss)."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        tokens = flat.shape[0]
        logits = self.router(flat)
        probs = F.softmax(logits, dim=-1)
        choose = logits
        if self.training and self.noise_std:
            choose = logits + torch.randn_like(logits) * self.noise_std
        experts = choose.topk(self.k, dim=-1).indices  # [T, k]
        gates = F.softmax(logits.gather(1, experts), dim=-1)
        # Position of each (token, slot) in its expert's buffer: a running count in token order.
        flat_experts = experts.reshape(-1)
        one_hot = F.one_hot(flat_experts, self.n_experts)
        position = (one_hot.cumsum(0) - 1).gather(1, flat_experts[:, None])[:, 0]
        keep = position < self.capacity(tokens)
        rows = torch.arange(tokens, device=x.device).repeat_interleave(self.k)
        flat_gates = gates.reshape(-1)
        out = torch.zeros_like(flat)
        counts = torch.zeros(self.n_experts, dtype=torch.long)
        for e, expert in enumerate(self.experts):
            chosen = keep & (flat_experts == e)
            if chosen.any():
                token_rows = rows[chosen]
                out = out.index_add(0, token_rows, expert(flat[token_rows]) * flat_gates[chosen, None])
                counts[e] = int(chosen.sum())
        with torch.no_grad():
            fraction = torch.bincount(flat_experts, minlength=self.n_experts).float() / flat_experts.numel()
        balance = self.n_experts * torch.sum(fraction * probs.mean(dim=0))
        self.stats = RoutingStats(counts, torch.bincount(flat_experts, minlength=self.n_experts),
                                  int((~keep).sum()), int(keep.numel()), experts.detach(), gates.detach())
        return out.reshape(shape), balance
