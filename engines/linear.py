"""A float32 linear layer for decoding, out = x Wᵀ for a few rows of x, on the C kernel or torch.

Decoding multiplies each weight matrix by one vector, which makes it a
streaming read of W: native/src/wb_linear.c reads W at memory speed and
uses each row for every row of x (up to WB_LINEAR_MAX_T of them). torch's
``F.linear`` is the reference (and what a long prefill should use: a GEMM
that blocks for the caches). Everything is checked here before a pointer
crosses to C.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.backends import Choice, resolve
from workbench_engines.nativelib import check_status, check_threads, native

BACKENDS = ("native", "torch")


def choose_backend(rows_of_x: int, backend: str = "auto") -> Choice:
    """The C kernel for up to WB_LINEAR_MAX_T rows of x where it loads, else torch."""
    unsupported = {}
    if backend == "auto":
        from workbench_engines.backends import available

        if available("native") and rows_of_x > native().lib.WB_LINEAR_MAX_T:
            unsupported["native"] = f"{rows_of_x} rows of x: a GEMM blocks for the caches better"
    return resolve(backend, offers=BACKENDS, unsupported=unsupported)


def _checked(x: np.ndarray, w: np.ndarray, threads: int | None) -> int:
    for array, name in ((x, "x"), (w, "w")):
        if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 2:
            raise ValueError(f"{name} must be a 2-D float32 numpy array, got {getattr(array, 'dtype', type(array))} "
                             f"{getattr(array, 'shape', '')}")
        if not array.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray)")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} columns, w {w.shape[1]}")
    lib = native().lib
    if x.shape[0] > lib.WB_LINEAR_MAX_T:
        raise ValueError(f"the C kernel takes at most {lib.WB_LINEAR_MAX_T} rows of x, got {x.shape[0]}")
    return check_threads(threads)


def forward(x: np.ndarray, w: np.ndarray, *, backend: str = "auto", threads: int | None = None) -> np.ndarray:
    """x (T, cols) times w (rows, cols) transposed: (T, rows) float32."""
    if choose_backend(getattr(x, "shape", (0,))[0], backend).name == "torch":
        import torch

        return torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    n_threads = _checked(x, w, threads)
    module = native()
    ffi, lib = module.ffi, module.lib
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.float32)
    status = lib.wb_linear_forward_f32(ffi.from_buffer("float[]", out, require_writable=True),
                                       ffi.from_buffer("float[]", x), ffi.from_buffer("float[]", w),
                                       x.shape[0], w.shape[0], w.shape[1], n_threads)
    check_status("wb_linear_forward_f32", status)
    return out


class PreparedLinear:
    """A weight matrix checked and handed to C once, for the many small products of a decode loop.

    The weight (rows, cols) float32 is validated here and its pointer kept;
    each call then checks only what can change, x's dtype, shape and layout,
    so a 135M model's 210 products per token spend microseconds, not tens of
    them, outside the kernel.
    """

    def __init__(self, w: np.ndarray, threads: int | None = None) -> None:
        self.w = w
        self.threads = _checked(np.zeros((1, w.shape[1] if getattr(w, "ndim", 0) == 2 else 0), np.float32), w, threads)
        module = native()
        self._ffi, self._lib = module.ffi, module.lib
        self._w = self._ffi.from_buffer("float[]", w)
        self._max_t = int(self._lib.WB_LINEAR_MAX_T)

    def set_threads(self, threads: int) -> None:
        self.threads = _checked(np.zeros((1, self.w.shape[1]), np.float32), self.w, threads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x (T, cols) float32, C-contiguous, T <= WB_LINEAR_MAX_T: (T, rows) float32."""
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != self.w.shape[1] or not x.flags.c_contiguous \
                or x.shape[0] > self._max_t:
            _checked(x, self.w, self.threads)  # raises, saying what is wrong
            raise ValueError(f"x must be a C-contiguous float32 (T, {self.w.shape[1]}) array, got {x.shape}")
        out = np.empty((x.shape[0], self.w.shape[0]), dtype=np.float32)
        status = self._lib.wb_linear_forward_f32(self._ffi.from_buffer("float[]", out, require_writable=True),
                                                 self._ffi.from_buffer("float[]", x), self._w, x.shape[0],
                                                 self.w.shape[0], self.w.shape[1], self.threads)
        check_status("wb_linear_forward_f32", status)
        return out
