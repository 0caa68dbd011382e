"""Cases for ``workbench bench longctx``: the selective scan raced, and what one decoded token costs per method.

1. The scan of one Mamba-130m-sized layer (d_inner 1536, d_state 16, 2048
   tokens, batch 1, delta through softplus as Mamba calls it): the C kernel
   at 1 and all threads, the torch loop (selective_scan_ref's order), the
   torch log-space parallel scan and the NumPy reference, every output
   checked against NumPy's to a float32 tolerance.
2. One decoding step per method against the context length (1k ... 64k):
   softmax attention over a KV cache of that length (8 heads of 64), over a
   sliding window of its last 4096 entries, the linear-attention recurrence
   step, and one step of the scan from a carried state. Each case's
   bytes_moved is the state or cache the step reads (its note says how big
   that is): the cache grows with the context, the window stops at 4096, and
   the two recurrent states stay the same size. Decode cases run on one
   thread (torch and NumPy's BLAS alike): the per-token cost, not a race for cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from workbench_engines.arrays import require_int
from workbench_engines.backends import available
from workbench_engines.longctx import linear_attention as la
from workbench_engines.longctx.scan import reference, selective_scan, torch_loop, torch_parallel
from workbench_engines.nativelib import default_threads
from workbench_engines.profiling.bench import Case, Contender, blas_threads, torch_threads

HEADS, HEAD_DIM, WINDOW = 8, 64, 4096
"""The attention layer the decode cases measure (the defaults of linear_attention.LayerShape)."""
MAMBA_130M = {"d": 1536, "n": 16, "L": 2048, "batch": 1}
"""Mamba-130m's scan: d_model 768 expanded twice, d_state 16; 2048 tokens."""
RTOL, ATOL = 1e-3, 1e-4
"""float32 against float32 NumPy: |got - expected| <= ATOL * max(1, max |expected|) + RTOL * |expected|."""


def _close(expected, got) -> str | None:
    """Every array of got within the float32 tolerance of expected's (tuples compared element by element)."""
    pairs = zip(expected, got) if isinstance(expected, tuple) else [(expected, got)]
    for e, g in pairs:
        e, g = np.asarray(e, np.float64), np.asarray(g, np.float64)
        if e.shape != g.shape:
            return f"shape {g.shape} != {e.shape}"
        scale = max(1.0, float(np.abs(e).max())) if e.size else 1.0
        excess = np.abs(g - e) - (ATOL * scale + RTOL * np.abs(e))
        if e.size and not excess.max() <= 0:
            return f"max |difference| {np.abs(g - e).max():.3g} (scale {scale:.3g}) beyond tolerance"
    return None


def mamba_like_inputs(rng: np.random.Generator, batch: int, d: int, L: int, n: int) -> dict[str, np.ndarray]:
    """Scan inputs shaped and scaled like a trained Mamba layer's, float32: A = -(1..n) per channel (S4D-real's
    initialisation) jittered, delta before softplus around -4 (step sizes near 0.02), D near 1."""
    A = -np.arange(1, n + 1, dtype=np.float64)[None, :] * rng.uniform(0.5, 1.5, (d, 1))
    arrays = {
        "u": rng.standard_normal((batch, d, L), dtype=np.float32),
        "delta": rng.standard_normal((batch, d, L), dtype=np.float32) - np.float32(4.0),
        "A": A,
        "B": rng.standard_normal((batch, n, L), dtype=np.float32),
        "C": rng.standard_normal((batch, n, L), dtype=np.float32),
        "D": 1.0 + 0.1 * rng.standard_normal(d),
    }
    return {name: x.astype(np.float32, copy=False) for name, x in arrays.items()}


