"""Mamba's selective scan (Gu & Dao, 2023, Algorithm 2, eq. 2a-2b): the NumPy reference and two torch versions.

A state-space layer keeps, per channel c, a state h of n numbers and updates it
once per token. In continuous time h' = A h + B u, y = C h; Mamba discretises
it with a step size delta by zero-order hold on A and (as its reference code,
``selective_scan_ref``, does) Euler on B:

    dA_t = exp(delta_t A)              dB_t u_t ~ delta_t B_t u_t
    h_t  = dA_t * h_{t-1} + delta_t B_t u_t        (n values per channel)
    y_t  = C_t . h_t + D u_t

"Selective" means delta, B and C depend on the input (they are projections of
it, made by the caller): the layer decides per token how much to remember
(delta small: h carries on; delta large: h is overwritten by the new input).
A (negative, one row of n per channel) sets how fast each state entry decays.

Shapes follow ``mamba_ssm.ops.selective_scan_interface.selective_scan_ref``:
u, delta (batch, d, L); A (d, n); B, C (batch, n, L); D (d,) optional;
``delta_softplus`` applies softplus to delta first (threshold 20, as torch);
returns y (batch, d, L), and with ``return_last_state`` also h_{L-1}
(batch, d, n), the state a decoder carries to the next token. An
``initial_state`` (batch, d, n) continues from a carried state (zeros if not
given), which makes one decoding step a scan of length 1.

Backends: ``reference`` (the loop below, the definition), ``native`` (the C
kernel, native/src/wb_scan.c, float32), ``torch`` with ``torch_method="loop"``
(selective_scan_ref's order: all dA and delta B u at once, then a loop over
time) or ``"parallel"`` (the log-space prefix sum of :func:`torch_parallel`).
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import require_array, require_floating, require_int

BACKENDS = ("reference", "native", "torch")
TORCH_METHODS = ("loop", "parallel")
SOFTPLUS_THRESHOLD = 20.0
"""Above it softplus(x) is x, as torch.nn.functional.softplus (and the C kernel) compute it."""


def check_inputs(u, delta, A, B, C, D=None, initial_state=None) -> tuple[int, int, int, int]:
    """(batch, d, L, n) of a scan's inputs, or ValueError/TypeError naming the one that does not fit."""
    arrays = {"u": u, "delta": delta, "A": A, "B": B, "C": C}
    arrays.update({name: x for name, x in (("D", D), ("initial_state", initial_state)) if x is not None})
    for name, x in arrays.items():
        require_floating(require_array(x, name), name)
    if u.ndim != 3:
        raise ValueError(f"u must have shape (batch, d, L), got {u.shape}")
    batch, d, L = u.shape
    if A.ndim != 2 or A.shape[0] != d or A.shape[1] < 1:
        raise ValueError(f"A must have shape (d, n) = ({d}, n >= 1), got {A.shape}")
    n = A.shape[1]
    expected = {"delta": (batch, d, L), "B": (batch, n, L), "C": (batch, n, L), "D": (d,),
                "initial_state": (batch, d, n)}
    for name, shape in expected.items():
        if name in arrays and arrays[name].shape != shape:
            raise ValueError(f"{name} must have shape {shape} (u is {u.shape}, A {A.shape}), got {arrays[name].shape}")
    return batch, d, L, n


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), or x itself above SOFTPLUS_THRESHOLD (where the two agree to float32)."""
    return np.where(x > SOFTPLUS_THRESHOLD, x, np.log1p(np.exp(np.minimum(x, SOFTPLUS_THRESHOLD))))


def reference(u, delta, A, B, C, D=None, *, delta_softplus: bool = False,
              initial_state=None) -> tuple[np.ndarray, np.ndarray]:
    """The recurrence as written, one step of time at a time for every channel at once: (y, last state).

    Computes in the inputs' precision (float64 inputs give the float64 answer the tests compare against).
    """
    batch, d, L, n = check_inputs(u, delta, A, B, C, D, initial_state)
    dtype = np.result_type(u, delta, A, B, C, np.float32)
    if delta_softplus:
        delta = softplus(delta)
    h = np.zeros((batch, d, n), dtype) if initial_state is None else initial_state.astype(dtype)  # (B, D, N)
    y = np.empty((batch, d, L), dtype)
    for t in range(L):
        dt = delta[:, :, t, None]  # (B, D, 1)
        dA = np.exp(dt * A)  # (B, D, N): zero-order hold of A
        dBu = dt * B[:, None, :, t] * u[:, :, t, None]  # (B, D, N): delta_t B_t u_t
        h = dA * h + dBu
        y[:, :, t] = np.einsum("bdn,bn->bd", h, C[:, :, t])  # C_t . h_t
    if D is not None:
        y += D[:, None] * u
    return y, h


def _tensors(*arrays):
    """NumPy arrays as torch tensors (shared memory; None stays None), all in one floating dtype."""
    import torch

    present = [x for x in arrays if x is not None]
    dtype = np.result_type(*present, np.float32)
    return [None if x is None else torch.from_numpy(np.ascontiguousarray(x, dtype=dtype)) for x in arrays]


def torch_loop(u, delta, A, B, C, D=None, *, delta_softplus: bool = False,
               initial_state=None) -> tuple[np.ndarray, np.ndarray]:
    """mamba's selective_scan_ref order in torch: dA and delta B u for every step at once (batch, d, L, n), then
    a Python loop over time doing one multiply-add and one contraction per step."""
    import torch

    batch, d, L, n = check_inputs(u, delta, A, B, C, D, initial_state)
    u, delta, A, B, C, D, h = _tensors(u, delta, A, B, C, D, initial_state)
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # (B, D, L, N)
    dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)  # (B, D, L, N)
    h = u.new_zeros((batch, d, n)) if h is None else h.clone()
    ys = []
    for t in range(L):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    y = torch.stack(ys, dim=2) if ys else u.new_zeros((batch, d, 0))
    if D is not None:
        y = y + D[:, None] * u
    return y.numpy(), h.numpy()


def torch_parallel(u, delta, A, B, C, D=None, *, delta_softplus: bool = False, initial_state=None,
                   chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The scan without a loop over steps: a prefix sum in log space within chunks, the state carried between.

    Unrolling the recurrence from a chunk's incoming state h_0, with the
    decay's running sum P_t = sum_{r<=t} delta_r A (inclusive, within the chunk):

        h_t = exp(P_t) h_0 + sum_{s<=t} exp(P_t - P_s) x_s,        x_s = delta_s B_s u_s

    (the sum is h_t = sum_{s<=t} exp(sum_{r=s+1..t} delta_r A) delta_s B_s u_s
    of the recurrence). Heinsen's trick ("Efficient Parallelization of a
    Ubiquitous Sequential Computation", 2023) takes the sum in log space,
    log sum_{s<=t} exp(log x_s - P_s) = logcumsumexp(log x - P), so exp(-P_s),
    which overflows within a few hundred steps, is never formed. x_s can be
    negative, so its positive and negative parts are summed separately (log 0
    is -inf, which logcumsumexp accepts). Chunks of ``chunk`` steps keep |P|
    small, so adding P_t back loses little precision in float32, and bound the
    (batch, d, n, chunk) temporaries; the loop is over L / chunk chunks, not L
    steps. It does several times the arithmetic of the recurrence: what a GPU
    can afford and a CPU, with the C kernel's one pass, need not. On a CPU
    the two logcumsumexp calls are most of its time (one took 56 ms for a
    (1, 1536, 16, 64) chunk on 2 threads of an AMD EPYC, 15x a cumsum).
    """
    import torch

    batch, d, L, n = check_inputs(u, delta, A, B, C, D, initial_state)
    chunk = require_int(chunk, "chunk", low=1)
    u, delta, A, B, C, D, h = _tensors(u, delta, A, B, C, D, initial_state)
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    h = u.new_zeros((batch, d, n)) if h is None else h.clone()
    ys = []
    for start in range(0, L, chunk):
        span = slice(start, start + chunk)
        dt = delta[:, :, span]  # (B, D, T)
        P = torch.cumsum(dt[:, :, None, :] * A[None, :, :, None], dim=-1)  # (B, D, N, T)
        x = (dt * u[:, :, span])[:, :, None, :] * B[:, None, :, span]  # (B, D, N, T)
        positive = torch.logcumsumexp(torch.log(x.clamp(min=0)) - P, dim=-1)
        negative = torch.logcumsumexp(torch.log((-x).clamp(min=0)) - P, dim=-1)
        hs = torch.exp(P) * h[..., None] + torch.exp(P + positive) - torch.exp(P + negative)  # (B, D, N, T)
        ys.append(torch.einsum("bdnt,bnt->bdt", hs, C[:, :, span]))
        h = hs[..., -1]
    y = torch.cat(ys, dim=2) if ys else u.new_zeros((batch, d, 0))
    if D is not None:
        y = y + D[:, None] * u
    return y.numpy(), h.contiguous().numpy()


