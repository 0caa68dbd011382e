"""Causal linear attention (Katharopoulos et al., 2020, "Transformers are RNNs", §3.2-3.4), two ways, in NumPy.

Softmax attention weighs value j for query i by exp(q_i . k_j); linear attention
replaces that similarity by a product of feature maps, phi(q_i) . phi(k_j), with
phi(x) = elu(x) + 1 (positive, so the weights are). The causal output (§3.3) is

    out_i = sum_{j<=i} (phi(q_i) . phi(k_j)) v_j  /  sum_{j<=i} phi(q_i) . phi(k_j)

Computed in parallel, that is softmax attention's shape: a (T, T) matrix
phi(Q) phi(K)^T under the causal mask, times V, each row divided by its sum.
Because phi(q_i) factors out of both sums, it is also a recurrence (§3.4, the paper's RNN form):

    S_i = S_{i-1} + phi(k_i) v_i^T     (HS x HV)      z_i = z_{i-1} + phi(k_i)     (HS)
    out_i = phi(q_i)^T S_i / phi(q_i) . z_i

one token at a time in constant memory: the state (S, z) replaces the KV cache,
whose size grows with the context. Both give the same numbers up to float
rounding (tests/test_longctx.py). The softmax reference below is what linear
attention is compared with, per decoded token; :func:`state_bytes` gives each
method's memory per layer against context length.

Shapes: q, k (..., T, HS); v (..., T, HV), any leading axes (batch, heads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workbench_engines.arrays import require_array, require_floating, require_int


def feature_map(x: np.ndarray) -> np.ndarray:
    """phi(x) = elu(x) + 1: x + 1 for x > 0, e^x otherwise; positive everywhere (eq. 7 of the paper)."""
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def _qkv(q, k, v) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for x, name in ((q, "q"), (k, "k"), (v, "v")):
        require_floating(require_array(x, name), name)
        if x.ndim < 2:
            raise ValueError(f"{name} must have shape (..., T, features), got {x.shape}")
    if q.shape != k.shape or v.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"q and k must share a shape (..., T, HS) and v (..., T, HV) its leading axes; "
                         f"got q {q.shape}, k {k.shape}, v {v.shape}")
    return q, k, v


def parallel(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal linear attention as one masked matrix product (§3.3): all T outputs at once, O(T^2) memory."""
    q, k, v = _qkv(q, k, v)
    weights = np.tril(feature_map(q) @ np.swapaxes(feature_map(k), -1, -2))  # (..., T, T), zero above the diagonal
    return (weights @ v) / weights.sum(axis=-1, keepdims=True)  # (..., T, HV)


@dataclass(frozen=True)
class LinearState:
    """What linear attention keeps between tokens: S = sum phi(k) v^T (..., HS, HV) and z = sum phi(k) (..., HS)."""

    S: np.ndarray
    z: np.ndarray

    @classmethod
    def empty(cls, leading: tuple[int, ...], hs: int, hv: int, dtype=np.float64) -> LinearState:
        return cls(np.zeros((*leading, hs, hv), dtype), np.zeros((*leading, hs), dtype))

    @property
    def nbytes(self) -> int:
        return self.S.nbytes + self.z.nbytes


def step(state: LinearState, q_t: np.ndarray, k_t: np.ndarray, v_t: np.ndarray) -> tuple[np.ndarray, LinearState]:
    """One token of the recurrence (§3.4): fold (k_t, v_t) into the state, read it with q_t.

    q_t, k_t (..., HS); v_t (..., HV). Returns the output (..., HV) and the new
    state; the old one is left as it was. Its cost does not depend on how many
    tokens came before.
    """
    phi_k = feature_map(k_t)
    S = state.S + phi_k[..., :, None] * v_t[..., None, :]  # (..., HS, HV): S_t = S_{t-1} + phi(k_t) v_t^T
    z = state.z + phi_k  # (..., HS)
    phi_q = feature_map(q_t)
    numerator = (phi_q[..., None, :] @ S)[..., 0, :]  # (..., HV)
    return numerator / (phi_q * z).sum(axis=-1, keepdims=True), LinearState(S, z)


def recurrent(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal linear attention one token at a time through :func:`step`: constant memory, the RNN view."""
    q, k, v = _qkv(q, k, v)
    dtype = np.result_type(q, k, v)
    state = LinearState.empty(q.shape[:-2], q.shape[-1], v.shape[-1], dtype)
    out = np.empty(v.shape, dtype)
    for t in range(q.shape[-2]):
        out[..., t, :], state = step(state, q[..., t, :], k[..., t, :], v[..., t, :])
    return out


# ---------------------------------------------------------------- softmax attention, the comparison


def causal_softmax(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal softmax attention, softmax(Q K^T / sqrt(HS) + mask) V: the O(T^2) original linear attention replaces."""
    q, k, v = _qkv(q, k, v)
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])  # (..., T, T)
    t = q.shape[-2]
    scores = np.where(np.tri(t, dtype=bool), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def softmax_decode_step(q_t: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray) -> np.ndarray:
    """One decoded token of softmax attention: q_t (..., HS) against every cached key (..., T, HS) and value.

    Reads the whole cache, so its cost grows with T; a sliding window passes
    the cache's last W rows (``k_cache[..., -W:, :]``, a view).
    """
    scores = (k_cache @ q_t[..., :, None])[..., 0] / math.sqrt(q_t.shape[-1])  # (..., T)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights[..., None, :] @ v_cache)[..., 0, :] / weights.sum(axis=-1, keepdims=True)  # (..., HV)


# ---------------------------------------------------------------- memory per layer


@dataclass(frozen=True)
class LayerShape:
    """The sizes :func:`state_bytes` counts with; defaults: 8 heads of 64 (a 512-wide attention layer), a 4096
    window, and Mamba-130m's scan (d_inner 1536, d_state 16), in float32."""

    heads: int = 8
    head_dim: int = 64
    window: int = 4096
    d_inner: int = 1536
    d_state: int = 16
    bytes_per_value: int = 4


def state_bytes(context: int, shape: LayerShape = LayerShape()) -> dict[str, int]:
    """Bytes one layer keeps to decode the next token after ``context`` tokens, per method:

    - ``kv cache``: softmax attention keeps every past key and value,
      2 x heads x head_dim x context values: linear in the context.
    - ``sliding window``: only the last W of them, 2 x heads x head_dim x min(context, W).
    - ``linear attention``: S (head_dim x head_dim) and z (head_dim) per head,
      heads x (head_dim^2 + head_dim): constant.
    - ``selective scan``: the state h, d_inner x d_state: constant. (A Mamba
      block also keeps its causal convolution's last d_conv - 1 = 3 inputs per
      channel, d_inner x 3 values more; not counted here, as no KV cache
      counts the projections either.)
    """
    context = require_int(context, "context", low=0)
    s, b = shape, shape.bytes_per_value
    per_token = 2 * s.heads * s.head_dim
    return {
        "kv cache": per_token * context * b,
        "sliding window": per_token * min(context, s.window) * b,
        "linear attention": s.heads * (s.head_dim * s.head_dim + s.head_dim) * b,
        "selective scan": s.d_inner * s.d_state * b,
    }
