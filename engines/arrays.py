"""Checks that run before any array reaches a kernel: type, dtype, layout."""

from __future__ import annotations

import numpy as np


def require_array(x: object, name: str) -> np.ndarray:
    """Return x if it is a NumPy array, else raise TypeError naming the argument."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    return x


def require_floating(x: np.ndarray, name: str) -> None:
    """Raise TypeError unless x holds floating-point numbers."""
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")


def as_rows_f32(x: object, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """View a C-contiguous float32 array of rank >= 1 as (rows, cols).

    Returns the 2-D view and the original shape. Raises TypeError for a wrong
    type or dtype and ValueError for rank 0 or a non-contiguous layout, so no
    bad pointer ever reaches C.
    """
    x = require_array(x, name)
    if x.dtype != np.float32:
        raise TypeError(
            f"{name} must be float32 for the native kernel, got {x.dtype}; "
            f"convert with {name}.astype(np.float32)"
        )
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    if not x.flags.c_contiguous:
        raise ValueError(
            f"{name} must be C-contiguous for the native kernel (strides {x.strides}); "
            f"copy it with np.ascontiguousarray({name})"
        )
    cols = x.shape[-1]
    rows = x.size // cols if cols else int(np.prod(x.shape[:-1]))
    return x.reshape(rows, cols), x.shape
