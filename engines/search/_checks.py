"""Checks every search entry point runs before a pointer reaches C: dtype, layout, shape, finiteness, k."""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import require_int
from workbench_engines.errors import EngineError
from workbench_engines.nativelib import check_threads

class BadInput(EngineError, ValueError):
    """Bad input to a search entry point: an EngineError, and a ValueError as the other engines raise."""


class BadType(EngineError, TypeError):
    """An argument of the wrong type or dtype: an EngineError, and a TypeError as the other engines raise."""


METRICS = ("ip", "l2")
"""ip: inner product, larger is nearer (the cosine on unit vectors); l2: squared Euclidean distance, smaller is nearer."""


def matrix(x: object, name: str, dim: int | None = None, *, allow_empty: bool = False) -> np.ndarray:
    """x itself if it is a C-contiguous, finite (rows, dim) float32 array; EngineError saying what is wrong otherwise."""
    if not isinstance(x, np.ndarray):
        raise BadType(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise BadType(f"{name} must be float32, got {x.dtype}; convert with {name}.astype(np.float32)")
    if x.ndim != 2:
        raise BadInput(f"{name} must be 2-D (rows, dim), got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise BadInput(f"{name} must be C-contiguous; copy it with np.ascontiguousarray({name})")
    if x.shape[1] < 1:
        raise BadInput(f"{name} has no columns (shape {x.shape})")
    if dim is not None and x.shape[1] != dim:
        raise BadInput(f"{name} has {x.shape[1]} dimensions, the index {dim}")
    if x.shape[0] == 0 and not allow_empty:
        raise BadInput(f"{name} is empty (shape {x.shape})")
    if not np.isfinite(x).all():
        raise BadInput(f"{name} holds NaN or infinite values")
    return x


def metric(name: object) -> str:
    if name not in METRICS:
        raise BadInput(f"metric must be one of {METRICS}, got {name!r}")
    return name  # type: ignore[return-value]


def integer(value: object, name: str, low: int | None = None, high: int | None = None) -> int:
    """require_int, raising BadType / BadInput (both EngineError) instead of TypeError / ValueError."""
    try:
        return require_int(value, name, low=low, high=high)
    except TypeError as exc:
        raise BadType(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(str(exc)) from exc


def top_k(k: object, n: int, *, native_limit: bool = True) -> int:
    """k as an int in 1..n, and at most WB_SEARCH_MAX_K for the C kernels: there must be k vectors to return."""
    if n == 0:
        raise BadInput("the index is empty: add vectors before searching")
    k = integer(k, "k", low=1)
    if k > n:
        raise BadInput(f"k = {k} is larger than the {n} vectors searched")
    if not native_limit:
        return k
    from workbench_engines.nativelib import native

    limit = int(native().lib.WB_SEARCH_MAX_K)
    if k > limit:
        raise BadInput(f"k = {k} is above the kernels' limit WB_SEARCH_MAX_K = {limit}")
    return k


def threads(value: object) -> int:
    """nativelib.check_threads, raising BadType / BadInput (both EngineError) with its messages."""
    try:
        return check_threads(value)
    except TypeError as exc:
        raise BadType(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(str(exc)) from exc


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """x (N, D) float32 scaled to unit rows (zero rows stay zero): the inner product becomes the cosine."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0).astype(np.float32))
