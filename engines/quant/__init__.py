"""Quantised weights: GGUF's block formats Q8_0, Q4_0, Q4_1 and Q6_K, and the product a decoder runs per token.

A model file such as SmolLM2-135M-Instruct's GGUF keeps its matrices as
blocks of 32 weights with one or two fp16 numbers each (reference.py explains
the layouts; 8.5, 4.5 and 5.0 bits per weight); the K-quant Q6_K uses
super-blocks of 256 with 16 int8 sub-scales and one fp16 scale (6.5625 bits
per weight; q6_k.py)::

    from gguf import GGUFReader
    tensors = {t.name: t for t in GGUFReader(path).tensors}
    w = QuantTensor.from_gguf(tensors["blk.0.ffn_up.weight"])  # Q4_1 1536x576, 552,960 bytes
    y = matmul(x, w)                                           # x (T, 576) float32 -> y (T, 1536)
    W = dequantize(w)                                          # (1536, 576) float32
    up = PreparedQuant(w)                                      # checked once, for a decode loop: y = up(x)

Both products read the blocks as stored, 3.8-7x fewer bytes than fp32, and
differ in what they do with x (``activations=``):

- ``"float32"`` (the default) keeps x as it is and dequantises the weights in
  registers: the result is x @ W.T with W dequantised, to float32 round-off
  (at most ``reference.exact_bound(x, blocks, format)``, of the order of
  1e-6 of |x|·|W|).
- ``"int8"`` (Q8_0, Q4_0, Q4_1) is llama.cpp's way: each block of 32 activations is rounded to
  int8 with one scale and every block product is an integer dot product. Each
  output moves by up to ``reference.rounding_bound(x, W)``: 0.4-1.6% of the
  output's norm on SmolLM2's projections (native/src/wb_quant.c says how that
  was measured), enough to flip the top token where two are nearly tied.

``backend="native"`` (what "auto" picks where the C kernels load) runs
native/src/wb_quant.c; ``backend="reference"`` the NumPy statement of the same
product (``reference.matmul`` or ``reference.integer_matmul``).
tests/test_quant.py holds both to their bounds on real and random tensors.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from workbench_engines.backends import Choice, resolve
from workbench_engines.quant import reference
from workbench_engines.quant.prepared import PreparedQuant
from workbench_engines.quant.reference import BLOCK, FORMATS, INT8_FORMATS, bits_per_weight, block_size
from workbench_engines.quant.tensor import (ACTIVATIONS, NOT_CONTIGUOUS, QuantTensor, check_activations, check_mode,
                                            check_weights)

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


def matmul(x: np.ndarray, tensor: QuantTensor, *, backend: str = "auto", activations: str = "float32",
           threads: int | None = None) -> np.ndarray:
    """y = x @ W.T for x (cols,) or (T, cols) float32, C-contiguous and finite: (rows,) or (T, rows) float32.

    ``activations`` says what happens to x: "float32" uses it as it is,
    "int8" rounds it to int8 blocks first (decoding is T = 1; a short prefill
    is T > 1 and reads each weight once per 4 or 8 rows of x). ``threads``
    (native only) splits the output rows; the result does not depend on it.
    Everything is checked on every call; a decode loop wants
    :class:`PreparedQuant`. Bad input raises TypeError or ValueError on either backend.
    """
    tensor = _tensor(tensor)
    check_mode(activations, tensor.format)
    if not isinstance(x, np.ndarray) or x.ndim not in (1, 2):
        raise ValueError(f"x must be a (cols,) or (T, cols) numpy array, got {getattr(x, 'shape', type(x).__name__)}")
    if not x.flags.c_contiguous:  # a strided vector would be copied by the reshape below, not refused
        raise ValueError(NOT_CONTIGUOUS)
    rows2d = x.reshape(1, -1) if x.ndim == 1 else x
    if choose_backend(backend).name == "native":
        from workbench_engines.quant import native

        y = native.matmul(rows2d, tensor, threads, activations)
    else:
        tensor.validate()
        check_activations(rows2d, tensor.cols)
        product = reference.matmul if activations == "float32" else reference.integer_matmul
        y = product(rows2d, tensor.blocks, tensor.format)
    return y[0] if x.ndim == 1 else y


def quantize(w: np.ndarray, format: str, name: str = "", *, backend: str = "auto",
             threads: int | None = None) -> QuantTensor:
    """Finite float weights (rows, cols) as a QuantTensor, quantised as ggml's quantize_row_*_ref does.

    Both backends write the same bytes: gguf.quants.quantize's for Q8_0, Q4_0
    and Q4_1, and for Q6_K (which gguf.quants does not quantise) those of
    ggml's C with every operation rounded on its own (q6_k.py). cols must be a
    multiple of 32 (256 for Q6_K); inf or nan, an unknown format or a bad shape
    raise ValueError before any work. ``threads`` (native only) splits the rows.
    """
    if choose_backend(backend).name == "native":
        from workbench_engines.quant import native

        w = check_weights(w, format)
        return QuantTensor(format, w.shape, native.quantize(w, format, threads), name=name)
    return QuantTensor.quantize(w, format, name)


__all__ = [
    "ACTIVATIONS",
    "BACKENDS",
    "BLOCK",
    "FORMATS",
    "INT8_FORMATS",
    "PreparedQuant",
    "QuantTensor",
    "bits_per_weight",
    "block_size",
    "choose_backend",
    "dequantize",
    "matmul",
    "quantize",
]
