"""Dispatch and combine through native/src/wb_moe.c.

Each function checks its own arguments (engines/moe/checks.py, the package's
checks, and check_threads) before any pointer crosses, so calling this
module directly is as safe as calling the package.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.moe.checks import check_combine, check_dispatch
from workbench_engines.nativelib import check_status, check_threads, native


def dispatch(x: np.ndarray, experts: np.ndarray, n_experts: int, capacity: int, threads: int | None = None):
    """(buffers [E, C, D], positions [T, k] (-1 = dropped), counts [E])."""
    x, experts, n_experts, capacity = check_dispatch(x, experts, n_experts, capacity)
    n_threads = check_threads(threads)
    module = native()
    ffi, lib = module.ffi, module.lib
    tokens, k = experts.shape
    buffers = np.zeros((n_experts, capacity, x.shape[1]), dtype=np.float32)
    positions = np.empty((tokens, k), dtype=np.int64)
    counts = np.empty(n_experts, dtype=np.int64)
    status = lib.wb_moe_dispatch_f32(
        ffi.from_buffer("float[]", buffers, require_writable=True),
        ffi.from_buffer("int64_t[]", positions, require_writable=True),
        ffi.from_buffer("int64_t[]", counts, require_writable=True),
        ffi.from_buffer("float[]", x), ffi.from_buffer("int64_t[]", experts),
        tokens, x.shape[1], k, n_experts, capacity, n_threads,
    )
    check_status("wb_moe_dispatch_f32", status)
    return buffers, positions, counts


def combine(expert_out: np.ndarray, positions: np.ndarray, experts: np.ndarray, weights: np.ndarray,
            threads: int | None = None) -> np.ndarray:
    """y [T, D]: each token's kept expert outputs mixed by its gate weights."""
    expert_out, positions, experts, weights = check_combine(expert_out, positions, experts, weights)
    n_threads = check_threads(threads)
    module = native()
    ffi, lib = module.ffi, module.lib
    tokens, k = experts.shape
    n_experts, capacity, d = expert_out.shape
    y = np.empty((tokens, d), dtype=np.float32)
    status = lib.wb_moe_combine_f32(
        ffi.from_buffer("float[]", y, require_writable=True), ffi.from_buffer("float[]", expert_out),
        ffi.from_buffer("int64_t[]", positions), ffi.from_buffer("int64_t[]", experts),
        ffi.from_buffer("float[]", weights), tokens, d, k, n_experts, capacity, n_threads,
    )
    check_status("wb_moe_combine_f32", status)
    return y
