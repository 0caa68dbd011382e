"""A quantised weight matrix as GGUF stores it, checked once so no kernel ever sees a bad one.

:class:`QuantTensor` is the format's name, the matrix's shape as the maths
sees it (W is rows x cols, and y = x @ W.T), and the block bytes exactly as
the file holds them, one row of blocks per matrix row. Nothing is copied:
``from_gguf`` keeps the reader's memory-mapped array.

GGUF lists a tensor's dimensions fastest-first (ne0 = cols, ne1 = rows), so
SmolLM2's blk.0.ffn_up.weight, shape [576, 1536] in the file, is a 1536 x 576
matrix here: 1536 rows of 18 Q4_1 blocks, 360 bytes a row. A Q6_K matrix's
rows are super-blocks of 256 weights (210 bytes each), so its cols are a
multiple of 256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench_engines.quant import reference
from workbench_engines.quant.reference import BLOCK, FORMATS, block_size, require_int8_format


NOT_CONTIGUOUS = "x must be C-contiguous (np.ascontiguousarray)"
NOT_FINITE = "x holds inf or nan; the quantised products take finite activations only"
WEIGHTS_NOT_FINITE = "w holds inf or nan (or values beyond float32's range); only finite weights can be quantised"

ACTIVATIONS = ("float32", "int8")
"""How a quantised product takes x: as it is (float32, the default), or rounded to int8 blocks (llama.cpp's way)."""


def check_mode(activations: object, format: str | None = None) -> None:
    """Raise ValueError unless ``activations`` is one of ACTIVATIONS (and, given a format, one it takes:
    int8 activations take Q8_0, Q4_0 and Q4_1 only)."""
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {', '.join(map(repr, ACTIVATIONS))}, got {activations!r}")
    if activations == "int8" and format is not None:
        require_int8_format(format)


def check_weights(w: object, format: str) -> np.ndarray:
    """Float weights to quantise as ``format``: a C-contiguous float32 (rows, cols) array, cols a multiple of
    the format's block (32, or 256 for Q6_K), every value finite. Raises ValueError (TypeError for a
    non-numeric array) before anything is computed."""
    size = block_size(format)  # ValueError naming the supported formats
    if isinstance(w, np.ndarray) and not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise TypeError(f"w must hold numbers (float32 preferred), got dtype {w.dtype}")
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused below
        w = np.ascontiguousarray(w, dtype=np.float32)
    if w.ndim != 2 or w.shape[1] % size:
        raise ValueError(f"w must be (rows, cols) with cols a multiple of {size} for {format}, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(WEIGHTS_NOT_FINITE)
    return w


def check_activations(x: object, cols: int | None = None, *, finite: bool = True) -> None:
    """Raise unless x is a (T, cols) C-contiguous float32 array (any whole blocks when cols is None)
    of finite values (``finite=False`` leaves that to the C kernel, which refuses inf and nan itself)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"x must be a float32 numpy array, got {got}; convert with x.astype(np.float32)")
    if x.ndim != 2 or (x.shape[1] != cols if cols is not None else x.shape[1] % BLOCK):
        want = f"(T, {cols})" if cols is not None else f"(T, cols) with cols a multiple of {BLOCK}"
        raise ValueError(f"x must be {want}, got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(NOT_CONTIGUOUS)
    if finite and not np.isfinite(x).all():
        raise ValueError(NOT_FINITE)


@dataclass(frozen=True)
class QuantTensor:
    """A weight matrix W (rows, cols) in one of GGUF's block formats.

    Raises (at construction, and again before any kernel call) ValueError for
    an unknown format, cols not a multiple of the block (32, or 256 for
    Q6_K), or blocks of the wrong
    shape (a truncated array says so), TypeError for blocks that are not a
    uint8 array.
    """

    format: str
    """One of FORMATS: Q8_0, Q4_0, Q4_1 or Q6_K."""
    shape: tuple[int, int]
    """(rows, cols): W's shape as the maths sees it."""
    blocks: np.ndarray
    """(rows, cols / block * block bytes) uint8, C-contiguous: the bytes as GGUF stores them."""
    name: str = ""

    def __post_init__(self) -> None:
        self.validate()

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def cols(self) -> int:
        return self.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes of the blocks: what one product with W reads."""
        return self.blocks.nbytes

    @property
    def bits_per_weight(self) -> float:
        return reference.bits_per_weight(self.format)

    def validate(self) -> None:
        """Raise unless format, shape and blocks agree; cheap enough to repeat before every kernel call."""
        dtype = reference.block_dtype(self.format)
        shape = self.shape
        if (not isinstance(shape, tuple) or len(shape) != 2
                or not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape)):
            raise ValueError(f"shape must be (rows, cols) of non-negative integers, got {shape!r}")
        rows, cols = shape
        size = block_size(self.format)
        if cols % size:
            raise ValueError(f"cols must be a multiple of {size} (whole {self.format} blocks), got {cols}")
        blocks = self.blocks
        if not isinstance(blocks, np.ndarray) or blocks.dtype != np.uint8:
            got = blocks.dtype if isinstance(blocks, np.ndarray) else type(blocks).__name__
            raise TypeError(f"blocks must be a uint8 numpy array, got {got}")
        want = (rows, cols // size * dtype.itemsize)
        if blocks.shape != want:
            if blocks.size < want[0] * want[1]:
                raise ValueError(f"blocks are truncated: {blocks.size} bytes, a {rows}x{cols} {self.format} "
                                 f"matrix needs {want[0] * want[1]} ({rows} rows of {want[1]} bytes)")
            raise ValueError(f"blocks must have shape {want} for a {rows}x{cols} {self.format} matrix, "
                             f"got {blocks.shape}")
        if not blocks.flags.c_contiguous:
            raise ValueError("blocks must be C-contiguous (np.ascontiguousarray)")

    def take_rows(self, rows: np.ndarray) -> QuantTensor:
        """The matrix of the given rows (an embedding lookup: token ids), as a new tensor of copied blocks."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.rows):
            raise ValueError(f"row ids must lie in [0, {self.rows}), got {rows.min()}..{rows.max()}")
        return QuantTensor(self.format, (len(rows), self.cols), np.ascontiguousarray(self.blocks[rows]), self.name)

    def with_rows(self, blocks: np.ndarray) -> QuantTensor:
        """The same format and width over other rows of blocks (reordered or stacked), checked like any other."""
        blocks = np.ascontiguousarray(blocks)
        return QuantTensor(self.format, (int(blocks.shape[0]), self.cols), blocks, self.name)

    def dequantized(self) -> np.ndarray:
        """W as float32 (rows, cols), through the NumPy reference."""
        return reference.dequantize(self.blocks, self.format)

    @classmethod
    def from_gguf(cls, tensor: Any) -> QuantTensor:
        """Wrap a ``gguf.GGUFReader`` tensor (its data stays memory-mapped).

        Raises ValueError naming the tensor and the supported formats for any
        other type (F32 norms, K-quants other than Q6_K such as Q5_K), or a shape that is not 2-D.
        """
        kind = tensor.tensor_type.name
        if kind not in FORMATS:
            raise ValueError(f"{tensor.name}: quantisation type {kind} is not supported; "
                             f"supported: {', '.join(FORMATS)}")
        dims = [int(n) for n in tensor.shape]
        if len(dims) != 2:
            raise ValueError(f"{tensor.name}: expected a 2-D weight matrix, got dimensions {dims}")
        cols, rows = dims  # GGUF lists ne0 (the contiguous one) first
        return cls(kind, (rows, cols), np.asarray(tensor.data), name=tensor.name)

    @classmethod
    def quantize(cls, w: np.ndarray, format: str, name: str = "") -> QuantTensor:
        """Quantise finite float weights (rows, cols) as ggml does (the NumPy reference); see check_weights."""
        w = check_weights(w, format)
        return cls(format, (int(w.shape[0]), int(w.shape[1])), reference.quantize(w, format), name=name)

    def __repr__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return (f"QuantTensor({label}{self.format} {self.rows}x{self.cols}, {self.nbytes:,} bytes, "
                f"{self.bits_per_weight} bits/weight)")