def scan_case(quick: bool = False, *, d: int | None = None, L: int | None = None) -> Case:
    """The scan of one layer: C at 1 and all threads, torch loop and parallel, NumPy (the reference).

    ``d`` and ``L`` replace the layer's channels and length (the scan lab's knobs); the rest stays Mamba-130m's.
    """
    size = dict({"d": 16, "n": 16, "L": 96, "batch": 2} if quick else MAMBA_130M)
    if d is not None:
        size["d"] = require_int(d, "d", low=1)
    if L is not None:
        size["L"] = require_int(L, "L", low=1)
    batch, d, L, n = size["batch"], size["d"], size["L"], size["n"]
    x = mamba_like_inputs(np.random.default_rng(0), batch, d, L, n)
    args = (x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"])

    def y_of(fn):
        """The output y of fn(*args), which returns (y, last state)."""
        return lambda: fn(*args, delta_softplus=True)[0]

    threads = default_threads()
    contenders = [Contender("numpy 1T", y_of(reference), "reference")]
    if available("native"):
        for t in sorted({1, threads}):
            contenders.append(Contender(f"C {t}T", partial(selective_scan, *args, delta_softplus=True,
                                                           backend="native", threads=t), "native"))
    setup, teardown = torch_threads(threads)
    contenders.append(Contender(f"torch loop {threads}T", y_of(torch_loop), "torch", setup, teardown))
    setup, teardown = torch_threads(threads)
    contenders.append(Contender(f"torch parallel {threads}T", y_of(torch_parallel), "torch", setup, teardown))
    # Per state entry and step: dt*A, exp (not counted), e*h + dBu (2), du*B (1), C*h and its sum (2).
    flops = 6.0 * batch * d * L * n
    # Read u, delta (batch, d, L), B, C (batch, n, L) and A; write y.
    bytes_moved = 4.0 * (3 * batch * d * L + 2 * batch * n * L + d * n)
    return Case(f"selective scan, batch {batch}, d {d}, n {n}, L {L}", contenders, _close, "numpy 1T",
                tuple(c.name for c in contenders if c.backend == "torch") + ("numpy 1T",), flops=flops,
                bytes_moved=bytes_moved, per_run=(batch * L, "tokens"))


def size_text(n_bytes: float) -> str:
    """Bytes as the decode cases' notes and the decode lab write them: MiB with two decimals from 1 MiB, KiB with
    one below."""
    return f"{n_bytes / 2**20:,.2f} MiB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:,.1f} KiB"


def _mib(n_bytes: float) -> str:
    return f"state {size_text(n_bytes)}"


def _one_thread() -> tuple:
    """(setup, teardown) pinning torch and NumPy's BLAS to one thread together."""
    t_setup, t_teardown = torch_threads(1)
    b_setup, b_teardown = blas_threads(1)

    def setup() -> None:
        t_setup()
        b_setup()

    def teardown() -> None:
        b_teardown()
        t_teardown()

    return setup, teardown


def _sdpa_step(q, k, v):
    import torch

    return torch.nn.functional.scaled_dot_product_attention(q, k, v)[..., 0, :].numpy()


def _attention_cases(context: int, rng: np.random.Generator, k: np.ndarray, v: np.ndarray) -> list[Case]:
    """Softmax decode over the full cache k, v (HEADS, context, HEAD_DIM) and over its last WINDOW entries, NumPy
    and torch SDPA."""
    import torch

    q = rng.standard_normal((HEADS, HEAD_DIM), dtype=np.float32)
    tq, tk, tv = (torch.from_numpy(a) for a in (q[:, None, :], k, v))
    cases = []
    for label, kept in (("softmax, KV cache", context), (f"sliding window {WINDOW}", min(context, WINDOW))):
        k_seen, v_seen, tk_seen, tv_seen = k[:, -kept:], v[:, -kept:], tk[:, -kept:], tv[:, -kept:]
        n_bytes = k_seen.nbytes + v_seen.nbytes
        contenders = [Contender("numpy 1T", partial(la.softmax_decode_step, q, k_seen, v_seen), "reference",
                                *_one_thread(), note=_mib(n_bytes)),
                      Contender("torch SDPA 1T", partial(_sdpa_step, tq, tk_seen, tv_seen), "torch", *_one_thread(),
                                note=_mib(n_bytes))]
        cases.append(Case(f"decode {label}, context {context:,}", contenders, _close, "numpy 1T", ("numpy 1T",),
                          flops=4.0 * HEADS * kept * HEAD_DIM, bytes_moved=n_bytes))
    return cases


def _torch_linear_step(S, z, q, k, v):
    import torch

    phi_k, phi_q = torch.nn.functional.elu(k) + 1, torch.nn.functional.elu(q) + 1
    S = S + phi_k[:, :, None] * v[:, None, :]
    z = z + phi_k
    return (torch.einsum("hd,hdv->hv", phi_q, S) / (phi_q * z).sum(-1, keepdim=True)).numpy()


def _linear_case(context: int, rng: np.random.Generator, keys: np.ndarray, values: np.ndarray) -> Case:
    """One step of the recurrence from the state the same ``context`` keys and values build
    (S = phi(K)^T V, z = sum phi(K)): the KV cache folded into a fixed-size state."""
    import torch

    phi_k = la.feature_map(keys)
    state = la.LinearState(np.swapaxes(phi_k, 1, 2) @ values, phi_k.sum(axis=1))
    q, k, v = (rng.standard_normal((HEADS, HEAD_DIM), dtype=np.float32) for _ in range(3))
    tensors = [torch.from_numpy(a) for a in (state.S, state.z, q, k, v)]
    contenders = [Contender("numpy 1T", lambda: la.step(state, q, k, v)[0], "reference", *_one_thread(),
                            note=_mib(state.nbytes)),
                  Contender("torch 1T", partial(_torch_linear_step, *tensors), "torch", *_one_thread(),
                            note=_mib(state.nbytes))]
    # Per head: S += phi(k) v^T and phi(q)^T S (2 HS HV each), z and the denominator (3 HS).
    return Case(f"decode linear attention, context {context:,}", contenders, _close, "numpy 1T", ("numpy 1T",),
                flops=HEADS * (4.0 * HEAD_DIM * HEAD_DIM + 3 * HEAD_DIM), bytes_moved=2.0 * state.nbytes)


def _scan_step_case(context: int, rng: np.random.Generator, d: int, n: int) -> Case:
    """One token of the scan from a carried state (a scan of length 1 with initial_state): y and the new state.

    ``context`` changes nothing but the case's name: the state is the same size after 1k tokens as after 64k,
    which is the point of the row beside the attention rows of the same context.
    """
    x = mamba_like_inputs(rng, 1, d, 1, n)
    h = rng.standard_normal((1, d, n), dtype=np.float32)
    args = (x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"])
    step = partial(selective_scan, *args, delta_softplus=True, initial_state=h, return_last_state=True)
    contenders = [Contender("numpy 1T", partial(step, backend="reference"), "reference", *_one_thread(),
                            note=_mib(h.nbytes))]
    if available("native"):
        contenders.append(Contender("C 1T", partial(step, backend="native", threads=1), "native", note=_mib(h.nbytes)))
    contenders.append(Contender("torch loop 1T", partial(step, backend="torch"), "torch", *_one_thread(),
                                note=_mib(h.nbytes)))
    return Case(f"decode selective scan (d {d}, n {n}), context {context:,}", contenders, _close, "numpy 1T",
                ("numpy 1T",), flops=6.0 * d * n, bytes_moved=2.0 * h.nbytes + x["A"].nbytes)


DECODE_CONTEXTS = tuple(1024 * 2**i for i in range(7))
"""The contexts ``workbench bench longctx`` decodes at: 1k ... 64k."""


def decode_cases(quick: bool = False, *, contexts: Sequence[int] | None = None) -> list[Case]:
    """One decoded token per method at contexts 1k ... 64k (quick: 1k and 2k; ``contexts``: those, in order),
    grouped by method: every softmax case, then the window's, linear attention's and the scan's."""
    rng = np.random.default_rng(1)
    if contexts is None:
        contexts = [1024, 2048] if quick else DECODE_CONTEXTS
    contexts = [require_int(c, "context", low=1) for c in contexts]
    d, n = (64, 16) if quick else (MAMBA_130M["d"], MAMBA_130M["n"])
    by_method: dict[str, list[Case]] = {}
    for context in contexts:
        k = rng.standard_normal((HEADS, context, HEAD_DIM), dtype=np.float32)
        v = rng.standard_normal((HEADS, context, HEAD_DIM), dtype=np.float32)
        softmax_case, window_case = _attention_cases(context, rng, k, v)
        linear_case = _linear_case(context, rng, k, v)
        for key, case in (("softmax", softmax_case), ("window", window_case), ("linear", linear_case),
                          ("scan", _scan_step_case(context, rng, d, n))):
            by_method.setdefault(key, []).append(case)
    return [case for cases in by_method.values() for case in cases]


def cases(quick: bool = False) -> list[Case]:
    """``workbench bench longctx``: the scan race, then the decode steps against context length."""
    return [scan_case(quick), *decode_cases(quick)]
