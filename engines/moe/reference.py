"""Mixture of experts in NumPy: routing, the balancing loss, capacity, dispatch and combine.

A router scores each token against E experts; the token goes to its k best
(Shazeer et al., 2017), weighted by a softmax over those k scores. Experts
process fixed-size buffers of capacity C = ceil(factor · tokens · k / E)
(Switch Transformer, Fedus et al., 2022); slots beyond an expert's capacity
are dropped, first come first served in token order. The balancing loss
E · Σ_e f_e · P_e (f_e: share of routed slots, P_e: mean router
probability) is smallest when experts are used evenly.
"""

from __future__ import annotations

import math

import numpy as np


def route(router_logits: np.ndarray, k: int, *, noise_std: float = 0.0,
          rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights [T, k], experts [T, k], probs [T, E]): top-k experts (ties: lower index) with a
    softmax over the chosen logits, and the full router softmax the balancing loss needs.
    noise_std adds Gaussian noise to the logits used for choosing (noisy top-k gating)."""
    logits = router_logits.astype(np.float64)
    choose = logits + (rng or np.random.default_rng()).standard_normal(logits.shape) * noise_std if noise_std else logits
    experts = np.argsort(-choose, axis=-1, kind="stable")[:, :k]
    chosen = np.take_along_axis(logits, experts, axis=-1)
    weights = np.exp(chosen - chosen.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return weights.astype(np.float32), experts.astype(np.int64), probs


def load_balancing_loss(probs: np.ndarray, experts: np.ndarray) -> float:
    """E · Σ_e f_e P_e: f_e the share of (token, slot) assignments to e, P_e its mean probability."""
    n_experts = probs.shape[-1]
    f = np.bincount(experts.ravel(), minlength=n_experts) / experts.size
    return float(n_experts * np.sum(f * probs.mean(axis=0)))


def capacity(tokens: int, n_experts: int, k: int, factor: float) -> int:
    """Slots per expert: ceil(factor · tokens · k / experts)."""
    return math.ceil(factor * tokens * k / n_experts)


def dispatch(x: np.ndarray, experts: np.ndarray, n_experts: int, capacity: int):
    """(buffers [E, C, D], positions [T, k] with -1 for dropped slots, counts [E])."""
    tokens, k = experts.shape
    buffers = np.zeros((n_experts, capacity, x.shape[1]), dtype=x.dtype)
    positions = np.full((tokens, k), -1, dtype=np.int64)
    counts = np.zeros(n_experts, dtype=np.int64)
    for t in range(tokens):
        for j in range(k):
            e = experts[t, j]
            if counts[e] < capacity:
                positions[t, j] = counts[e]
                buffers[e, counts[e]] = x[t]
                counts[e] += 1
    return buffers, positions, counts


def combine(expert_out: np.ndarray, positions: np.ndarray, experts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """y[t] = Σ_j weights[t, j] · expert_out[experts[t, j], positions[t, j]] over kept slots."""
    kept = positions >= 0
    # A dropped slot contributes nothing, even where the row it would index holds inf or NaN.
    rows = np.where(kept[..., None], expert_out[experts, np.where(kept, positions, 0)], 0.0)  # [T, k, D]
    gates = np.where(kept, weights, 0.0).astype(expert_out.dtype, copy=False)  # [T, k]
    return np.einsum("tk,tkd->td", gates, rows.astype(expert_out.dtype, copy=False))
