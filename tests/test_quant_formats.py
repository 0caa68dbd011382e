"""Q6_K (a K-quant of 256-weight super-blocks) and quantising in C, for every GGUF format engines.quant covers.

Dequantisation is held bit for bit to gguf.quants.dequantize. Quantisation is
held to gguf.quants.quantize for Q8_0, Q4_0 and Q4_1; gguf 0.19 has no Q6_K
quantiser, so Q6_K is held to bytes that ggml's own C wrote (GGML_Q6_K_SHA256
below), to the C kernel, and to its round trip. Issue 14.
"""

from __future__ import annotations

import hashlib
from functools import partial
from types import SimpleNamespace

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GGML

from tests.conftest import NATIVE
from workbench_engines import quant
from workbench_engines.quant import q6_k, reference
from workbench_engines.quant.tensor import QuantTensor

BACKENDS = ["reference", NATIVE]


def assert_same_floats(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bit for bit, except that a NaN need only meet a NaN."""
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def gguf_dequantize(blocks: np.ndarray, fmt: str) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # inf or nan scales: nan, as expected
        return gguf.quants.dequantize(blocks, GGML[fmt])


def hashed_weights(rows: int, cols: int, salt: int) -> np.ndarray:
    """(rows, cols) float32 made by integer hashing and IEEE products only: the same bits on any machine and
    NumPy version (no RNG stream, no libm). Rows from 2^-60 to 2^24 in size, sub-blocks 2^-4 .. 2^3 apart, an
    all-zero row, zero sub-blocks, a spike, a constant row, and grids of halves."""
    i = np.arange(rows * cols, dtype=np.uint64) + np.uint64(salt * 0x9E3779B97F4A7C15 % 2**64)
    z = (i ^ (i >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's finaliser
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    u = ((z >> np.uint64(40)).astype(np.int64) - (1 << 23)).astype(np.float32) * np.float32(2.0**-23)  # [-1, 1)
    w = (u * u * u).reshape(rows, cols)
    sub = ((z >> np.uint64(8)) & np.uint64(7)).astype(np.int64).reshape(rows, cols)[:, ::16]
    w *= np.repeat(np.float32(2.0) ** (sub - 4).astype(np.float32), 16, axis=1)
    w *= (np.float32(2.0) ** np.linspace(-60, 24, rows).round().astype(np.float32))[:, None]
    k = np.arange(cols, dtype=np.float32)
    w[rows // 3] = 0
    w[rows // 2, 16:48] = 0
    w[rows // 2 + 1, 7] = 1e4 * np.abs(w[rows // 2 + 1, 7:]).max()
    w[rows // 2 + 2] = 0.25
    w[rows // 2 + 3] = (k % 63 - 31) * np.float32(0.5)
    w[rows // 2 + 4] = (k % 17 - 8) + np.float32(0.5)
    w[rows // 2 + 5] = k % 64 - 32
    w[rows // 2 + 6] = (k % 63 - 31) + np.float32(0.5)
    w[rows // 2 + 6, ::16] = -32
    return w


GGML_Q6_K_SHA256 = "f11d73df49c5eb5801ee271f333d95f5c5dd9296b2a33dcb315ea6f9f40fcaf2"
"""sha256 of quantize_row_q6_K_ref's output for hashed_weights(48, 512, 14): ggml's ggml-quants.c (ggml-org/ggml
d99724f, make_qx_quants, nearest_int and quantize_row_q6_K_ref cut out with a 30-line shim for the fp16 and block
types) built with gcc 12 -O2 -mf16c, which fuses no multiply-adds. Built with -march=native, where GCC contracts
a * b + c into FMAs, the same C writes other bytes for some rows (for Q4_0 too); NumPy's gguf.quants never fuses."""


def random_q6_k_blocks(rng: np.random.Generator, rows: int, cols: int, specials: bool = False) -> np.ndarray:
    """Random Q6_K bytes (rows, row_bytes): every quant and sub-scale; d of a sensible size, or fp16 specials."""
    blocks = np.frombuffer(rng.bytes(rows * reference.row_bytes("Q6_K", cols)), dtype=np.uint8).copy()
    records = blocks.view(q6_k.BLOCK_DTYPE)
    if specials:
        records["d"] = rng.choice(np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0xFBFF, 0x7C00,
                                            0xFC00, 0x7E00], np.uint16), records.size).view(np.float16)
    else:
        records["d"] = (rng.standard_normal(records.size) * 1e-3).astype(np.float16)
    return blocks.reshape(rows, -1)


