"""Mixture of experts: top-k routing, the load-balancing loss, capacity with dropping, dispatch and combine.

``dispatch(x, experts, n_experts, capacity, backend=...)`` groups token rows
into per-expert buffers and ``combine(...)`` scatters expert outputs back,
weighted by the gates; backends ``reference`` (NumPy), ``native`` (C) and
``torch`` (index-based). Shapes and ids are checked before anything runs.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import require_array
from workbench_engines.moe.reference import capacity, load_balancing_loss

BACKENDS = ("reference", "native", "torch")


def active_parameters(d_model: int, hidden: int, experts: int, top_k: int = 1, layers: int = 1) -> int:
    """Weights one token uses in ``layers`` MoE layers of SwiGLU experts (Shazeer et al., 2017; Fedus et al., 2022):
    its top_k experts, 3 · d_model · hidden each (gate, up and down), plus the router's d_model · experts."""
    for name, value in (("d_model", d_model), ("hidden", hidden), ("experts", experts), ("top_k", top_k),
                        ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if top_k > experts:
        raise ValueError(f"top_k {top_k} exceeds {experts} experts")
    return int(layers * (top_k * 3 * d_model * hidden + d_model * experts))


def route(router_logits, k: int, *, noise_std: float = 0.0, rng: np.random.Generator | None = None):
    """(weights [T, k], experts [T, k], probs [T, E]) of top-k gating (see reference.route)."""
    from workbench_engines.moe import reference

    logits = require_array(router_logits, "router_logits")
    if logits.ndim != 2:
        raise ValueError(f"router_logits must be [tokens, experts], got shape {logits.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be between 1 and the {logits.shape[1]} experts, got {k!r}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    return reference.route(logits, int(k), noise_std=noise_std, rng=rng)


def _check(x, experts, n_experts, capacity_):
    x, experts = require_array(x, "x"), require_array(experts, "experts")
    if x.ndim != 2 or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError(f"x must be a C-contiguous float32 [tokens, d] array, got {x.dtype} {x.shape}")
    if experts.ndim != 2 or experts.shape[0] != x.shape[0] or experts.dtype != np.int64:
        raise ValueError(f"experts must be int64 [tokens, k] with {x.shape[0]} rows, got {experts.dtype} {experts.shape}")
    if not isinstance(n_experts, (int, np.integer)) or n_experts < 1:
        raise ValueError(f"n_experts must be a positive integer, got {n_experts!r}")
    if not isinstance(capacity_, (int, np.integer)) or capacity_ < 1:
        raise ValueError(f"capacity must be a positive integer, got {capacity_!r}")
    if experts.size and (experts.min() < 0 or experts.max() >= n_experts):
        raise ValueError(f"expert ids must be in [0, {n_experts})")
    return np.ascontiguousarray(x), np.ascontiguousarray(experts)


def dispatch(x, experts, n_experts: int, capacity: int, *, backend: str = "reference", threads: int | None = None):
    """(buffers [E, C, D], positions [T, k] (-1 = dropped), counts [E])."""
    x, experts = _check(x, experts, n_experts, capacity)
    if backend == "native":
        from workbench_engines.moe import native

        return native.dispatch(x, experts, int(n_experts), int(capacity), threads)
    if backend == "torch":
        from workbench_engines.moe import torch_backend

        return torch_backend.dispatch(x, experts, int(n_experts), int(capacity))
    if backend != "reference":
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from workbench_engines.moe import reference

    return reference.dispatch(x, experts, int(n_experts), int(capacity))


def combine(expert_out, positions, experts, weights, *, backend: str = "reference", threads: int | None = None):
    """y [T, D]: each token's kept expert outputs mixed by its gate weights."""
    expert_out = require_array(expert_out, "expert_out")
    positions, experts, weights = (np.ascontiguousarray(a) for a in (positions, experts, weights))
    if expert_out.ndim != 3 or expert_out.dtype != np.float32:
        raise ValueError(f"expert_out must be float32 [experts, capacity, d], got {expert_out.dtype} {expert_out.shape}")
    if not positions.shape == experts.shape == weights.shape or positions.ndim != 2:
        raise ValueError(f"positions, experts and weights must share a [tokens, k] shape, got "
                         f"{positions.shape}, {experts.shape}, {weights.shape}")
    if positions.max(initial=-1) >= expert_out.shape[1] or experts.max(initial=0) >= expert_out.shape[0]:
        raise ValueError("a position or expert id is outside expert_out")
    weights = weights.astype(np.float32, copy=False)
    if backend == "native":
        from workbench_engines.moe import native

        return native.combine(np.ascontiguousarray(expert_out), positions.astype(np.int64), experts.astype(np.int64),
                              weights, threads)
    if backend == "torch":
        from workbench_engines.moe import torch_backend

        return torch_backend.combine(expert_out, positions, experts, weights)
    if backend != "reference":
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from workbench_engines.moe import reference

    return reference.combine(expert_out, positions, experts, weights)


__all__ = ["BACKENDS", "active_parameters", "capacity", "combine", "dispatch", "load_balancing_loss", "route"]
