"""top-k and top-p through native/src/wb_sampling.c (bucketed selection, no full sort)."""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import as_rows_f32
from workbench_engines.nativelib import check_status, check_threads, native


def _call(kernel: str, logits: np.ndarray, threads: int | None, *args) -> tuple[np.ndarray, np.ndarray]:
    rows2d, shape = as_rows_f32(logits, "logits")
    n_threads = check_threads(threads)
    module = native()
    out = np.empty(shape, dtype=np.float32)
    kept = np.empty(rows2d.shape[0], dtype=np.int64)
    status = getattr(module.lib, kernel)(
        module.ffi.from_buffer("float[]", out, require_writable=True),
        module.ffi.from_buffer("float[]", rows2d),
        rows2d.shape[0], rows2d.shape[1], *args,
        module.ffi.from_buffer("int64_t[]", kept, require_writable=True),
        n_threads,
    )
    check_status(kernel, status)
    return out, kept.reshape(shape[:-1])


def top_k(logits: np.ndarray, k: int, threads: int | None = None) -> np.ndarray:
    return _call("wb_sampling_top_k_f32", logits, threads, k)[0]


def top_p(logits: np.ndarray, p: float, temperature: float = 1.0, threads: int | None = None) -> np.ndarray:
    return _call("wb_sampling_top_p_f32", logits, threads, float(p), float(temperature))[0]
