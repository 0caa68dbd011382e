"""Softmax, log-softmax and logsumexp in NumPy: the version the lesson explains.

Subtracting the row maximum first is the whole trick. exp(1000) overflows
float32, but softmax is unchanged by adding a constant to every logit, so we
shift the largest logit to 0 and every exponent lands in (0, 1]:

    softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j

>>> softmax(np.array([1000.0, 1000.0], dtype=np.float32))
array([0.5, 0.5], dtype=float32)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis, stably; an all -inf row gives -inf.

    Args:
        x: (..., C) floating array.

    Returns:
        (...,) array of the same dtype.
    """
    m = np.max(x, axis=-1, keepdims=True, initial=-np.inf)  # (..., 1)
    # A row of all -inf would give (-inf) - (-inf) = nan; shift it by 0 instead.
    m = np.where(np.isneginf(m), 0, m)
    with np.errstate(divide="ignore"):
        out = m[..., 0] + np.log(np.sum(np.exp(x - m), axis=-1))
    return out.astype(x.dtype, copy=False)


def softmax(x: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis: exp(x - max) / sum(exp(x - max)).

    Args:
        x: (..., C) floating array of logits.

    Returns:
        (..., C) array of the same dtype whose rows sum to 1.
    """
    if x.shape[-1] == 0:
        return x.copy()
    m = np.max(x, axis=-1, keepdims=True)  # (..., 1)
    with np.errstate(invalid="ignore"):
        e = np.exp(x - m)  # (..., C), every entry in [0, 1]
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(x.dtype, copy=False)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis: (x - max) - log(sum(exp(x - max))).

    Args:
        x: (..., C) floating array of logits.

    Returns:
        (..., C) array of the same dtype.
    """
    if x.shape[-1] == 0:
        return x.copy()
    m = np.max(x, axis=-1, keepdims=True)  # (..., 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shifted = x - m  # (..., C), largest entry 0
        # (x - m) - log(sum) keeps the small differences that x - (m + log(sum)) rounds away.
        return (shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))).astype(x.dtype, copy=False)


def naive_softmax(x: np.ndarray) -> np.ndarray:
    """exp(x) / sum(exp(x)) without the shift: overflows for large logits.

    Kept so the lesson can show the failure the stable form avoids.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return (e / np.sum(e, axis=-1, keepdims=True)).astype(x.dtype, copy=False)


@dataclass(frozen=True)
class NaiveVersusStable:
    """One row of logits through the naive and the stable softmax, and what went wrong, if anything."""

    logits: np.ndarray
    """(C,) the logits as given."""
    exps: np.ndarray
    """(C,) exp(logits) without the shift: inf where it overflowed, 0 where it underflowed."""
    naive: np.ndarray
    """(C,) exp(x) / sum(exp(x))."""
    stable: np.ndarray
    """(C,) exp(x - max) / sum(exp(x - max))."""

    @property
    def failure(self) -> str | None:
        """Why the naive softmax failed: "overflow" (inf / inf), "underflow" (0 / 0), or None."""
        if np.all(np.isfinite(self.naive)):
            return None
        return "overflow" if np.any(np.isinf(self.exps)) else "underflow"


def naive_versus_stable(x: np.ndarray) -> NaiveVersusStable:
    """Both softmaxes of a (C,) row, for the lesson that shows why the shift matters.

    float32 exp overflows above x ≈ 88.7 (to inf, and inf / inf = nan) and
    underflows below x ≈ -103.9 (to 0, and 0 / 0 = nan); the shift puts the
    largest exponent at exp(0) = 1, so neither can happen to the stable form.
    """
    with np.errstate(over="ignore", under="ignore"):
        exps = np.exp(x)
    return NaiveVersusStable(x, exps, naive_softmax(x), softmax(x))