def selective_scan(u, delta, A, B, C, D=None, *, delta_softplus: bool = False, initial_state=None,
                   return_last_state: bool = False, backend: str = "reference", torch_method: str = "loop",
                   threads: int | None = None):
    """y (batch, d, L), or (y, last state (batch, d, n)) with ``return_last_state``, from the chosen backend.

    Args:
        u, delta: (batch, d, L) inputs and step sizes (before softplus when ``delta_softplus``).
        A: (d, n) state matrix, one diagonal row per channel (negative for a state that decays).
        B, C: (batch, n, L) input and output projections, shared by the d channels.
        D: (d,) skip connection, or None.
        initial_state: (batch, d, n) state to continue from, or None for zeros.
        backend: "reference" (NumPy, the inputs' precision), "native" (C, float32) or "torch".
        torch_method: "loop" or "parallel", for backend="torch".
        threads: the C kernel's thread count (native only; None: nativelib.default_threads()).

    Raises TypeError/ValueError for inputs of the wrong type, dtype or shape
    (and, for ``native``, float64 inputs, non-contiguous ones, n above
    WB_SCAN_MAX_STATE or a bad thread count) before anything runs.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if torch_method not in TORCH_METHODS:
        raise ValueError(f"unknown torch_method {torch_method!r}; choose one of {', '.join(TORCH_METHODS)}")
    if not isinstance(delta_softplus, (bool, np.bool_)):
        raise TypeError(f"delta_softplus must be a bool, got {delta_softplus!r}")
    kwargs = {"delta_softplus": bool(delta_softplus), "initial_state": initial_state}
    if backend == "native":
        from workbench_engines.longctx import native

        y, last = native.selective_scan(u, delta, A, B, C, D, threads=threads, **kwargs)
    elif backend == "torch":
        y, last = (torch_loop if torch_method == "loop" else torch_parallel)(u, delta, A, B, C, D, **kwargs)
    else:
        y, last = reference(u, delta, A, B, C, D, **kwargs)
    return (y, last) if return_last_state else y
