"""Quantised weights: GGUF's block formats Q8_0, Q4_0 and Q4_1, and the product a decoder runs per token.

A model file such as SmolLM2-135M-Instruct's GGUF keeps its matrices as
blocks of 32 weights with one or two fp16 numbers each (reference.py explains
the layouts; 8.5, 4.5 and 5.0 bits per weight)::

    from gguf import GGUFReader
    tensors = {t.name: t for t in GGUFReader(path).tensors}
    w = QuantTensor.from_gguf(tensors["blk.0.ffn_up.weight"])  # Q4_1 1536x576, 552,960 bytes
    y = matmul(x, w)                                           # x (T, 576) float32 -> y (T, 1536)
    W = dequantize(w)                                          # (1536, 576) float32

``backend="native"`` (what "auto" picks where the C kernels load) is
llama.cpp's way: each block of 32 activations is rounded to int8 with one
scale and every block product is an integer dot product, so it reads the
weights as stored, 3.8-7x fewer bytes than fp32. ``backend="reference"`` is the
NumPy version: dequantise, then x @ W.T in float32; it does *not* round x, so
the two differ by that rounding. Each output moves by at most
``reference.rounding_bound(x, W)`` (half a step of x's int8 grid times the
weights' magnitudes, block by block), plus float32 summation error, which
tests/test_quant.py checks on real and random tensors. On SmolLM2's
projections with inputs made from real token embeddings the difference is
0.4-1.6% of the output's norm (native/src/wb_quant.c says how that was
measured), the order of the weights' own 4-bit rounding.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from workbench_engines.backends import Choice, resolve
from workbench_engines.quant import reference
from workbench_engines.quant.reference import BLOCK, FORMATS, bits_per_weight
from workbench_engines.quant.tensor import QuantTensor, check_activations

BACKENDS = ("native", "reference")


@cache
def choose_backend(backend: str = "auto") -> Choice:
    """The backend that runs: ``backend`` itself, or for "auto" the C kernels where they load, else NumPy.

    Cached: whether the C kernels loaded is settled once per process, and a
    decoder asks hundreds of times per token.
    """
    return resolve(backend, offers=BACKENDS)


def _tensor(tensor: object) -> QuantTensor:
    if not isinstance(tensor, QuantTensor):
        raise TypeError(f"expected a QuantTensor (QuantTensor.from_gguf(...)), got {type(tensor).__name__}")
    return tensor


def dequantize(tensor: QuantTensor, *, backend: str = "auto", threads: int | None = None) -> np.ndarray:
    """W as float32 (rows, cols); both backends give exactly gguf.quants.dequantize's bits."""
    tensor = _tensor(tensor)
    if choose_backend(backend).name == "native":
        from workbench_engines.quant import native

        return native.dequantize(tensor, threads)
    tensor.validate()
    return reference.dequantize(tensor.blocks, tensor.format)


def matmul(x: np.ndarray, tensor: QuantTensor, *, backend: str = "auto", threads: int | None = None) -> np.ndarray:
    """y = x @ W.T for x (cols,) or (T, cols) float32, C-contiguous and finite: (rows,) or (T, rows) float32.

    native rounds x to int8 blocks (decoding is T = 1; a short prefill is
    T > 1 and reads each weight once per 8 rows of x); reference does not.
    ``threads`` (native only) splits the output rows; the result does not
    depend on it. Bad input raises TypeError or ValueError on either backend.
    """
    tensor = _tensor(tensor)
    if not isinstance(x, np.ndarray) or x.ndim not in (1, 2):
        raise ValueError(f"x must be a (cols,) or (T, cols) numpy array, got {getattr(x, 'shape', type(x).__name__)}")
    rows2d = x.reshape(1, -1) if x.ndim == 1 else x
    if choose_backend(backend).name == "native":
        from workbench_engines.quant import native

        y = native.matmul(rows2d, tensor, threads)
    else:
        tensor.validate()
        check_activations(rows2d, tensor.cols)
        y = reference.matmul(rows2d, tensor.blocks, tensor.format)
    return y[0] if x.ndim == 1 else y


def quantize(w: np.ndarray, format: str, name: str = "") -> QuantTensor:
    """Float weights (rows, cols) as a QuantTensor, with ggml's round-to-nearest (bytes as gguf.quants gives)."""
    return QuantTensor.quantize(w, format, name)


__all__ = [
    "BACKENDS",
    "BLOCK",
    "FORMATS",
    "QuantTensor",
    "bits_per_weight",
    "choose_backend",
    "dequantize",
    "matmul",
    "quantize",
]
