"""Attention through the C kernels in native/src/wb_attention.c (naive and flash).

Inputs are checked here, by the package's own ``validated`` (rank, float32,
C-contiguous, head counts, mask shape) and ``check_threads``, before any
pointer crosses: a direct call of this module is as safe as the package's. The kernel's workspace is a NumPy array, so the memory it
needs shows up in tracemalloc-based profiles: quadratic in the sequence for
the naive kernel, a few tiles per thread for flash.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.attention import validated
from workbench_engines.nativelib import check_status, check_threads, native


SIMD_PATHS = {
    "avx512": "AVX-512: 16-float registers, micro-kernels 6 rows x 4 registers (32 zmm)",
    "avx2": "AVX2: 8-float registers, micro-kernels 6 rows x 2 registers (16 ymm)",
    "sse": "SSE: 4-float registers, micro-kernels 6 rows x 2 registers (portable build)",
    "vec128": "128-bit vectors (NEON, or however the compiler lowers them): 4 floats, 6 rows x 2 registers",
}
"""The register blockings wb_attention.c's flash kernel can be built with, as wb_attention_simd_path() names them."""


def simd_path() -> str:
    """Which blocking this build's flash kernel compiled: "avx512", "avx2", "sse" (x86) or "vec128" (others)."""
    module = native()
    return module.ffi.string(module.lib.wb_attention_simd_path()).decode()


def kernel_id(lib, kernel: str) -> int:
    """wb_attention.h's WB_ATTN_NAIVE or WB_ATTN_FLASH for "naive" or "flash"."""
    return getattr(lib, f"WB_ATTN_{kernel.upper()}")


def attention(q, k, v, *, causal=False, window=None, key_mask=None, scale=None, kernel="flash", threads=None):
    """softmax(scale q k^T, masked) v through the C kernel ``kernel``; [batch, heads, lq, dv] float32."""
    q, k, v, key_mask = validated(q, k, v, key_mask, window, "native", kernel)
    n_threads = check_threads(threads)
    module = native()
    ffi, lib = module.ffi, module.lib
    batch, heads, lq, d = q.shape
    kv_heads, lk, dv = k.shape[1], k.shape[2], v.shape[3]
    if dv == 0:
        return np.empty((batch, heads, lq, 0), dtype=np.float32)
    scale = float(1.0 / np.sqrt(d) if scale is None else scale)
    kernel_code = kernel_id(lib, kernel)
    # A window of lq + lk already admits every key (the same mask as none), and fits in int64 where 10**30 doesn't.
    c_window = min(int(window or 0), lq + lk)
    floats = lib.wb_attention_workspace_f32(kernel_code, lq, lk, d, dv, n_threads)
    if floats < 0:  # a status, not a size: the workspace would overflow, or an argument is bad
        check_status("wb_attention_workspace_f32", floats)
    workspace = np.empty(max(int(floats), 1), dtype=np.float32)
    out = np.empty((batch, heads, lq, dv), dtype=np.float32)
    mask = ffi.NULL
    if key_mask is not None:
        mask_bytes = np.ascontiguousarray(key_mask, dtype=np.uint8)
        mask = ffi.from_buffer("uint8_t[]", mask_bytes)
    status = lib.wb_attention_forward_f32(
        ffi.from_buffer("float[]", out, require_writable=True),
        ffi.from_buffer("float[]", q), ffi.from_buffer("float[]", k), ffi.from_buffer("float[]", v),
        batch, heads, kv_heads, lq, lk, d, dv, scale, int(causal), c_window, mask,
        kernel_code, ffi.from_buffer("float[]", workspace, require_writable=True), len(workspace), n_threads,
    )
    check_status("wb_attention_forward_f32", status)
    return out
