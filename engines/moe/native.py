"""Dispatch and combine through native/src/wb_moe.c; arguments are checked before any pointer crosses."""

from __future__ import annotations

import numpy as np

from workbench_engines.nativelib import check_status, default_threads, native


def dispatch(x: np.ndarray, experts: np.ndarray, n_experts: int, capacity: int, threads: int | None = None):
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
        tokens, x.shape[1], k, n_experts, capacity, default_threads() if threads is None else threads,
    )
    check_status("wb_moe_dispatch_f32", status)
    return buffers, positions, counts


def combine(expert_out: np.ndarray, positions: np.ndarray, experts: np.ndarray, weights: np.ndarray,
            threads: int | None = None) -> np.ndarray:
    module = native()
    ffi, lib = module.ffi, module.lib
    tokens, k = experts.shape
    n_experts, capacity, d = expert_out.shape
    y = np.empty((tokens, d), dtype=np.float32)
    status = lib.wb_moe_combine_f32(
        ffi.from_buffer("float[]", y, require_writable=True), ffi.from_buffer("float[]", expert_out),
        ffi.from_buffer("int64_t[]", positions), ffi.from_buffer("int64_t[]", experts),
        ffi.from_buffer("float[]", weights), tokens, d, k, n_experts, capacity,
        default_threads() if threads is None else threads,
    )
    check_status("wb_moe_combine_f32", status)
    return y
