"""The argument checks of dispatch and combine, shared by the package and the native module.

engines.moe.native calls these itself, so a direct call of that module is
refused as the package refuses it, before any pointer reaches C. Ids and
positions must be integer arrays: a float array would be truncated, and a
NaN would turn into a large negative number that looks like "dropped".
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import require_array


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _integers(a: object, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def check_dispatch(x, experts, n_experts, capacity) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(x, experts, n_experts, capacity) checked: x C-contiguous float32 [T, D], experts int [T, k] in [0, E)."""
    x, experts = require_array(x, "x"), require_array(experts, "experts")
    if x.ndim != 2 or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError(f"x must be a C-contiguous float32 [tokens, d] array, got {x.dtype} {x.shape}")
    if experts.ndim != 2 or experts.shape[0] != x.shape[0] or experts.dtype != np.int64:
        raise ValueError(f"experts must be int64 [tokens, k] with {x.shape[0]} rows, got {experts.dtype} {experts.shape}")
    n_experts, capacity = _positive(n_experts, "n_experts"), _positive(capacity, "capacity")
    if experts.size and (experts.min() < 0 or experts.max() >= n_experts):
        raise ValueError(f"expert ids must be in [0, {n_experts})")
    return x, np.ascontiguousarray(experts), n_experts, capacity


def check_combine(expert_out, positions, experts, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(expert_out, positions, experts, weights) checked and made C-contiguous: expert_out float32 [E, C, D];
    positions (-1 = dropped) and experts integer [T, k] pointing inside expert_out; weights float32 [T, k]."""
    expert_out = require_array(expert_out, "expert_out")
    if expert_out.ndim != 3 or expert_out.dtype != np.float32:
        raise ValueError(f"expert_out must be float32 [experts, capacity, d], got {expert_out.dtype} {expert_out.shape}")
    positions, experts = _integers(positions, "positions"), _integers(experts, "experts")
    weights = np.asarray(weights)
    if not np.issubdtype(weights.dtype, np.floating) and not np.issubdtype(weights.dtype, np.integer):
        raise TypeError(f"weights must be numbers, got {weights.dtype}")
    if not positions.shape == experts.shape == weights.shape or positions.ndim != 2:
        raise ValueError(f"positions, experts and weights must share a [tokens, k] shape, got "
                         f"{positions.shape}, {experts.shape}, {weights.shape}")
    n_experts, capacity = expert_out.shape[:2]
    if positions.size and (positions.min() < -1 or positions.max() >= capacity):
        raise ValueError(f"a position is outside expert_out: each must be -1 (dropped) or in [0, {capacity})")
    if experts.size and (experts.min() < 0 or experts.max() >= n_experts):
        raise ValueError(f"an expert id is outside expert_out: each must be in [0, {n_experts})")
    return (np.ascontiguousarray(expert_out), positions, experts,
            np.ascontiguousarray(weights, dtype=np.float32))