def weights_to_quantise(rng: np.random.Generator) -> list[np.ndarray]:
    """Several shapes and scales, with all-zero blocks and rows, tiny and huge magnitudes (cols multiples of 256)."""
    out = []
    for rows, cols, scale in ((1, 256, 1.0), (7, 512, 1e-3), (33, 768, 30.0), (5, 256, 1e-30), (4, 1024, 1e8)):
        w = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        w[0, :256] = 0  # an all-zero super-block
        if rows > 2:
            w[1, 32:64] = 0  # all-zero sub-blocks and Q8_0/Q4 blocks
            w[2] *= np.repeat(np.float32(10.0) ** rng.integers(-6, 4, cols // 16), 16).astype(np.float32)
        out.append(w)
    out.append(hashed_weights(16, 256, 3))
    return out


# ---- layout ---------------------------------------------------------------------------------------


def test_q6_k_layout_matches_ggml():
    assert gguf.GGML_QUANT_SIZES[GGML.Q6_K] == (256, 210) == (quant.block_size("Q6_K"), q6_k.BLOCK_DTYPE.itemsize)
    assert quant.bits_per_weight("Q6_K") == 6.5625  # 210 bytes * 8 / 256: 6 bits, 0.5 of sub-scales, 1/16 of d
    assert [quant.bits_per_weight(f) for f in quant.INT8_FORMATS] == [8.5, 4.5, 5.0]
    assert set(quant.FORMATS) == {"Q8_0", "Q4_0", "Q4_1", "Q6_K"}


@pytest.mark.native
def test_c_constants_match_ggml():
    from workbench_engines.nativelib import native

    lib = native().lib
    assert (lib.WB_QUANT_Q6_K, lib.WB_QUANT_QK_K, lib.WB_QUANT_Q6_K_BYTES) == (GGML.Q6_K.value, 256, 210)


def test_nearest_int_is_ggmls_bit_trick():
    """ggml's nearest_int adds 1.5 * 2^23 in float32 and reads the low mantissa bits: halves go to even."""
    rng = np.random.default_rng(0)
    v = np.concatenate([np.arange(-40, 40, 0.25), rng.uniform(-4e6, 4e6, 1000), [2.5, -2.5, 3.5, 0.49999997]])
    v = v.astype(np.float32)
    trick = ((v + np.float32(12582912)).view(np.int32) & 0x007FFFFF) - 0x00400000
    assert np.array_equal(q6_k.nearest_int(v).astype(np.int32), trick)


# ---- dequantisation -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("specials", [False, True])
def test_q6_k_dequantize_random_blocks_bit_exact(backend, specials, rng):
    for rows, cols in ((1, 256), (9, 256 * 3), (40, 512)):
        blocks = random_q6_k_blocks(rng, rows, cols, specials)
        got = quant.dequantize(QuantTensor("Q6_K", (rows, cols), blocks), backend=backend, threads=1)
        assert_same_floats(got, gguf_dequantize(blocks, "Q6_K"))


@pytest.mark.native
def test_q6_k_dequantize_threads_agree(rng):
    tensor = QuantTensor("Q6_K", (200, 512), random_q6_k_blocks(rng, 200, 512))  # 102k weights: parallel
    assert np.array_equal(quant.dequantize(tensor, backend="native", threads=1),
                          quant.dequantize(tensor, backend="native", threads=2))


# ---- quantisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_q6_k_quantize_matches_ggml_c(backend):
    w = hashed_weights(48, 512, 14)
    blocks = quant.quantize(w, "Q6_K", backend=backend).blocks
    assert hashlib.sha256(blocks.tobytes()).hexdigest() == GGML_Q6_K_SHA256


@pytest.mark.native
@pytest.mark.parametrize("fmt", quant.FORMATS)
def test_c_quantize_is_the_reference_and_gguf(fmt, rng):
    with np.errstate(all="ignore"):  # huge blocks overflow an fp16 scale in gguf's NumPy too
        for w in weights_to_quantise(rng):
            want = reference.quantize(w, fmt)
            for threads in (1, 2):
                assert np.array_equal(quant.quantize(w, fmt, backend="native", threads=threads).blocks, want)
            if fmt != "Q6_K" and np.abs(w).max() < 1e4:  # beyond, fp16 scales overflow: gguf's nan differ
                assert np.array_equal(want, gguf.quants.quantize(w, GGML[fmt]))
            assert_same_floats(quant.dequantize(QuantTensor(fmt, w.shape, want), backend="native"),
                               gguf_dequantize(want, fmt))


@pytest.mark.native
def test_c_quantize_threads_agree(rng):
    w = rng.standard_normal((130, 512)).astype(np.float32)  # 66k weights: the parallel path
    for fmt in quant.FORMATS:
        one = quant.quantize(w, fmt, backend="native", threads=1).blocks
        assert np.array_equal(one, quant.quantize(w, fmt, backend="native", threads=2).blocks)


def test_q6_k_round_trip(rng):
    """Every weight that was not clamped (w / step in -32.5 .. 31.5: L - 32 runs from -32 to 31) comes back
    within half its sub-block's step; the error falls with the bits (Q4_0 > Q4_1 > Q6_K > Q8_0 on Gaussians)."""
    w = rng.standard_normal((64, 1024)).astype(np.float32)
    blocks = reference.quantize(w, "Q6_K")
    back = gguf_dequantize(blocks, "Q6_K")
    assert_same_floats(reference.dequantize(blocks, "Q6_K"), back)
    _, sc, d = q6_k.unpack(blocks.reshape(-1).view(q6_k.BLOCK_DTYPE))
    step = np.repeat(d[:, None] * sc.astype(np.float32), 16, axis=1).reshape(w.shape)  # signed
    ratio = w.astype(np.float64) / step
    inside = (ratio >= -32.5) & (ratio <= 31.5)
    assert inside.mean() > 0.99
    assert np.all(np.abs(back - w)[inside] <= 0.5 * np.abs(step[inside]) * (1 + 1e-6))
    rms = {fmt: np.sqrt(np.mean((gguf_dequantize(reference.quantize(w, fmt), fmt) - w) ** 2))
           for fmt in quant.FORMATS}
    assert rms["Q4_0"] > rms["Q4_1"] > rms["Q6_K"] > rms["Q8_0"]
    assert rms["Q6_K"] < 0.03  # of a unit Gaussian: 6 bits, steps of about max|w| / 32


def test_q6_k_requantising_real_weights(bundled_gguf):
    """SmolLM2's fp32-dequantised ffn_down rows: the round trip is gguf's dequantisation of our bytes,
    within half a step, and the C writes the same bytes."""
    tensor = bundled_gguf["blk.0.ffn_down.weight"]
    dense = gguf.quants.dequantize(tensor.data, tensor.tensor_type)[:96]  # (96, 1536)
    q = quant.quantize(dense, "Q6_K", backend="reference")
    back = quant.dequantize(q, backend="reference")
    assert_same_floats(back, gguf_dequantize(q.blocks, "Q6_K"))
    assert np.sqrt(np.mean((back - dense) ** 2)) < 0.02 * np.sqrt(np.mean(dense**2))
    if quant.choose_backend("auto").name == "native":
        assert np.array_equal(quant.quantize(dense, "Q6_K", backend="native").blocks, q.blocks)


@pytest.fixture(scope="module")
def bundled_gguf() -> dict:
    from workbench_engines.gguf_file import bundled_model_path

    try:
        path = bundled_model_path()
    except Exception as exc:  # noqa: BLE001 - whatever says the model is missing
        pytest.skip(f"SmolLM2-135M's GGUF file is not installed: {exc}")
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


# ---- the float32 product ---------------------------------------------------------------------------


def check_exact(got: np.ndarray, x: np.ndarray, tensor: QuantTensor) -> None:
    want = x.astype(np.float64) @ tensor.dequantized().astype(np.float64).T
    bound = reference.exact_bound(x, tensor.blocks, tensor.format)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.all(np.abs(got - want) <= bound + 1e-30)


@pytest.mark.native
@pytest.mark.parametrize("T", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("rows, cols", [(1, 256), (37, 256 * 3), (64, 512), (5, 256 * 9)])
def test_q6_k_matmul_within_round_off(T, rows, cols, rng):
    x = (rng.standard_normal((T, cols)) * rng.uniform(0.1, 10, (T, 1))).astype(np.float32)
    x[:, :32] = 0
    for tensor in (quant.quantize(rng.standard_normal((rows, cols)).astype(np.float32), "Q6_K"),
                   QuantTensor("Q6_K", (rows, cols), random_q6_k_blocks(rng, rows, cols))):
        got = quant.matmul(x, tensor, backend="native", threads=1)
        check_exact(got, x, tensor)
        assert np.array_equal(got, quant.PreparedQuant(tensor, backend="native", threads=2)(x))
        numpy_fp32 = quant.matmul(x, tensor, backend="reference")  # NumPy adds at most cols 2^-24 |x|.|W|
        magnitude = np.abs(x).astype(np.float64) @ np.abs(tensor.dequantized()).astype(np.float64).T
        slack = reference.exact_bound(x, tensor.blocks, "Q6_K") + cols * 2.0**-24 * magnitude + 1e-30
        assert np.all(np.abs(got - numpy_fp32.astype(np.float64)) <= slack)


@pytest.mark.native
def test_q6_k_matmul_on_real_weights(bundled_gguf, rng):
    """SmolLM2's ffn_up, requantised as Q6_K, against real-sized inputs: within the bound, and the bound
    itself a few 1e-6 of |x|.|W|."""
    tensor = bundled_gguf["blk.0.ffn_up.weight"]
    dense = gguf.quants.dequantize(tensor.data, tensor.tensor_type)  # (1536, 576)
    dense = np.ascontiguousarray(dense[:, :512])  # 576 is not a multiple of 256
    w = quant.quantize(dense, "Q6_K")
    x = rng.standard_normal((3, 512)).astype(np.float32)
    got = quant.matmul(x, w, backend="native", threads=2)
    check_exact(got, x, w)
    magnitude = np.abs(x).astype(np.float64) @ np.abs(w.dequantized()).astype(np.float64).T
    assert np.median(reference.exact_bound(x, w.blocks, "Q6_K") / magnitude) < 3e-6


# ---- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_activations_refuse_q6_k(backend, rng):
    tensor = quant.quantize(rng.standard_normal((3, 256)).astype(np.float32), "Q6_K")
    with pytest.raises(ValueError, match="int8 activations take Q8_0, Q4_0, Q4_1 only, not Q6_K"):
        quant.matmul(np.ones(256, np.float32), tensor, backend=backend, activations="int8")
    with pytest.raises(ValueError, match="not Q6_K"):
        quant.PreparedQuant(tensor, activations="int8", backend=backend)
    with pytest.raises(ValueError, match="not Q6_K"):
        reference.integer_matmul(np.ones((1, 256), np.float32), tensor.blocks, "Q6_K")


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantize_refuses_bad_weights(backend):
    quantize = partial(quant.quantize, backend=backend)
    for fmt, bad_cols in (("Q8_0", 48), ("Q4_0", 33), ("Q4_1", 16), ("Q6_K", 288), ("Q6_K", 32)):
        size = quant.block_size(fmt)
        with pytest.raises(ValueError, match=f"multiple of {size} for {fmt}"):
            quantize(np.ones((2, bad_cols), np.float32), fmt)
    for fmt in quant.FORMATS:
        for bad in (np.nan, np.inf, -np.inf):
            w = np.ones((3, 256), np.float32)
            w[2, 200] = bad
            with pytest.raises(ValueError, match="inf or nan"):
                quantize(w, fmt)
        with pytest.raises(ValueError, match="inf or nan"):
            quantize(np.full((1, 256), 1e300), fmt)  # float64 beyond float32's range
        with pytest.raises(ValueError, match=r"\(rows, cols\)"):
            quantize(np.ones(256, np.float32), fmt)
        with pytest.raises(TypeError, match="numbers"):
            quantize(np.ones((1, 256), dtype=object), fmt)
    with pytest.raises(ValueError, match="unsupported quantisation format 'Q5_K'; supported: Q8_0, Q4_0, Q4_1, Q6_K"):
        quantize(np.ones((1, 256), np.float32), "Q5_K")
    with pytest.raises(ValueError, match="unsupported quantisation format 'q6_k'"):
        quantize(np.ones((1, 256), np.float32), "q6_k")


@pytest.mark.native
def test_native_quantize_never_reaches_c_with_bad_input(monkeypatch):
    from workbench_engines.nativelib import native

    def never(*args):
        raise AssertionError("bad weights reached the C kernel")

    monkeypatch.setattr(native(), "lib", SimpleNamespace(wb_quant_quantize_f32=never), raising=False)
    for w, fmt in ((np.full((1, 256), np.nan, np.float32), "Q6_K"), (np.ones((1, 48), np.float32), "Q8_0"),
                   (np.ones((1, 256), np.float32), "Q3_K")):
        with pytest.raises(ValueError):
            quant.quantize(w, fmt, backend="native")


@pytest.mark.native
@pytest.mark.parametrize("threads, error", [(0, ValueError), (10**6, ValueError), (1.5, TypeError)], ids=repr)
def test_native_quantize_refuses_bad_thread_counts(threads, error):
    with pytest.raises(error, match="threads must be an integer"):
        quant.quantize(np.ones((1, 256), np.float32), "Q6_K", backend="native", threads=threads)


def test_q6_k_tensors_check_their_blocks():
    with pytest.raises(ValueError, match="multiple of 256 \\(whole Q6_K blocks\\), got 32"):
        QuantTensor("Q6_K", (1, 32), np.zeros((1, 27), np.uint8))
    with pytest.raises(ValueError, match="truncated: 419 bytes.*needs 420"):
        QuantTensor("Q6_K", (1, 512), np.zeros((1, 420), np.uint8).reshape(-1)[:-1].reshape(1, 419))
    stored = SimpleNamespace(name="output.weight", tensor_type=GGML.Q6_K, shape=np.array([512, 3]),
                             data=np.zeros((3, 420), np.uint8))
    tensor = QuantTensor.from_gguf(stored)
    assert (tensor.format, tensor.shape, tensor.nbytes) == ("Q6_K", (3, 512), 1260)
    assert "6.5625 bits/weight" in repr(tensor)


@pytest.mark.native
def test_c_rejects_bad_q6_k_arguments_with_a_status():
    from workbench_engines.nativelib import native

    ffi, lib = native().ffi, native().lib
    buf = np.zeros(8192, np.uint8)
    u8, f32 = ffi.from_buffer("uint8_t[]", buf), ffi.cast("float *", ffi.from_buffer("uint8_t[]", buf))
    q6 = lib.WB_QUANT_Q6_K
    assert lib.wb_quant_dequantize_f32(f32, u8, q6, 1, 32, 1) == lib.WB_ERR_BAD_SIZE
    assert lib.wb_quant_matmul_exact_f32(f32, f32, u8, q6, 1, 1, 288, u8, 8192, 1) == lib.WB_ERR_BAD_SIZE
    assert lib.wb_quant_matmul_f32(f32, f32, u8, q6, 1, 1, 256, u8, 8192, 1) == lib.WB_ERR_BAD_ARGUMENT
    assert lib.wb_quant_block_dots_i32(ffi.cast("int32_t *", f32), u8, q6, ffi.cast("int8_t *", u8),
                                       ffi.cast("int32_t *", f32), 1, 256) == lib.WB_ERR_BAD_ARGUMENT
    quantize = lib.wb_quant_quantize_f32
    assert quantize(u8, f32, q6, 1, 32, 1) == lib.WB_ERR_BAD_SIZE
    assert quantize(u8, f32, 12, 1, 256, 1) == lib.WB_ERR_BAD_ARGUMENT  # Q5_K's id
    assert quantize(u8, f32, q6, 1, 256, 0) == lib.WB_ERR_BAD_THREADS
    assert quantize(u8, f32, q6, 1, 256, 257) == lib.WB_ERR_BAD_THREADS
    assert quantize(ffi.NULL, f32, q6, 1, 256, 1) == lib.WB_ERR_NULL_POINTER
    assert quantize(u8, f32, q6, 0, 256, 1) == lib.WB_OK
    nan = np.zeros(256, np.float32)
    nan[9] = np.nan
    assert quantize(u8, ffi.from_buffer("float[]", nan), q6, 1, 256, 1) == lib.WB_ERR_BAD_ARGUMENT

