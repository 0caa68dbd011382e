"""Mixture of experts: top-k routing, the load-balancing loss, capacity with dropping, dispatch and combine.

``dispatch(x, experts, n_experts, capacity, backend=...)`` groups token rows
into per-expert buffers and ``combine(...)`` scatters expert outputs back,
weighted by the gates; backends ``reference`` (NumPy), ``native`` (C) and
``torch`` (index-based). Shapes and ids are checked before anything runs.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import require_array, require_int
from workbench_engines.moe.checks import check_combine, check_dispatch
from workbench_engines.moe.reference import capacity, load_balancing_loss

BACKENDS = ("reference", "native", "torch")


def active_parameters(d_model: int, hidden: int, experts: int, top_k: int = 1, layers: int = 1) -> int:
    """Weights one token uses in ``layers`` MoE layers of SwiGLU experts (Shazeer et al., 2017; Fedus et al., 2022):
    its top_k experts, 3 · d_model · hidden each (gate, up and down), plus the router's d_model · experts."""
    d_model, hidden, experts, layers = (require_int(value, name, low=1) for name, value in (
        ("d_model", d_model), ("hidden", hidden), ("experts", experts), ("layers", layers)))
    top_k = require_int(top_k, "top_k", low=1, high=experts)
    return layers * (top_k * 3 * d_model * hidden + d_model * experts)


def route(router_logits, k: int, *, noise_std: float = 0.0, rng: np.random.Generator | None = None):
    """(weights [T, k], experts [T, k], probs [T, E]) of top-k gating (see reference.route)."""
    from workbench_engines.moe import reference

    logits = require_array(router_logits, "router_logits")
    if logits.ndim != 2:
        raise ValueError(f"router_logits must be [tokens, experts], got shape {logits.shape}")
    k = require_int(k, "k (experts per token)", low=1, high=logits.shape[1])
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    return reference.route(logits, k, noise_std=noise_std, rng=rng)


def dispatch(x, experts, n_experts: int, capacity: int, *, backend: str = "reference", threads: int | None = None):
    """(buffers [E, C, D], positions [T, k] (-1 = dropped), counts [E])."""
    if backend == "native":
        from workbench_engines.moe import native

        return native.dispatch(x, experts, n_experts, capacity, threads)
    x, experts, n_experts, capacity = check_dispatch(x, experts, n_experts, capacity)
    if backend == "torch":
        from workbench_engines.moe import torch_backend

        return torch_backend.dispatch(x, experts, n_experts, capacity)
    if backend != "reference":
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from workbench_engines.moe import reference

    return reference.dispatch(x, experts, n_experts, capacity)


def combine(expert_out, positions, experts, weights, *, backend: str = "reference", threads: int | None = None):
    """y [T, D]: each token's kept expert outputs mixed by its gate weights."""
    if backend == "native":
        from workbench_engines.moe import native

        return native.combine(expert_out, positions, experts, weights, threads)
    expert_out, positions, experts, weights = check_combine(expert_out, positions, experts, weights)
    if backend == "torch":
        from workbench_engines.moe import torch_backend

        return torch_backend.combine(expert_out, positions, experts, weights)
    if backend != "reference":
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from workbench_engines.moe import reference

    return reference.combine(expert_out, positions, experts, weights)


__all__ = ["BACKENDS", "active_parameters", "capacity", "combine", "dispatch", "load_balancing_loss", "route"]
