"""Issue 23, long context: linear attention's two forms agree, the selective scan's four backends agree, bad input
is refused before C, and the bench longctx cases validate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import NATIVE
from workbench_engines.backends import available
from workbench_engines.errors import EngineError
from workbench_engines.longctx import LayerShape, linear_attention as la, selective_scan, state_bytes
from workbench_engines.longctx.scan import softplus

# ---------------------------------------------------------------- linear attention


@pytest.mark.parametrize("shape", [(1, 8), (2, 3, 17, 5), (4, 1, 3)])
def test_linear_attention_recurrence_equals_the_parallel_form(rng, shape):
    q, k = rng.standard_normal(shape), rng.standard_normal(shape)
    v = rng.standard_normal((*shape[:-1], int(rng.integers(1, 9))))
    parallel, recurrent = la.parallel(q, k, v), la.recurrent(q, k, v)
    assert parallel.shape == v.shape
    np.testing.assert_allclose(recurrent, parallel, rtol=1e-12, atol=1e-13)


def test_causal_linear_attention_is_its_definition_token_by_token(rng):
    q, k, v = rng.standard_normal((9, 4)), rng.standard_normal((9, 4)), rng.standard_normal((9, 3))
    phi_q, phi_k = la.feature_map(q), la.feature_map(k)
    assert (phi_q > 0).all() and np.allclose(la.feature_map(np.array([-1.0, 0.0, 2.0])), [np.exp(-1), 1.0, 3.0])
    for i in range(9):
        weights = phi_k[: i + 1] @ phi_q[i]
        np.testing.assert_allclose(la.parallel(q, k, v)[i], weights @ v[: i + 1] / weights.sum(), rtol=1e-12)


def test_softmax_reference_matches_torch_and_its_decode_step(rng):
    import torch

    q, k, v = (rng.standard_normal((2, 11, 8)) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(*map(torch.from_numpy, (q, k, v)), is_causal=True)
    np.testing.assert_allclose(la.causal_softmax(q, k, v), expected.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(la.softmax_decode_step(q[:, -1], k, v), la.causal_softmax(q, k, v)[:, -1], rtol=1e-12)


def test_state_bytes_follow_the_formulas():
    at_64k = state_bytes(65536)
    assert at_64k == {"kv cache": 2 * 8 * 64 * 65536 * 4, "sliding window": 2 * 8 * 64 * 4096 * 4,
                      "linear attention": 8 * (64 * 64 + 64) * 4, "selective scan": 1536 * 16 * 4}
    assert state_bytes(1024)["sliding window"] == state_bytes(1024)["kv cache"]
    assert state_bytes(1024)["linear attention"] == la.LinearState.empty((8,), 64, 64, np.float32).nbytes
    assert state_bytes(0, LayerShape(bytes_per_value=2))["kv cache"] == 0
    with pytest.raises(ValueError, match="context"):
        state_bytes(-1)


# ---------------------------------------------------------------- selective scan


def _scan_inputs(rng, batch, d, L, n, softplus_delta):
    raw = rng.standard_normal((batch, d, L)) - 2.0
    arrays = {
        "u": rng.standard_normal((batch, d, L)),
        # Positive step sizes either way: softplus makes them, or they are given as softplus would.
        "delta": raw if softplus_delta else softplus(raw),
        "A": -np.exp(rng.uniform(0.0, 2.5, (d, n))),
        "B": rng.standard_normal((batch, n, L)),
        "C": rng.standard_normal((batch, n, L)),
        "D": rng.standard_normal(d),
        "initial_state": rng.standard_normal((batch, d, n)),
    }
    return {name: x.astype(np.float32) for name, x in arrays.items()}


def _assert_close_f32(got, expected):
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


BACKENDS = [pytest.param(("native", "loop"), marks=pytest.mark.native, id="native"),
            pytest.param(("torch", "loop"), id="torch-loop"), pytest.param(("torch", "parallel"), id="torch-parallel")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_d", [True, False])
@pytest.mark.parametrize("softplus_delta", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_scan_backends_equal_the_reference(rng, backend, with_d, softplus_delta, batch):
    name, method = backend
    # Lengths of 0-2 and 3-20 take the kernel's short path (step sizes for a group of channels at once), 60-140
    # its blocks of 64 steps with a partial last one.
    for threads, n, L in ((1, 16, 150), (2, int(rng.integers(1, 40)), int(rng.integers(0, 3))),
                          (2, int(rng.integers(1, 40)), int(rng.integers(3, 21))),
                          (2, int(rng.integers(1, 40)), int(rng.integers(60, 140)))):
        x = _scan_inputs(rng, batch, int(rng.integers(1, 30)), L, n, softplus_delta)
        D = x["D"] if with_d else None
        carried = x["initial_state"] if threads == 2 else None
        f64 = {k: v.astype(np.float64) for k, v in x.items()}
        y_ref, h_ref = selective_scan(f64["u"], f64["delta"], f64["A"], f64["B"], f64["C"],
                                      None if D is None else f64["D"], delta_softplus=softplus_delta,
                                      return_last_state=True,
                                      initial_state=None if carried is None else f64["initial_state"])
        y, h = selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], D, delta_softplus=softplus_delta,
                              initial_state=carried, return_last_state=True, backend=name, torch_method=method,
                              threads=threads if name == "native" else None)
        assert y.shape == x["u"].shape and h.shape == (batch, x["A"].shape[0], n)
        assert y.dtype == h.dtype == np.float32
        _assert_close_f32(y, y_ref)
        _assert_close_f32(h, h_ref)


def test_torch_parallel_chunks_carry_the_state(rng):
    from workbench_engines.longctx.scan import reference, torch_parallel

    x = _scan_inputs(rng, 2, 5, 50, 8, True)
    args = [x[k].astype(np.float64) for k in ("u", "delta", "A", "B", "C", "D")]
    y_ref, h_ref = reference(*args, delta_softplus=True)
    for chunk in (1, 7, 64):
        y, h = torch_parallel(*args, delta_softplus=True, chunk=chunk)
        np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(h, h_ref, rtol=1e-9, atol=1e-10)


def test_scan_reference_is_the_recurrence_by_hand():
    """One channel, two steps, n = 1: h1 = dt1 b1 u1, h2 = e^(dt2 a) h1 + dt2 b2 u2, y = c h + D u."""
    u, delta = np.array([[[1.0, 2.0]]]), np.array([[[0.5, 0.25]]])
    A, B, C, D = np.array([[-2.0]]), np.array([[[3.0, 4.0]]]), np.array([[[5.0, 6.0]]]), np.array([0.5])
    h1 = 0.5 * 3.0 * 1.0
    h2 = np.exp(0.25 * -2.0) * h1 + 0.25 * 4.0 * 2.0
    y, h = selective_scan(u, delta, A, B, C, D, return_last_state=True)
    np.testing.assert_allclose(y, [[[5.0 * h1 + 0.5, 6.0 * h2 + 1.0]]], rtol=1e-15)
    np.testing.assert_allclose(h, [[[h2]]], rtol=1e-15)


@pytest.mark.native
def test_native_one_step_continues_a_long_scan(rng):
    """Decoding: a scan of L - 1 steps, then one step from its last state, equals the scan of L steps."""
    x = _scan_inputs(rng, 2, 7, 33, 16, True)
    args = [x[k] for k in ("u", "delta", "A", "B", "C")]
    y_all, h_all = selective_scan(*args, x["D"], delta_softplus=True, return_last_state=True, backend="native")
    head = [np.ascontiguousarray(a[..., :-1]) if a.ndim == 3 else a for a in args]
    tail = [np.ascontiguousarray(a[..., -1:]) if a.ndim == 3 else a for a in args]
    _, h_head = selective_scan(*head, x["D"], delta_softplus=True, return_last_state=True, backend="native")
    y_last, h_last = selective_scan(*tail, x["D"], delta_softplus=True, initial_state=h_head, return_last_state=True,
                                    backend="native", threads=1)
    np.testing.assert_allclose(y_last[..., 0], y_all[..., -1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_last, h_all, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- refusals


def _good(rng):
    return _scan_inputs(rng, 2, 3, 5, 4, True)


@pytest.mark.parametrize("backend", ["reference", "torch", NATIVE])
@pytest.mark.parametrize("broken", ["u 2-d", "delta", "A rows", "B", "C", "D", "initial_state", "A empty"])
def test_scan_refuses_wrong_shapes(rng, backend, broken):
    x = _good(rng)
    change = {"u 2-d": ("u", x["u"][0]), "delta": ("delta", x["delta"][:, :, :4]), "A rows": ("A", x["A"][:2]),
              "B": ("B", x["B"][:1]), "C": ("C", x["C"][:, :3]), "D": ("D", x["D"][:2]),
              "initial_state": ("initial_state", x["initial_state"][:, :, :3]), "A empty": ("A", x["A"][:, :0])}
    name, value = change[broken]
    x[name] = value
    with pytest.raises(ValueError, match=name):
        selective_scan(**x, backend=backend)


def _refuses_before_c(monkeypatch):
    """Swap the native module for one whose scan kernel fails the test if anything calls it."""
    from workbench_engines.longctx import native as scan_native
    from workbench_engines.nativelib import native

    real = native()

    def reached_c(*args):
        raise AssertionError("bad input reached the C kernel")

    fake = SimpleNamespace(ffi=real.ffi, lib=SimpleNamespace(WB_SCAN_MAX_STATE=real.lib.WB_SCAN_MAX_STATE,
                                                             wb_scan_selective_f32=reached_c))
    monkeypatch.setattr(scan_native, "native", lambda: fake)


@pytest.mark.native
def test_native_scan_refuses_bad_input_before_c(rng, monkeypatch):
    _refuses_before_c(monkeypatch)
    x = _good(rng)
    with pytest.raises(TypeError, match="float32"):
        selective_scan(**{**x, "B": x["B"].astype(np.float64)}, backend="native")
    with pytest.raises(TypeError, match="floating"):
        selective_scan(**{**x, "u": x["u"].astype(np.int32)}, backend="native")
    with pytest.raises(ValueError, match="C-contiguous"):
        selective_scan(**{**x, "C": np.asfortranarray(x["C"])}, backend="native")
    for threads in (0, -1, 10**6):
        with pytest.raises(ValueError, match="threads"):
            selective_scan(**x, backend="native", threads=threads)
    with pytest.raises(TypeError, match="threads"):
        selective_scan(**x, backend="native", threads=1.5)
    big = _scan_inputs(rng, 1, 2, 3, 257, True)
    with pytest.raises(ValueError, match="at most n = 256"):
        selective_scan(**big, backend="native")


@pytest.mark.native
def test_the_kernel_itself_refuses_with_a_status():
    from workbench_engines.nativelib import check_status, native

    ffi, lib = native().ffi, native().lib
    buf = np.zeros(600, np.float32)
    p = ffi.from_buffer("float[]", buf)
    assert lib.wb_scan_selective_f32(p, p, p, p, p, p, p, p, p, 1, 1, 1, 257, 0, 1) == lib.WB_ERR_BAD_SIZE
    assert lib.wb_scan_selective_f32(p, p, p, p, p, p, p, p, p, 1, 1, 1, 4, 0, 0) == lib.WB_ERR_BAD_THREADS
    assert lib.wb_scan_selective_f32(p, p, p, ffi.NULL, p, p, p, p, p, 1, 1, 1, 4, 0, 1) == lib.WB_ERR_NULL_POINTER
    assert lib.wb_scan_selective_f32(p, p, p, p, p, p, p, p, p, 2**62, 4, 1, 4, 0, 1) == lib.WB_ERR_TOO_LARGE
    with pytest.raises(EngineError, match="wb_scan_selective_f32"):
        check_status("wb_scan_selective_f32", lib.WB_ERR_BAD_SIZE)


def test_scan_refuses_unknown_options(rng):
    x = _good(rng)
    with pytest.raises(ValueError, match="backend"):
        selective_scan(**x, backend="cuda")
    with pytest.raises(ValueError, match="torch_method"):
        selective_scan(**x, backend="torch", torch_method="blelloch")
    with pytest.raises(TypeError, match="delta_softplus"):
        selective_scan(**{k: v for k, v in x.items()}, delta_softplus="yes")
    with pytest.raises(TypeError, match="numpy"):
        selective_scan(**{**x, "u": x["u"].tolist()})
    with pytest.raises(ValueError, match="q and k"):
        la.parallel(np.ones((3, 4)), np.ones((2, 4)), np.ones((3, 4)))


# ---------------------------------------------------------------- bench longctx


def test_quick_bench_validates_and_counts_state_bytes():
    from workbench_engines.longctx.bench import cases
    from workbench_engines.profiling.bench import run_cases

    quick = cases(quick=True)
    rows = run_cases(quick, warmup=0, repeats=1)
    assert rows and all(row.matches for row in rows), [row.mismatch for row in rows if not row.matches]
    scan_rows = {row.name for row in rows if row.case.startswith("selective scan")}
    assert {"numpy", "torch loop", "torch parallel"} <= {name.rsplit(" ", 1)[0] for name in scan_rows}
    assert ("C 1T" in scan_rows) == available("native")
    by_case = {case.name: case for case in quick}
    for context in (1024, 2048):
        expected = state_bytes(context)
        assert by_case[f"decode softmax, KV cache, context {context:,}"].bytes_moved == expected["kv cache"]
        assert by_case[f"decode sliding window 4096, context {context:,}"].bytes_moved == expected["sliding window"]
        assert by_case[f"decode linear attention, context {context:,}"].bytes_moved == 2 * expected["linear attention"]
