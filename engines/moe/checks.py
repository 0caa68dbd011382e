"""The argument checks of dispatch and combine, shared by the package and the native module.

engines.moe.native calls these itself, so a direct call of that module is
refused as the package refuses it, before any pointer reaches C. Ids and
positions must be integer arrays (any integer dtype, made int64) in both: a
float array would be truncated, and a NaN would turn into a large negative
number that looks like "dropped".
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import require_array, require_int, require_int_array


def check_dispatch(x, experts, n_experts, capacity) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(x, experts, n_experts, capacity) checked: x C-contiguous float32 [T, D]; experts integer [T, k]
    in [0, E), made C-contiguous int64; TypeError for non-integer ids or counts, ValueError for bad shapes or
    values."""
    x = require_array(x, "x")
    if x.ndim != 2 or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError(f"x must be a C-contiguous float32 [tokens, d] array, got {x.dtype} {x.shape}")
    n_experts, capacity = require_int(n_experts, "n_experts", low=1), require_int(capacity, "capacity", low=1)
    experts = require_int_array(experts, "experts", low=0, high=n_experts - 1)
    if experts.ndim != 2 or experts.shape[0] != x.shape[0]:
        raise ValueError(f"experts must be [tokens, k] with {x.shape[0]} rows, got shape {experts.shape}")
    return x, experts, n_experts, capacity


def check_combine(expert_out, positions, experts, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(expert_out, positions, experts, weights) checked and made C-contiguous: expert_out float32 [E, C, D];
    positions (-1 = dropped) and experts integer [T, k] pointing inside expert_out, made int64; weights float32
    [T, k]. TypeError for non-integer ids, ValueError for bad shapes or values, as check_dispatch."""
    expert_out = require_array(expert_out, "expert_out")
    if expert_out.ndim != 3 or expert_out.dtype != np.float32:
        raise ValueError(f"expert_out must be float32 [experts, capacity, d], got {expert_out.dtype} {expert_out.shape}")
    n_experts, capacity = expert_out.shape[:2]
    positions = require_int_array(positions, "positions", low=-1, high=capacity - 1)
    experts = require_int_array(experts, "experts", low=0, high=n_experts - 1)
    weights = np.asarray(weights)
    if not np.issubdtype(weights.dtype, np.floating) and not np.issubdtype(weights.dtype, np.integer):
        raise TypeError(f"weights must be numbers, got {weights.dtype}")
    if not positions.shape == experts.shape == weights.shape or positions.ndim != 2:
        raise ValueError(f"positions, experts and weights must share a [tokens, k] shape, got "
                         f"{positions.shape}, {experts.shape}, {weights.shape}")
    return (np.ascontiguousarray(expert_out), positions, experts,
            np.ascontiguousarray(weights, dtype=np.float32))
