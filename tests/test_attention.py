"""Attention: reference, torch SDPA and the C kernels agree; masks mean what they say; bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench_engines.attention import attention, attention_flops
from workbench_engines.backends import resolve
from workbench_engines.attention.reference import allowed_mask

BACKENDS = [("torch", "flash"), pytest.param("native", "flash", marks=pytest.mark.native),
            pytest.param("native", "naive", marks=pytest.mark.native)]


def qkv(rng, batch, heads, kv_heads, lq, lk, d, dv=None):
    dv = dv or d
    return (rng.standard_normal((batch, heads, lq, d)).astype(np.float32),
            rng.standard_normal((batch, kv_heads, lk, d)).astype(np.float32),
            rng.standard_normal((batch, kv_heads, lk, dv)).astype(np.float32))


SHAPES = [
    (1, 1, 1, 1, 1, 8),        # one query, one key
    (2, 8, 8, 37, 37, 64),     # odd length
    (1, 8, 2, 65, 65, 64),     # GQA 4:1
    (1, 4, 1, 1, 300, 64),     # MQA, decoding one token against a cache
    (2, 4, 4, 100, 130, 32),   # queries are the last 100 of 130 positions
    (1, 2, 1, 129, 129, 128),  # head dim 128, a length just past a tile
    (1, 2, 2, 33, 80, 48),     # head dim not a multiple of 16
]


@pytest.mark.parametrize("backend, kernel", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [None, 1, 9])
def test_backends_agree_with_the_reference(rng, shape, causal, window, backend, kernel):
    q, k, v = qkv(rng, *shape)
    key_mask = rng.random((shape[0], shape[4])) < 0.75
    key_mask[:, -1] = True
    for mask in (None, key_mask):
        expected = attention(q, k, v, causal=causal, window=window, key_mask=mask)
        got = attention(q, k, v, causal=causal, window=window, key_mask=mask, backend=backend, kernel=kernel, threads=2)
        np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-4, err_msg=f"{backend} {kernel}")


@pytest.mark.native
@settings(max_examples=30)
@given(lq=st.integers(1, 90), extra=st.integers(0, 40), heads=st.sampled_from([(4, 1), (4, 2), (4, 4)]),
       d=st.sampled_from([16, 64]), causal=st.booleans(), window=st.none() | st.integers(1, 20),
       seed=st.integers(0, 2**31))
def test_native_matches_torch_on_random_shapes(lq, extra, heads, d, causal, window, seed):
    q, k, v = qkv(np.random.default_rng(seed), 1, heads[0], heads[1], lq, lq + extra, d)
    expected = attention(q, k, v, causal=causal, window=window, backend="torch")
    for kernel in ("flash", "naive"):
        got = attention(q, k, v, causal=causal, window=window, backend="native", kernel=kernel, threads=1)
        np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-4)


# The flash kernel's register blocking has edges on every axis: queries fewer
# than a vector (4, 8 or 16 lanes) go through dot products, rows in groups of 6
# with a tail of 1 to 5, head dimensions in chunks of 64 with a remainder, value
# dimensions in panels of 8 to 64 floats with a narrower last one or none.
BLOCKING_EDGES = [
    (1, 2, 1, 3, 70, 64, 64),     # fewer queries than a vector
    (1, 2, 2, 70, 70, 64, 64),    # 64 + 6 queries: a second block of 6, lanes padded
    (1, 2, 2, 64, 200, 130, 24),  # d in chunks 64, 64, 2; dv a whole number of 8 lanes, not of 16
    (1, 1, 1, 50, 50, 16, 40),    # dv = 40: five 8-float lanes, a narrow last panel
    (1, 1, 1, 33, 33, 128, 72),   # dv = 72
]


@pytest.mark.native
@pytest.mark.parametrize("shape", BLOCKING_EDGES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_flash_blocking_edges_match_float64(rng, shape, causal):
    q, k, v = qkv(rng, *shape)
    expected = attention(*(x.astype(np.float64) for x in (q, k, v)), causal=causal)
    got = attention(q, k, v, causal=causal, backend="native", kernel="flash", threads=1)
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-4)


@pytest.mark.native
def test_flash_propagates_nan_instead_of_dropping_it(rng):
    """A NaN query row comes out NaN and leaves the other rows alone; a NaN value reaches every query that sees its
    key (whether the queries before it, with weight exactly 0, get 0 x NaN depends on the kernel, as in torch)."""
    q, k, v = qkv(rng, 1, 1, 1, 80, 80, 64)
    q[0, 0, 5, 3] = np.nan
    got = attention(q, k, v, causal=True, backend="native", kernel="flash", threads=1)
    assert np.flatnonzero(np.isnan(got[0, 0]).any(axis=1)).tolist() == [5]
    assert np.isnan(got[0, 0, 5]).all()
    q[0, 0, 5, 3] = 0.0
    v[0, 0, 40, 7] = np.nan
    got = attention(q, k, v, causal=True, backend="native", kernel="flash", threads=1)
    assert np.isnan(got[0, 0, 40:, 7]).all()
    assert np.isfinite(np.delete(got[0, 0], 7, axis=1)).all()


@pytest.mark.native
def test_flash_names_its_register_blocking():
    from workbench_engines.attention.native import SIMD_PATHS, simd_path

    assert simd_path() in SIMD_PATHS


@pytest.mark.parametrize("backend, kernel", [("reference", "flash"), *BACKENDS])
def test_causal_outputs_ignore_the_future(rng, backend, kernel):
    q, k, v = qkv(rng, 1, 4, 2, 40, 40, 32)
    before = attention(q, k, v, causal=True, backend=backend, kernel=kernel)
    k2, v2 = k.copy(), v.copy()
    k2[:, :, 25:] = rng.standard_normal(k2[:, :, 25:].shape)
    v2[:, :, 25:] = 100.0
    after = attention(q, k2, v2, causal=True, backend=backend, kernel=kernel)
    np.testing.assert_allclose(after[:, :, :25], before[:, :, :25], atol=1e-6)
    assert not np.allclose(after[:, :, 25:], before[:, :, 25:])


@pytest.mark.parametrize("backend, kernel", [("reference", "flash"), *BACKENDS])
def test_masks_and_long_values_are_stable(rng, backend, kernel):
    q, k, v = qkv(rng, 1, 2, 2, 10, 10, 16)
    q *= 50  # large scores: the online softmax must not overflow
    expected = attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    got = attention(q, k, v, backend=backend, kernel=kernel)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, atol=1e-3)
    nothing = np.zeros((1, 10), dtype=bool)
    assert not np.any(attention(q, k, v, key_mask=nothing, backend=backend, kernel=kernel))


def test_allowed_mask_bands():
    keep = allowed_mask(3, 5, causal=True, window=2)
    assert keep.tolist() == [[False, True, True, False, False], [False, False, True, True, False],
                             [False, False, False, True, True]]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda q, k, v: (q[0], k, v), "must be \\[batch, heads, seq, dim\\]"),
        (lambda q, k, v: (q, k[..., :8], v), "head dims differ"),
        (lambda q, k, v: (q[:, :3], k, v), "multiple of key/value heads"),
        (lambda q, k, v: (q, k, v[:, :, :5]), "same heads and length"),
        (lambda q, k, v: (q.astype(np.float64), k, v), "share a dtype"),
        (lambda q, k, v: (q.astype(np.int32), k.astype(np.int32), v.astype(np.int32)), "floating"),
    ],
)
def test_bad_shapes_and_dtypes_raise_before_any_kernel(rng, change, message):
    q, k, v = qkv(rng, 1, 4, 2, 6, 6, 16)
    with pytest.raises((ValueError, TypeError), match=message):
        attention(*change(q, k, v), backend=resolve().name)


def test_native_specific_checks(rng):
    q, k, v = qkv(rng, 1, 2, 2, 6, 6, 16)
    with pytest.raises(ValueError, match="float32"):
        attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), backend="native")
    with pytest.raises(ValueError, match="C-contiguous"):
        attention(np.asfortranarray(q), k, v, backend="native")
    with pytest.raises(ValueError, match="window"):
        attention(q, k, v, window=0)
    with pytest.raises(ValueError, match="key_mask"):
        attention(q, k, v, key_mask=np.ones((1, 5), dtype=bool))
    with pytest.raises(ValueError, match="unknown kernel"):
        attention(q, k, v, backend="native", kernel="fast")
    with pytest.raises(ValueError, match="unknown backend"):
        attention(q, k, v, backend="cuda-ish")


# ---- the tiled NumPy reference (tiled.py) ------------------------------------------------------

TOLERANCE = {np.float32: dict(atol=2e-5, rtol=1e-4), np.float64: dict(atol=1e-12, rtol=1e-10)}
TILED_CASES = [  # batch, heads, kv_heads, lq, lk, d, dv, block_q, block_k
    (1, 1, 1, 1, 1, 8, 8, 64, 64),      # one query, one key
    (2, 4, 2, 37, 37, 16, 16, 8, 8),    # GQA 2:1, a remainder of 5 in both loops
    (1, 4, 1, 1, 150, 32, 32, 64, 64),  # MQA, one decoding query against 150 keys: remainder 22
    (2, 2, 2, 29, 71, 24, 40, 5, 7),    # queries at the end of the keys, dv != d, odd tiles
    (1, 3, 3, 66, 66, 8, 8, 64, 64),    # two queries past the C kernel's first tile
    (2, 2, 1, 12, 5, 8, 8, 4, 3),       # more queries than keys: causal rows before the first key see none
]


def _with_mask(rng, batch, lk):
    """A random padding mask in which the last sequence (when there are two) is all padding."""
    key_mask = rng.random((batch, lk)) < 0.7
    if batch > 1:
        key_mask[-1] = False  # fully masked rows inside tiles that other rows still use
    return key_mask


@pytest.mark.parametrize("case", TILED_CASES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [None, 1, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiled_matches_the_plain_reference(rng, case, causal, window, dtype):
    from workbench_engines.attention import reference, tiled

    batch, heads, kv_heads, lq, lk, d, dv, block_q, block_k = case
    q, k, v = (a.astype(dtype) for a in qkv(rng, batch, heads, kv_heads, lq, lk, d, dv))
    for key_mask in (None, _with_mask(rng, batch, lk)):
        options = dict(causal=causal, window=window, key_mask=key_mask)
        plain = reference.attention(q, k, v, **options)
        got = tiled.attention(q, k, v, **options, block_q=block_q, block_k=block_k)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, plain, **TOLERANCE[dtype])
        if key_mask is not None and batch > 1:
            assert not np.any(got[-1])  # a query that sees no key gets a zero row


@pytest.mark.native
@pytest.mark.parametrize("case", TILED_CASES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [None, 6])
def test_tiled_matches_the_c_flash_kernel(rng, case, causal, window):
    """The NumPy loop the lesson explains and the C kernel it describes give the same numbers."""
    from workbench_engines.attention import tiled

    batch, heads, kv_heads, lq, lk, d, dv, block_q, block_k = case
    q, k, v = qkv(rng, batch, heads, kv_heads, lq, lk, d, dv)
    for key_mask in (None, _with_mask(rng, batch, lk)):
        options = dict(causal=causal, window=window, key_mask=key_mask)
        c_flash = attention(q, k, v, **options, backend="native", kernel="flash", threads=1)
        np.testing.assert_allclose(c_flash, tiled.attention(q, k, v, **options), **TOLERANCE[np.float32])


def test_tiled_on_random_shapes_and_tiles(rng):
    from workbench_engines.attention import reference, tiled

    for _ in range(25):
        kv_heads, group = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        lq = int(rng.integers(1, 50))
        lk = lq + int(rng.integers(0, 30))
        d, dv = int(rng.integers(1, 33)), int(rng.integers(1, 33))
        dtype = (np.float32, np.float64)[int(rng.integers(2))]
        q, k, v = (a.astype(dtype) for a in qkv(rng, 2, kv_heads * group, kv_heads, lq, lk, d, dv))
        options = dict(causal=bool(rng.integers(2)), window=(None, int(rng.integers(1, 12)))[int(rng.integers(2))],
                       key_mask=(None, _with_mask(rng, 2, lk))[int(rng.integers(2))],
                       scale=float(rng.uniform(0.05, 1.0)))
        blocks = dict(block_q=int(rng.integers(1, 20)), block_k=int(rng.integers(1, 20)))
        np.testing.assert_allclose(tiled.attention(q, k, v, **options, **blocks),
                                   reference.attention(q, k, v, **options), **TOLERANCE[dtype],
                                   err_msg=f"{q.shape} {k.shape} {v.shape} {options} {blocks}")


@pytest.mark.native
def test_tiled_default_blocks_are_the_c_kernels_tiles():
    import inspect

    from workbench_engines.attention import tiled
    from workbench_engines.nativelib import native

    lib = native().lib
    defaults = {name: p.default for name, p in inspect.signature(tiled.attention).parameters.items()}
    assert (defaults["block_q"], defaults["block_k"]) == (lib.WB_ATTN_FLASH_BLOCK_Q, lib.WB_ATTN_FLASH_BLOCK_K)


def test_the_reference_backend_runs_plain_by_default_and_tiled_for_flash(rng, monkeypatch):
    from workbench_engines.attention import reference, tiled

    q, k, v = qkv(rng, 1, 2, 1, 9, 9, 8)
    calls = []
    for module in (reference, tiled):
        monkeypatch.setattr(module, "attention", lambda *a, name=module.__name__, **kw: calls.append(name))
    attention(q, k, v)
    attention(q, k, v, backend="reference", kernel="naive")
    attention(q, k, v, backend="reference", kernel="flash")
    assert calls == [reference.__name__, reference.__name__, tiled.__name__]
    with pytest.raises(ValueError, match="unknown kernel"):
        attention(q, k, v, kernel="fast")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="block sizes"):
        tiled.attention(q, k, v, block_q=0)


def test_flop_count():
    assert attention_flops(1, 1, 4, 4, 8, 8) == 2 * 16 * 16
    assert attention_flops(1, 1, 4, 4, 8, 8, causal=True) == 2 * 10 * 16


@pytest.mark.parametrize("backend, kernel", [("reference", "flash"), *BACKENDS])
@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (4, 2), (4, 1)])
def test_multi_head_attention_matches_torch(rng, heads, kv_heads, backend, kernel):
    import torch
    from torch.nn.functional import scaled_dot_product_attention

    from workbench_engines.attention import multi_head_attention

    batch, seq, model, d = 2, 9, 32, 8
    x = rng.standard_normal((batch, seq, model)).astype(np.float32)
    w_q = rng.standard_normal((model, heads * d)).astype(np.float32) / 6
    w_k, w_v = (rng.standard_normal((model, kv_heads * d)).astype(np.float32) / 6 for _ in range(2))
    w_o = rng.standard_normal((heads * d, model)).astype(np.float32) / 6
    t = torch.from_numpy
    q = (t(x) @ t(w_q)).reshape(batch, seq, heads, d).transpose(1, 2)
    k = (t(x) @ t(w_k)).reshape(batch, seq, kv_heads, d).transpose(1, 2).repeat_interleave(heads // kv_heads, 1)
    v = (t(x) @ t(w_v)).reshape(batch, seq, kv_heads, d).transpose(1, 2).repeat_interleave(heads // kv_heads, 1)
    expected = scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(batch, seq, -1) @ t(w_o)
    got = multi_head_attention(x, w_q, w_k, w_v, w_o, heads, kv_heads, causal=True, backend=backend, kernel=kernel)
    np.testing.assert_allclose(got, expected.numpy(), atol=3e-5)
    with pytest.raises(ValueError, match="split"):
        multi_head_attention(x, w_q, w_k, w_v, w_o, 3, 1)
    with pytest.raises(ValueError, match="batch, seq, model"):
        multi_head_attention(x[0], w_q, w_k, w_v, w_o, heads, kv_heads)
