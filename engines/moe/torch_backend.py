"""Index-based dispatch and combine in torch (one-hot cumsum positions, index_put and gather),
the way many MoE implementations write it; for comparison."""

from __future__ import annotations

import numpy as np


def dispatch(x: np.ndarray, experts: np.ndarray, n_experts: int, capacity: int):
    import torch

    tx, te = torch.from_numpy(x), torch.from_numpy(experts)
    tokens, k = te.shape
    flat = te.reshape(-1)
    one_hot = torch.nn.functional.one_hot(flat, n_experts)
    positions = (one_hot.cumsum(0) - 1).gather(1, flat[:, None])[:, 0]
    keep = positions < capacity
    buffers = torch.zeros((n_experts, capacity, x.shape[1]), dtype=tx.dtype)
    rows = torch.arange(tokens).repeat_interleave(k)
    buffers[flat[keep], positions[keep]] = tx[rows[keep]]
    counts = torch.bincount(flat[keep], minlength=n_experts)
    positions = torch.where(keep, positions, torch.full_like(positions, -1))
    return buffers.numpy(), positions.reshape(tokens, k).numpy(), counts.numpy()


def combine(expert_out: np.ndarray, positions: np.ndarray, experts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    import torch

    out, pos, exp = torch.from_numpy(expert_out), torch.from_numpy(positions), torch.from_numpy(experts)
    w = torch.from_numpy(weights)
    kept = pos >= 0
    # A dropped slot contributes nothing, even where the row it would index holds inf or NaN.
    rows = torch.where(kept[..., None], out[exp, pos.clamp(min=0)], torch.zeros((), dtype=out.dtype))  # [T, k, D]
    return torch.einsum("tk,tkd->td", torch.where(kept, w, torch.zeros_like(w)), rows).numpy()
