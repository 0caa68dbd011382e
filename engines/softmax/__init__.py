"""Softmax family: turning logits into probabilities, stably, on several backends.

``softmax``, ``log_softmax`` and ``logsumexp`` act on the last axis and take
``backend="reference" | "native" | "torch" | "auto"``: the NumPy code the
lesson explains, the C kernels, torch for comparison, or whichever of the
first two can take the input here (:func:`choose_backend` says which and why). Results agree within float32
tolerance (see tests/test_softmax.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from workbench_engines.arrays import require_array, require_floating
from workbench_engines.backends import Choice, resolve
from workbench_engines.profiling.profile import Profile, measure
from workbench_engines.softmax import reference

BACKENDS = ("reference", "native", "torch")
OPS = ("softmax", "log_softmax", "logsumexp")

# Counted per element: max compare, subtract, exp, add to the sum, scale.
FLOPS_PER_ELEMENT = 5


def choose_backend(x: np.ndarray, backend: str = "auto") -> Choice:
    """The backend that runs on x: ``backend`` itself, or for "auto" the C kernels where they
    load and take x (float32, C-contiguous), else the NumPy reference."""
    if backend != "auto":
        return Choice(backend, "asked for")
    unsupported = {}
    if x.dtype != np.float32:
        unsupported["native"] = f"the C kernels take float32, not {x.dtype}"
    elif not x.flags.c_contiguous:
        unsupported["native"] = "the C kernels take C-contiguous arrays"
    return resolve("auto", offers=("native", "reference"), unsupported=unsupported)


def _pick(op: str, backend: str, threads: int | None, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; choose one of {', '.join(OPS)}")
    backend = choose_backend(x, backend).name
    if backend == "reference":
        return getattr(reference, op)
    if backend == "native":
        from workbench_engines.softmax import native

        kernel = getattr(native, op)
        return lambda x: kernel(x, threads=threads)
    if backend == "torch":
        from workbench_engines.softmax import torch_backend

        return getattr(torch_backend, op)
    raise ValueError(f"unknown backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}")


def _validated(x: object) -> np.ndarray:
    x = require_array(x, "x")
    require_floating(x, "x")
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension, got a scalar")
    return x


def softmax(x: np.ndarray, *, backend: str = "reference", threads: int | None = None) -> np.ndarray:
    """Probabilities over the last axis of x (..., C); rows sum to 1."""
    x = _validated(x)
    return _pick("softmax", backend, threads, x)(x)


def log_softmax(x: np.ndarray, *, backend: str = "reference", threads: int | None = None) -> np.ndarray:
    """Log-probabilities over the last axis of x (..., C)."""
    x = _validated(x)
    return _pick("log_softmax", backend, threads, x)(x)


def logsumexp(x: np.ndarray, *, backend: str = "reference", threads: int | None = None) -> np.ndarray:
    """log(sum(exp(x))) over the last axis of x (..., C), giving shape (...)."""
    x = _validated(x)
    return _pick("logsumexp", backend, threads, x)(x)


def with_temperature(logits: np.ndarray, temperature: float, *, backend: str = "reference") -> np.ndarray:
    """softmax(logits / T): T < 1 sharpens the distribution, T > 1 flattens it.

    T must be positive; the T -> 0 limit is greedy (all mass on the argmax),
    which callers take explicitly rather than dividing by zero.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = _validated(logits)
    return softmax((logits / np.asarray(temperature, dtype=logits.dtype)), backend=backend)


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Shannon entropy H(p) = -sum p log2 p over the last axis, in bits (0 log 0 = 0)."""
    p = _validated(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -np.sum(terms, axis=-1)


def profile(
    op: str,
    x: np.ndarray,
    *,
    backend: str,
    threads: int | None = None,
    repeats: int = 5,
) -> tuple[np.ndarray, Profile]:
    """Run op on x with backend, timed over repeats; return the output and its Profile.

    FLOPs are counted as FLOPS_PER_ELEMENT per element; bytes as one read of
    x and one write of the output (the least traffic any implementation needs).
    """
    x = _validated(x)
    backend = choose_backend(x, backend).name
    fn = _pick(op, backend, threads, x)
    out_elems = x.size if op != "logsumexp" else x.size // max(1, x.shape[-1])
    out, prof = measure(
        lambda: fn(x),
        backend=backend,
        flops=FLOPS_PER_ELEMENT * x.size,
        bytes_moved=x.nbytes + out_elems * x.itemsize,
        repeats=repeats,
        # tracemalloc can't see torch's allocator: report nothing rather than 0.
        track_memory=backend != "torch",
        extra={"op": op, "shape": x.shape, "threads": threads},
    )
    return out, prof  # type: ignore[return-value]


__all__ = [
    "BACKENDS",
    "OPS",
    "choose_backend",
    "entropy_bits",
    "log_softmax",
    "logsumexp",
    "profile",
    "softmax",
    "with_temperature",
]
