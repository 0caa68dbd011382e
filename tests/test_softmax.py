"""Softmax family: reference vs native vs torch, edge cases, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import NATIVE
from workbench_engines.errors import NativeUnavailable
from workbench_engines.softmax import entropy_bits, log_softmax, logsumexp, softmax, with_temperature

OPS = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}
TORCH_OPS = {
    "softmax": lambda t: torch.softmax(t, -1),
    "log_softmax": lambda t: torch.log_softmax(t, -1),
    "logsumexp": lambda t: torch.logsumexp(t, -1),
}


def assert_close_f32(got: np.ndarray, want: np.ndarray) -> None:
    """float32 tolerance atol + rtol·|want|, with atol at the scale of the outputs (log space)."""
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.nanmax(np.abs(want), initial=1.0))
    np.testing.assert_allclose(got, want, rtol=2e-6 * 8, atol=1e-6 + 8 * 1.2e-7 * scale, equal_nan=True)


SHAPES = [(1, 1), (1, 7), (3, 257), (17, 1000), (2, 3, 33), (64, 32000), (5, 1)]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_torch_float64(op, shape, rng):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    want = TORCH_OPS[op](torch.from_numpy(x).double()).numpy()
    assert_close_f32(OPS[op](x), want)


@pytest.mark.native
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_native_matches_torch_float64(op, shape, threads, rng):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    want = TORCH_OPS[op](torch.from_numpy(x).double()).numpy()
    got = OPS[op](x, backend="native", threads=threads)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert_close_f32(got, want)


@pytest.mark.native
@pytest.mark.parametrize("threads", [1, 2])
def test_native_long_row_of_tiny_terms_keeps_its_sum(threads):
    """A 32,000-wide row: one logit at 0, the rest at −17, whose exponentials (4e-8) are each below half an ulp of
    1. One float accumulator per lane over the whole row dropped them, and the probabilities came out up to 1.3e-3
    too large; the blocked sum in wb_softmax.c keeps the error near 1e-6."""
    x = np.full((3, 32_000), -17.0, dtype=np.float32)
    x[0, 0], x[1, 12_345], x[2, -1] = 0.0, 0.0, 0.0
    want = torch.softmax(torch.from_numpy(x).double(), -1).numpy()
    np.testing.assert_allclose(softmax(x, backend="native", threads=threads), want, rtol=4e-6, atol=0)
    np.testing.assert_allclose(logsumexp(x, backend="native", threads=threads),
                               torch.logsumexp(torch.from_numpy(x).double(), -1).numpy(), rtol=0, atol=4e-6)


@pytest.mark.parametrize("op", OPS)
def test_torch_backend_matches_reference(op, rng):
    x = (rng.standard_normal((9, 130)) * 3).astype(np.float32)
    assert_close_f32(OPS[op](x, backend="torch"), OPS[op](x.astype(np.float64)))


@pytest.mark.native
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
                  elements=st.floats(-1e4, 1e4, width=32)))
def test_native_matches_reference_on_generated_input(x):
    for op in OPS:
        assert_close_f32(OPS[op](x, backend="native"), OPS[op](x.astype(np.float64)))


BACKENDS = ["reference", "torch", NATIVE]


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_logits_do_not_overflow(backend):
    x = np.array([[1000.0, 1000.0], [-1000.0, -1001.0], [88.0, 100.0]], dtype=np.float32)
    p = softmax(x, backend=backend)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(logsumexp(x, backend=backend)[0], 1000.0 + np.log(2.0), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_minus_infinity_masks_and_all_masked_rows(backend):
    x = np.array([[0.0, -np.inf, 0.0], [-np.inf, -np.inf, -np.inf]], dtype=np.float32)
    p = softmax(x, backend=backend)
    np.testing.assert_allclose(p[0], [0.5, 0.0, 0.5])
    assert np.all(np.isnan(p[1])), "torch gives nan for a fully masked row; so do we"
    lse = logsumexp(x, backend=backend)
    assert lse[1] == -np.inf
    np.testing.assert_allclose(lse[0], np.log(2.0), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_propagates_to_its_row_only(backend):
    x = np.array([[np.nan, 1.0], [1.0, 2.0]], dtype=np.float32)
    p = softmax(x, backend=backend)
    assert np.all(np.isnan(p[0])) and np.all(np.isfinite(p[1]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_inputs(backend):
    assert softmax(np.zeros((0, 5), np.float32), backend=backend).shape == (0, 5)
    assert softmax(np.zeros((3, 0), np.float32), backend=backend).shape == (3, 0)
    lse = logsumexp(np.zeros((3, 0), np.float32), backend=backend)
    assert lse.shape == (3,) and np.all(lse == -np.inf)


@pytest.mark.native
def test_native_rejects_bad_input_before_c():
    x = np.ones((4, 8), np.float32)
    with pytest.raises(TypeError, match="float32"):
        softmax(x.astype(np.float64), backend="native")
    with pytest.raises(TypeError, match="floating"):
        softmax(np.ones((2, 2), np.int32), backend="native")
    with pytest.raises(TypeError, match="numpy.ndarray"):
        softmax([1.0, 2.0], backend="native")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="C-contiguous"):
        softmax(x[:, ::2], backend="native")
    with pytest.raises(ValueError, match="C-contiguous"):
        softmax(np.asfortranarray(np.ones((3, 4), np.float32)), backend="native")
    with pytest.raises(ValueError, match="scalar"):
        softmax(np.ones((), np.float32), backend="native")
    with pytest.raises(ValueError, match="threads"):
        softmax(x, backend="native", threads=0)
    with pytest.raises(ValueError, match="unknown backend"):
        softmax(x, backend="fast")


@pytest.mark.native
def test_native_accepts_readonly_input(rng):
    x = rng.standard_normal((4, 9)).astype(np.float32)
    x.flags.writeable = False
    assert_close_f32(softmax(x, backend="native"), softmax(x.astype(np.float64)))


def test_native_unavailable_is_an_error_not_a_fallback(monkeypatch):
    from workbench_engines import nativelib

    monkeypatch.setattr(nativelib, "_load", lambda: (None, "disabled for this test"))
    with pytest.raises(NativeUnavailable, match="disabled for this test"):
        softmax(np.ones((2, 2), np.float32), backend="native")


def test_temperature_and_entropy():
    logits = np.array([2.0, 1.0, 0.1])
    sharp, flat = with_temperature(logits, 0.5), with_temperature(logits, 5.0)
    assert sharp.max() > softmax(logits).max() > flat.max()
    assert entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0)
    assert entropy_bits(np.array([1.0, 0.0, 0.0])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="temperature"):
        with_temperature(logits, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        with_temperature(logits, -1.0)
