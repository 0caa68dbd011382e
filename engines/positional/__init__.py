"""Positional encodings: how a model that sees a set of vectors learns their order.

- sinusoidal (Vaswani et al., 2017, section 3.5): fixed sines and cosines added
  to the embeddings;
- learned: a trainable table, one row per position (GPT-2, BERT);
- RoPE (Su et al., 2021): rotate query and key pairs by a position-dependent
  angle, so q·k depends on the distance only; with linear scaling (position
  interpolation, Chen et al., 2023) and NTK-aware scaling of the base
  (bloc97, 2023) to stretch the context. Two layouts pair the dimensions
  differently: "interleaved" rotates (x[2i], x[2i+1]) as the RoFormer paper
  and Meta's Llama code do (and llama.cpp, so GGUF files store Q and K for
  it), "half" rotates (x[i], x[i + HS/2]) as Hugging Face's Llama does.
  The same weights give the same attention in either layout once the rows of
  W_q and W_k are permuted (:func:`rope_permutation`);
- ALiBi (Press et al., 2022): no encoding at all, a per-head penalty
  proportional to distance added to the attention scores.
"""

from __future__ import annotations

import math

import numpy as np

from workbench_engines.errors import EngineError


def _positions(n: int) -> np.ndarray:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise EngineError(f"the number of positions must be a non-negative integer, got {n!r}")
    return np.arange(n, dtype=np.float64)


def _even_dim(dim: int) -> None:
    if not isinstance(dim, (int, np.integer)) or dim < 2 or dim % 2:
        raise EngineError(f"the dimension must be an even integer >= 2, got {dim!r}")


def sinusoidal(n_positions: int, dim: int, base: float = 10000.0) -> np.ndarray:
    """[n, dim] with PE[p, 2i] = sin(p / base^(2i/dim)), PE[p, 2i+1] = cos(same)."""
    _even_dim(dim)
    pos = _positions(n_positions)[:, None]
    freq = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    out = np.empty((n_positions, dim), dtype=np.float64)
    out[:, 0::2] = np.sin(pos * freq)
    out[:, 1::2] = np.cos(pos * freq)
    return out.astype(np.float32)


def learned(n_positions: int, dim: int, rng: np.random.Generator | None = None, std: float = 0.02) -> np.ndarray:
    """A learned table as models start it: N(0, std²) per entry (GPT-2 uses 0.01–0.02)."""
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise EngineError(f"the dimension must be a positive integer, got {dim!r}")
    _positions(n_positions)
    rng = rng or np.random.default_rng()
    return (rng.standard_normal((n_positions, dim)) * std).astype(np.float32)


def rope_frequencies(dim: int, base: float = 10000.0, *, scaling: str | None = None, factor: float = 1.0,
                     original_context: int | None = None) -> tuple[np.ndarray, float]:
    """theta_i = base^(-2i/dim) for i < dim/2, and the factor positions are divided by.

    scaling="linear" divides positions by factor (position interpolation);
    scaling="ntk" keeps positions and raises the base to base·factor^(dim/(dim−2)),
    which stretches the low frequencies and leaves the highest almost alone.
    """
    _even_dim(dim)
    if factor <= 0:
        raise EngineError(f"the scaling factor must be positive, got {factor}")
    position_divisor = 1.0
    if scaling == "linear":
        position_divisor = factor
    elif scaling == "ntk":
        base = base * factor ** (dim / (dim - 2))
    elif scaling is not None:
        raise EngineError(f"unknown RoPE scaling {scaling!r}; choose linear or ntk")
    theta = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    return theta, position_divisor


ROPE_LAYOUTS = ("half", "interleaved")


def rope(x: np.ndarray, positions: np.ndarray | None = None, base: float = 10000.0, *,
         scaling: str | None = None, factor: float = 1.0, layout: str = "half") -> np.ndarray:
    """Rotate x [..., seq, dim]: pair i is turned by position · θ_i.

    layout "half" pairs x[i] with x[i + dim/2] (Hugging Face's rotate-half),
    "interleaved" pairs x[2i] with x[2i + 1] (RoFormer, Meta's Llama, llama.cpp);
    either way (a, b) → (a cos − b sin, b cos + a sin).
    """
    if layout not in ROPE_LAYOUTS:
        raise EngineError(f"unknown RoPE layout {layout!r}; choose one of {', '.join(ROPE_LAYOUTS)}")
    x = np.asarray(x)
    if x.ndim < 2:
        raise EngineError(f"x must be [..., seq, dim], got shape {x.shape}")
    dim = x.shape[-1]
    theta, divisor = rope_frequencies(dim, base, scaling=scaling, factor=factor)
    pos = np.arange(x.shape[-2], dtype=np.float64) if positions is None else np.asarray(positions, dtype=np.float64)
    if pos.shape != (x.shape[-2],):
        raise EngineError(f"positions must have shape ({x.shape[-2]},), got {pos.shape}")
    angle = (pos / divisor)[:, None] * theta
    cos, sin = np.cos(angle).astype(x.dtype), np.sin(angle).astype(x.dtype)
    if layout == "interleaved":
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, b * cos + a * sin
        return out
    x1, x2 = x[..., : dim // 2], x[..., dim // 2 :]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def rope_permutation(dim: int) -> np.ndarray:
    """The order of a head's dimensions that turns the "half" layout into the "interleaved" one.

    interleaved[j] = half[perm[j]]: perm = [0, dim/2, 1, dim/2 + 1, …], so
    rope(x[..., perm], layout="interleaved") == rope(x, layout="half")[..., perm].
    Converting a Hugging Face checkpoint to GGUF applies it to every head's
    rows of W_q and W_k (llama.cpp's convert script calls it ``permute``);
    loading a GGUF file for a rotate-half model applies the inverse,
    ``np.argsort(perm)``.
    """
    _even_dim(dim)
    return np.arange(dim).reshape(2, dim // 2).T.reshape(-1)


def alibi_slopes(heads: int) -> np.ndarray:
    """ALiBi's per-head slopes: a geometric sequence starting at 2^(−8/n) for n a power of two,
    with the paper's interleaving for other head counts."""
    if not isinstance(heads, (int, np.integer)) or heads < 1:
        raise EngineError(f"heads must be a positive integer, got {heads!r}")

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(heads).is_integer():
        return np.array(power_of_two(heads))
    closest = 2 ** math.floor(math.log2(heads))
    extra = power_of_two(2 * closest)[0::2][: heads - closest]
    return np.array(power_of_two(closest) + extra)


def alibi_bias(heads: int, lq: int, lk: int | None = None) -> np.ndarray:
    """[heads, lq, lk] bias −slope·(pos_q − j) for keys at or before the query (0 after)."""
    lk = lq if lk is None else lk
    pos = np.arange(lq)[:, None] + (lk - lq)
    distance = np.maximum(pos - np.arange(lk)[None, :], 0)
    return (-alibi_slopes(heads)[:, None, None] * distance[None]).astype(np.float32)
