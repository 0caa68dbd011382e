"""Checks that run before any array reaches a kernel: type, dtype, layout."""

from __future__ import annotations

import numbers

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


INT64_MAX = 2**63 - 1


def require_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """value as a Python int, the one integer check every engine uses before a number reaches C.

    TypeError for anything that is not an integer, bools included (True is no
    count, and C would truncate 1.7 to 1); ValueError outside [low, high].
    A plain int takes the fast path: this runs on every decoded token.
    """
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {_bounds(low, high)}, got {value}")
    return value


def require_int_array(a: object, name: str, *, low: int | None = None, high: int | None = None) -> np.ndarray:
    """a as a C-contiguous int64 array: require_int for every element at once.

    TypeError unless a holds integers (bools and floats refused: a NaN id
    would become a large negative number); an empty list, which NumPy makes
    float64, passes. ValueError if any element lies outside [low, high].
    """
    if hasattr(a, "numpy") and not isinstance(a, np.ndarray):
        a = a.numpy()  # a CPU torch tensor, without importing torch here
    array = np.asarray(a)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or (array.size == 0 and array.dtype == np.float64)):
        raise TypeError(f"{name} must hold integers, got {array.dtype}")
    top = INT64_MAX if high is None else min(high, INT64_MAX)  # a uint64 past int64 would wrap to a negative id
    if array.size and ((low is not None and array.min() < low) or array.max() > top):
        raise ValueError(f"{name} must each be an integer {_bounds(low, top)}, got values from {array.min()} "
                         f"to {array.max()}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _bounds(low: int | None, high: int | None) -> str:
    if high is None:
        return f">= {low}"
    if low is None:
        return f"<= {high}"
    return f"from {low} to {high}"
