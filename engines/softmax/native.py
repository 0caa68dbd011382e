"""Softmax, log-softmax and logsumexp through the C kernels in native/src/wb_softmax.c.

Same contract as :mod:`workbench_engines.softmax.reference`, restricted to C-contiguous
float32 input; everything is checked here before a pointer crosses to C.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import as_rows_f32
from workbench_engines.nativelib import check_status, check_threads, native


def _elementwise(kernel: str, x: np.ndarray, threads: int | None) -> np.ndarray:
    rows2d, shape = as_rows_f32(x, "x")
    n_threads = check_threads(threads)
    module = native()
    out = np.empty(shape, dtype=np.float32)
    rows, cols = rows2d.shape
    status = getattr(module.lib, kernel)(
        module.ffi.from_buffer("float[]", out, require_writable=True),
        module.ffi.from_buffer("float[]", rows2d),
        rows,
        cols,
        cols,
        cols,
        n_threads,
    )
    check_status(kernel, status)
    return out


def softmax(x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Row softmax over the last axis of a C-contiguous float32 array."""
    return _elementwise("wb_softmax_forward_f32", x, threads)


def log_softmax(x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Row log-softmax over the last axis of a C-contiguous float32 array."""
    return _elementwise("wb_softmax_log_f32", x, threads)


def logsumexp(x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Row logsumexp over the last axis of a C-contiguous float32 array."""
    rows2d, shape = as_rows_f32(x, "x")
    n_threads = check_threads(threads)
    module = native()
    out = np.empty(shape[:-1], dtype=np.float32)
    rows, cols = rows2d.shape
    status = module.lib.wb_softmax_logsumexp_f32(
        module.ffi.from_buffer("float[]", out, require_writable=True),
        module.ffi.from_buffer("float[]", rows2d),
        rows,
        cols,
        cols,
        n_threads,
    )
    check_status("wb_softmax_logsumexp_f32", status)
    return out
