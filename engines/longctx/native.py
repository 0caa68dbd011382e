"""The selective scan through native/src/wb_scan.c (float32, sequential in time, threads over channels)."""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import as_rows_f32
from workbench_engines.longctx.scan import check_inputs
from workbench_engines.nativelib import check_status, check_threads, native


def max_state() -> int:
    """The largest state dimension n the C kernel takes (WB_SCAN_MAX_STATE, read from the header)."""
    return int(native().lib.WB_SCAN_MAX_STATE)


def selective_scan(u, delta, A, B, C, D=None, *, delta_softplus: bool = False, initial_state=None,
                   threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(y (batch, d, L), last state (batch, d, n)); every argument checked before a pointer reaches C.

    TypeError for arrays that are not float32; ValueError for wrong shapes,
    non-contiguous arrays, n above :func:`max_state` or a bad thread count.
    """
    batch, d, L, n = check_inputs(u, delta, A, B, C, D, initial_state)
    named = {"u": u, "delta": delta, "A": A, "B": B, "C": C, "D": D, "initial_state": initial_state}
    for name, x in named.items():
        if x is not None:
            as_rows_f32(x, name)  # float32 and C-contiguous, or a clear error
    module = native()
    if n > max_state():
        raise ValueError(f"the native scan keeps at most n = {max_state()} state entries per channel, got n = {n}")
    n_threads = check_threads(threads)
    ffi, lib = module.ffi, module.lib

    def ptr(x, writable=False):
        return ffi.NULL if x is None else ffi.from_buffer("float[]", x, require_writable=writable)

    y = np.empty((batch, d, L), np.float32)
    last = np.empty((batch, d, n), np.float32)
    status = lib.wb_scan_selective_f32(ptr(y, True), ptr(last, True), ptr(u), ptr(delta), ptr(A), ptr(B), ptr(C),
                                       ptr(D), ptr(initial_state), batch, d, L, n, int(bool(delta_softplus)),
                                       n_threads)
    check_status("wb_scan_selective_f32", status)
    return y, last
