"""The GGUF block kernels of native/src/wb_quant.c: quantisation, dequantisation and the two quantised products.

Same contracts as :mod:`workbench_engines.quant.reference`. Every argument is
checked here, right before its pointer crosses to C: the tensor's format,
shape and blocks (again, as an array's shape can change after construction),
x's dtype, layout and width, and the thread count. Whether x is finite the C
kernels check as they read x (one pass fewer over it); inf or nan raises
ValueError all the same.

Two products, chosen by ``activations``: "float32" (wb_quant_matmul_exact_f32,
x as it is, weights dequantised in registers; every format) and "int8"
(wb_quant_matmul_f32, x rounded to int8 blocks as llama.cpp does; Q8_0, Q4_0
and Q4_1). :func:`quantize` (wb_quant_quantize_f32) writes the bytes
:func:`workbench_engines.quant.reference.quantize` writes.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.nativelib import check_status, check_threads, native
from workbench_engines.quant import reference
from workbench_engines.quant.reference import BLOCK
from workbench_engines.quant.tensor import (NOT_FINITE, WEIGHTS_NOT_FINITE, QuantTensor, check_activations, check_mode,
                                            check_weights)

SIMD_PATHS = {
    "avx512vnni": "AVX-512: vpdpbusd on 256-bit registers (int8); vpmovzxbd, vcvtdq2ps, FMA on 512-bit (float32)",
    "avx2": "AVX2: vpmaddubsw + vpmaddwd (int8); vpmovzxbd, vcvtdq2ps, FMA on 256-bit (float32)",
    "scalar": "portable C loops",
}
"""The kernels wb_quant.c can be built with, as wb_quant_simd_path() names them."""

KERNELS = {"float32": "wb_quant_matmul_exact_f32", "int8": "wb_quant_matmul_f32"}
"""The C function of each way of taking x (see :data:`~workbench_engines.quant.tensor.ACTIVATIONS`)."""


def simd_path() -> str:
    """Which kernels this build compiled in: "avx512vnni", "avx2" or "scalar"."""
    module = native()
    return module.ffi.string(module.lib.wb_quant_simd_path()).decode()


def threads_for(threads: int | None) -> int:
    """A thread count for the kernels: the CPUs here when None, else a checked positive int."""
    return check_threads(threads)


def format_id(tensor: QuantTensor | str) -> int:
    """A tensor's format (or a format's name) as the C header numbers it (ggml's type id)."""
    name = tensor if isinstance(tensor, str) else tensor.format
    return getattr(native().lib, f"WB_QUANT_{name}")


def workspace(T: int, cols: int) -> np.ndarray:
    """Scratch memory for either product of T rows of x with cols columns (its size is C's to say)."""
    size = native().lib.wb_quant_workspace_bytes(T, cols)
    check_status("wb_quant_workspace_bytes", min(int(size), 0))
    return np.empty(max(int(size), 1), dtype=np.uint8)


def raise_for(function: str, status: int) -> None:
    """Raise for a product's non-zero status: ValueError for inf or nan in x, NativeKernelError otherwise."""
    if status == native().lib.WB_ERR_BAD_ARGUMENT:
        raise ValueError(NOT_FINITE)
    check_status(function, status)


def dequantize(tensor: QuantTensor, threads: int | None = None) -> np.ndarray:
    """W as float32 (rows, cols), bit for bit ggml's (and gguf.quants') dequantisation."""
    n_threads = threads_for(threads)
    tensor.validate()
    module = native()
    ffi, lib = module.ffi, module.lib
    out = np.empty(tensor.shape, dtype=np.float32)
    status = lib.wb_quant_dequantize_f32(
        ffi.from_buffer("float[]", out, require_writable=True), ffi.from_buffer("uint8_t[]", tensor.blocks),
        format_id(tensor), tensor.rows, tensor.cols, n_threads)
    check_status("wb_quant_dequantize_f32", status)
    return out


def quantize(w: np.ndarray, format: str, threads: int | None = None) -> np.ndarray:
    """GGUF blocks (rows, row bytes) uint8 of finite weights w (rows, cols): the reference's bytes, from C."""
    w = check_weights(w, format)
    n_threads = threads_for(threads)
    module = native()
    ffi, lib = module.ffi, module.lib
    rows, cols = w.shape
    out = np.empty((rows, reference.row_bytes(format, cols)), dtype=np.uint8)
    status = lib.wb_quant_quantize_f32(ffi.from_buffer("uint8_t[]", out, require_writable=True),
                                       ffi.from_buffer("float[]", w), format_id(format), rows, cols, n_threads)
    if status == lib.WB_ERR_BAD_ARGUMENT:
        raise ValueError(WEIGHTS_NOT_FINITE)
    check_status("wb_quant_quantize_f32", status)
    return out


def matmul(x: np.ndarray, tensor: QuantTensor, threads: int | None = None,
           activations: str = "float32") -> np.ndarray:
    """x (T, cols) float32 times W.T: (T, rows) float32, with x as it is ("float32") or rounded to int8 blocks."""
    check_mode(activations, tensor.format)
    n_threads = threads_for(threads)
    tensor.validate()
    check_activations(x, tensor.cols, finite=False)
    module = native()
    ffi, lib = module.ffi, module.lib
    T = x.shape[0]
    out = np.empty((T, tensor.rows), dtype=np.float32)
    scratch = workspace(T, tensor.cols)
    name = KERNELS[activations]
    status = getattr(lib, name)(
        ffi.from_buffer("float[]", out, require_writable=True), ffi.from_buffer("float[]", x),
        ffi.from_buffer("uint8_t[]", tensor.blocks), format_id(tensor), T, tensor.rows, tensor.cols,
        ffi.from_buffer("uint8_t[]", scratch, require_writable=True), scratch.size, n_threads)
    raise_for(name, status)
    return out


def quantize_activation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's rounding of x (T, cols): (xq int8 (T, cols), xd float32 (T, cols/32), xsum int32 (T, cols/32))."""
    check_activations(x, finite=False)
    module = native()
    ffi, lib = module.ffi, module.lib
    T, cols = x.shape
    xq = np.empty((T, cols), dtype=np.int8)
    xd = np.empty((T, cols // BLOCK), dtype=np.float32)
    xsum = np.empty((T, cols // BLOCK), dtype=np.int32)
    status = lib.wb_quant_quantize_x_f32(
        ffi.from_buffer("int8_t[]", xq, require_writable=True), ffi.from_buffer("float[]", xd, require_writable=True),
        ffi.from_buffer("int32_t[]", xsum, require_writable=True), ffi.from_buffer("float[]", x), T, cols)
    if status == lib.WB_ERR_BAD_ARGUMENT:
        raise ValueError(NOT_FINITE)
    check_status("wb_quant_quantize_x_f32", status)
    return xq, xd, xsum


def block_dots(tensor: QuantTensor, xq: np.ndarray, xsum: np.ndarray) -> np.ndarray:
    """The integer part of every block product with one quantised row (xq (cols,) int8, xsum (cols/32,) int32),
    computed by this build's integer kernel: (rows, cols/32) int32. Q8_0, Q4_0 and Q4_1 only."""
    tensor.validate()
    reference.require_int8_format(tensor.format)
    nb = tensor.cols // BLOCK
    for array, dtype, shape, name in ((xq, np.int8, (tensor.cols,), "xq"), (xsum, np.int32, (nb,), "xsum")):
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
            raise ValueError(f"{name} must be a {np.dtype(dtype)} array of shape {shape}")
        if not array.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
    module = native()
    ffi, lib = module.ffi, module.lib
    out = np.empty((tensor.rows, nb), dtype=np.int32)
    status = lib.wb_quant_block_dots_i32(
        ffi.from_buffer("int32_t[]", out, require_writable=True), ffi.from_buffer("uint8_t[]", tensor.blocks),
        format_id(tensor), ffi.from_buffer("int8_t[]", xq), ffi.from_buffer("int32_t[]", xsum),
        tensor.rows, tensor.cols)
    check_status("wb_quant_block_dots_i32", status)
    return out
