"""Sampling the next token: temperature, top-k, top-p, min-p and repetition penalties.

Filters share one signature style, ``f(logits, ..., backend="reference" | "native" | "torch")``,
and return logits with removed tokens at -inf; bad parameters raise before
anything runs (k <= 0, p outside (0, 1], temperature <= 0, infinite, or so small its reciprocal is).
"""

from __future__ import annotations

import math

import numpy as np

from workbench_engines.arrays import require_array, require_floating
from workbench_engines.sampling import reference

BACKENDS = ("reference", "native", "torch")


def _logits(logits) -> np.ndarray:
    logits = require_array(logits, "logits")
    require_floating(logits, "logits")
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits need a non-empty last axis, got shape {logits.shape}")
    return logits


def _temperature(temperature: float) -> float:
    """temperature as a float, refused unless it is finite, > 0 and has a finite reciprocal (above ~5.6e-309)."""
    if not temperature > 0 or not math.isfinite(temperature) or not math.isfinite(1.0 / temperature):
        raise ValueError(f"temperature must be finite and > 0 (use greedy() for the T -> 0 limit), got {temperature}")
    return float(temperature)


def _backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def top_k(logits, k: int, *, backend: str = "reference", threads: int | None = None) -> np.ndarray:
    """Keep the k largest logits of each row (ties: lower index first)."""
    logits = _logits(logits)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if _backend(backend) == "native":
        from workbench_engines.sampling import native

        return native.top_k(logits, int(k), threads)
    if backend == "torch":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(logits))
        values, index = torch.topk(t, min(int(k), t.shape[-1]), dim=-1)
        return torch.full_like(t, float("-inf")).scatter_(-1, index, values).numpy()
    return reference.top_k(logits, min(int(k), logits.shape[-1]))


def top_p(logits, p: float, *, temperature: float = 1.0, backend: str = "reference",
          threads: int | None = None) -> np.ndarray:
    """Keep the smallest most-probable set with probability at least p (at least one token)."""
    logits = _logits(logits)
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    temperature = _temperature(temperature)
    if _backend(backend) == "native":
        from workbench_engines.sampling import native

        return native.top_p(logits, p, temperature, threads)
    if backend == "torch":
        return _torch_top_p(logits, p, temperature)
    return reference.top_p(logits, p, temperature)


def _torch_top_p(logits: np.ndarray, p: float, temperature: float) -> np.ndarray:
    """The sort-based top-p most code uses (as in HF transformers' TopPLogitsWarper), for comparison."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(logits))
    sorted_logits, order = torch.sort(t, descending=True, stable=True, dim=-1)
    cumulative = torch.softmax(sorted_logits / temperature, dim=-1).cumsum(-1)
    # Remove tokens once the mass before them already reaches p.
    remove = (cumulative - torch.softmax(sorted_logits / temperature, dim=-1)) >= p
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.full_like(t, float("-inf")).scatter(-1, order, sorted_logits).numpy()


def min_p(logits, p_base: float, *, temperature: float = 1.0) -> np.ndarray:
    """Keep tokens with probability at least p_base × the most probable one's."""
    if not 0 < p_base <= 1:
        raise ValueError(f"min_p must be in (0, 1], got {p_base}")
    return reference.min_p(_logits(logits), p_base, _temperature(temperature))


def repetition_penalty(logits, previous, penalty: float) -> np.ndarray:
    """Make already generated tokens less likely (CTRL's rule); penalty >= 1."""
    if not penalty >= 1:
        raise ValueError(f"the repetition penalty must be >= 1, got {penalty}")
    return reference.repetition_penalty(_logits(logits), np.asarray(previous, dtype=np.int64), penalty)


def frequency_presence_penalty(logits, previous, frequency: float = 0.0, presence: float = 0.0) -> np.ndarray:
    return reference.frequency_presence_penalty(_logits(logits), np.asarray(previous, dtype=np.int64),
                                                frequency, presence)


def greedy(logits) -> np.ndarray:
    """The most likely token of each row: the temperature -> 0 limit of sampling."""
    return np.argmax(_logits(logits), axis=-1)


def sample(logits, rng: np.random.Generator, *, temperature: float = 1.0) -> np.ndarray:
    """Draw one token per row from softmax(logits / temperature)."""
    return reference.sample(_logits(logits), rng, _temperature(temperature))
