"""The CUDA attention kernels: the build and the checks run anywhere nvcc is; parity needs a GPU.

Parity is against torch's SDPA on the same inputs upcast to float32, by
relative error ||out - ref|| / ||ref||: bf16 inputs round P and the output to
8 bits of mantissa, so its bound is looser than fp16's.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from workbench_engines.attention import attention  # noqa: E402
from workbench_engines.attention import cuda as cuda_attention  # noqa: E402
from workbench_engines.cudalib import build, cdef_text, cuda_status, find_nvcc  # noqa: E402

HAS_GPU = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU of compute capability 8.0 or newer")
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="needs nvcc")
pytestmark = pytest.mark.cuda

TOLERANCE = {torch.float16: 3e-3, torch.bfloat16: 1.5e-2}


def test_headers_are_a_valid_cdef_sharing_the_cpu_constants():
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(cdef_text())
    lib = ffi.dlopen(None)  # the process itself: enough to read the headers' constants
    assert (lib.WB_ATTN_NAIVE, lib.WB_ATTN_FLASH) == (0, 1)
    assert lib.WB_ERR_BAD_ARGUMENT < 0 and lib.WB_CUDA_ERROR_BASE < lib.WB_ERR_BAD_ARGUMENT


@pytest.mark.slow
@needs_nvcc
@pytest.mark.parametrize("capability", [(8, 0), (9, 0)])
def test_nvcc_builds_a_library_that_loads_and_reports(tmp_path, monkeypatch, capability):
    from cffi import FFI

    monkeypatch.setenv("WB_CUDA_CACHE", str(tmp_path))
    library = build(capability)
    assert library.is_file() and build(capability) == library  # the second call is the cached one
    log = (library.parent / "build.log").read_text()
    assert "flash_forward" in log and "spill" in log  # ptxas's per-kernel report
    ffi = FFI()
    ffi.cdef(cdef_text())
    lib = ffi.dlopen(str(library))
    count = ffi.new("int *")
    status = lib.wb_cuda_device_count(count)
    assert (status == 0) == (count[0] > 0)
    assert ffi.string(lib.wb_cuda_status_message(status))
    assert ffi.string(lib.wb_status_build_info()) == f"nvcc sm_{capability[0]}{capability[1]}".encode()
    # Argument errors read the CPU library's table (wb_status.c is compiled in);
    # a CUDA failure is named by the runtime (error 2 is cudaErrorMemoryAllocation).
    for code in (lib.WB_ERR_NULL_POINTER, lib.WB_ERR_BAD_SIZE, lib.WB_ERR_OUTPUT_FULL, lib.WB_ERR_BAD_ARGUMENT):
        assert ffi.string(lib.wb_cuda_status_message(code)) == ffi.string(lib.wb_status_message(code))
    assert b"out of range" in ffi.string(lib.wb_cuda_status_message(lib.WB_ERR_BAD_ARGUMENT))
    assert b"memory" in ffi.string(lib.wb_cuda_status_message(lib.WB_CUDA_ERROR_BASE - 2))
    # Argument errors come back before any CUDA call, GPU or not.
    one = ffi.cast("void *", 16)
    naive, flash = lib.WB_ATTN_NAIVE, lib.WB_ATTN_FLASH
    for forward in (lib.wb_attention_forward_cuda_f16, lib.wb_attention_forward_cuda_bf16):
        assert forward(one, one, one, one, 1, 8, 3, 4, 4, 64, 1.0, 0, flash, ffi.NULL, 0, 0, ffi.NULL) \
            == lib.WB_ERR_BAD_ARGUMENT  # 8 heads over 3 kv heads
        assert forward(one, one, one, one, 1, 8, 8, 4, 4, 96, 1.0, 0, flash, ffi.NULL, 0, 0, ffi.NULL) \
            == lib.WB_ERR_BAD_ARGUMENT  # flash takes d 64 or 128
        assert forward(one, one, one, one, 1, 8, 8, 4, 4, 64, 1.0, 0, 7, ffi.NULL, 0, 0, ffi.NULL) \
            == lib.WB_ERR_BAD_ARGUMENT  # no such kernel
        assert forward(one, one, one, one, 1, 8, 8, 4, 4, 64, 1.0, 0, naive, ffi.NULL, 0, 0, ffi.NULL) \
            == lib.WB_ERR_NULL_POINTER  # naive needs a workspace
        assert forward(one, one, one, one, 1, 8, 8, 4, 4, 64, 1.0, 0, naive, one, 8, 0, ffi.NULL) \
            == lib.WB_ERR_OUTPUT_FULL  # 8 bytes where 8 * 4 * 4 floats are needed
    assert lib.wb_attention_workspace_cuda(naive, 1, 8, 4, 4) == 8 * 4 * 4 * 4
    assert lib.wb_attention_workspace_cuda(flash, 1, 8, 4, 4) == 0
    # Issue 18: the product wrapped, and a failed query (-1) read as "the workspace is too small".
    huge = 1 << 20
    assert lib.wb_attention_workspace_cuda(naive, huge, huge, huge, huge) == lib.WB_ERR_TOO_LARGE
    assert lib.wb_attention_workspace_cuda(naive, -1, 8, 4, 4) == lib.WB_ERR_BAD_SIZE
    assert lib.wb_attention_workspace_cuda(7, 1, 8, 4, 4) == lib.WB_ERR_BAD_ARGUMENT


def _cpu(shape, dtype=torch.bfloat16):
    return torch.randn(shape).to(dtype)


@pytest.mark.parametrize("make, error, match", [
    (lambda: (np.zeros((1, 1, 4, 64), np.float32),) * 3, TypeError, "torch tensors"),
    (lambda: (_cpu((1, 1, 4, 64), torch.float32),) * 3, ValueError, "float16 or bfloat16"),
    (lambda: (_cpu((1, 1, 4, 64)), _cpu((1, 1, 4, 64), torch.float16), _cpu((1, 1, 4, 64))), ValueError, "share a dtype"),
    (lambda: (_cpu((1, 1, 4, 96)),) * 3, ValueError, "head dim 64 or 128"),
    (lambda: (_cpu((1, 4, 64)),) * 3, ValueError, "batch, heads, seq, dim"),
    (lambda: (_cpu((1, 3, 4, 64)), _cpu((1, 2, 4, 64)), _cpu((1, 2, 4, 64))), ValueError, "multiple"),
    (lambda: (_cpu((1, 1, 4, 64)), _cpu((1, 1, 4, 64)), _cpu((1, 1, 4, 32))), ValueError, "v's head dim"),
    (lambda: (_cpu((1, 1, 64, 4)).transpose(2, 3),) * 3, ValueError, "contiguous"),
    (lambda: (_cpu((1, 1, 4, 64)),) * 3, ValueError, "on a GPU"),
])
def test_bad_input_raises_before_the_library_loads(make, error, match):
    q, k, v = make()
    with pytest.raises(error, match=match):
        attention(q, k, v, backend="cuda")


def test_masks_the_kernels_lack_are_refused():
    q = _cpu((1, 1, 4, 64))
    with pytest.raises(ValueError, match="causal mask only"):
        attention(q, q, q, backend="cuda", window=2)
    with pytest.raises(ValueError, match="causal mask only"):
        attention(q, q, q, backend="cuda", key_mask=np.ones((1, 4), bool))
    with pytest.raises(ValueError, match="unknown kernel"):
        attention(q, q, q, backend="cuda", kernel="tiled")


@pytest.mark.skipif(HAS_GPU, reason="checks the report on a machine without a GPU")
def test_status_names_the_reason_without_a_gpu():
    status = cuda_status()
    assert not status.loaded and status.error


# ---- failure paths, without a GPU (issue 18) -----------------------------------------------------


@pytest.fixture
def fresh_cudalib(monkeypatch):
    """cudalib with no remembered library or failure, restored afterwards; torch told a GPU is present."""
    from workbench_engines import cudalib

    monkeypatch.setattr(cudalib, "_loaded", None)
    monkeypatch.setattr(cudalib, "_failure", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    return cudalib


def test_missing_sources_make_an_unavailable_status_not_a_crash(fresh_cudalib, monkeypatch, tmp_path):
    # A plain install had no native/cuda: cuda_status() raised FileNotFoundError and doctor crashed.
    monkeypatch.setattr(fresh_cudalib, "find_nvcc", lambda: tmp_path / "nvcc")
    monkeypatch.setattr(fresh_cudalib, "_nvcc_version", lambda nvcc: "release 12.8")
    monkeypatch.setattr(fresh_cudalib, "native_dir", lambda: tmp_path / "gone")
    status = fresh_cudalib.cuda_status()
    assert not status.loaded and "wb_attention.cu" in status.error


def test_a_failed_build_is_remembered_not_retried(fresh_cudalib, monkeypatch):
    calls = []

    def failing_build(capability, nvcc=None):
        calls.append(capability)
        raise fresh_cudalib.CudaUnavailable("nvcc failed for sm_90")

    monkeypatch.setattr(fresh_cudalib, "build", failing_build)
    for _ in range(3):
        assert "nvcc failed" in fresh_cudalib.cuda_status().error
    with pytest.raises(fresh_cudalib.CudaUnavailable, match="nvcc failed"):
        fresh_cudalib.cuda_library()
    assert calls == [(9, 0)]
    fresh_cudalib.forget_failure()
    fresh_cudalib.cuda_status()
    assert len(calls) == 2


def test_an_unwritable_cache_is_an_unavailable_status(fresh_cudalib, monkeypatch, tmp_path):
    def unwritable(capability, nvcc=None):
        raise PermissionError(13, "Permission denied", str(tmp_path / "cache"))

    monkeypatch.setattr(fresh_cudalib, "build", unwritable)
    status = fresh_cudalib.cuda_status()
    assert not status.loaded and "Permission denied" in status.error


def test_the_sources_are_found_through_importlib_resources():
    from workbench_engines import cudalib

    names = {p.name for p in (*cudalib.sources(), *cudalib.headers())}
    assert names == {"wb_attention.cu", "wb_status.c", "wb_status.h", "wb_attention.h", "wb_attention_cuda.h"}
    assert all(p.is_file() for p in (*cudalib.sources(), *cudalib.headers()))
    assert (cudalib.native_dir() / "include" / "wb_checked.h").is_file()


# ---- on the GPU -------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_GPU or torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_the_callers_current_device_is_restored():
    torch.cuda.set_device(0)
    q = torch.randn(1, 2, 64, 64, device="cuda:1", dtype=torch.float16)
    attention(q, q, q, backend="cuda")
    assert torch.cuda.current_device() == 0


def _reference(q, k, v, causal, scale=None):
    """SDPA in float32 on the same values; grouped heads expanded, queries at the last lq positions."""
    q, k, v = (t.float() for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    lq, lk = q.shape[2], k.shape[2]
    mask = None
    if causal:
        pos = torch.arange(lq, device=q.device)[:, None] + lk - lq
        mask = torch.arange(lk, device=q.device)[None, :] <= pos
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return torch.nan_to_num(out, nan=0.0)  # a query that sees nothing: zeros, the engines' contract


def _relative_error(out, ref):
    return float((out.float() - ref).norm() / ref.norm().clamp_min(1e-12))


def _inputs(batch, heads, kv_heads, lq, lk, d, dtype, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(batch, heads, lq, d, device="cuda", generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, lk, d, device="cuda", generator=gen).to(dtype)
    v = torch.randn(batch, kv_heads, lk, d, device="cuda", generator=gen).to(dtype)
    return q, k, v


SHAPES = [  # batch, heads, kv_heads, lq, lk
    (1, 1, 1, 1, 1),
    (2, 4, 4, 17, 17),
    (1, 8, 2, 127, 127),
    (1, 8, 1, 128, 128),
    (2, 6, 3, 200, 200),
    (1, 4, 4, 1000, 1000),
    (1, 4, 2, 1, 300),      # one decoding step against a cache
    (1, 4, 4, 5, 130),      # a chunk of queries at the end of the keys
    (1, 2, 2, 300, 1),      # more queries than keys: causal rows before the first key see nothing
]


@needs_gpu
@pytest.mark.parametrize("kernel", ["flash", "naive"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_sdpa_in_float32(shape, causal, d, dtype, kernel, rng):
    batch, heads, kv_heads, lq, lk = shape
    q, k, v = _inputs(batch, heads, kv_heads, lq, lk, d, dtype, seed=int(rng.integers(2**31)))
    out = torch.full_like(q, float("nan"))  # poison: every element must be written
    cuda_attention.attention(q, k, v, causal=causal, kernel=kernel, out=out)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert _relative_error(out, _reference(q, k, v, causal)) < TOLERANCE[dtype]


@needs_gpu
@pytest.mark.parametrize("d", [64, 128])
def test_long_sequence_and_custom_scale(d, rng):
    q, k, v = _inputs(1, 2, 1, 4096, 4096, d, torch.bfloat16, seed=int(rng.integers(2**31)))
    for causal in (False, True):
        out = attention(q, k, v, causal=causal, scale=0.3, backend="cuda")
        assert _relative_error(out, _reference(q, k, v, causal, scale=0.3)) < TOLERANCE[torch.bfloat16]


@needs_gpu
def test_causal_output_ignores_future_tokens(rng):
    q, k, v = _inputs(1, 4, 4, 256, 256, 64, torch.float16, seed=int(rng.integers(2**31)))
    before = attention(q, k, v, causal=True, backend="cuda")
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 150:] = torch.randn_like(k2[:, :, 150:])
    v2[:, :, 150:] = torch.randn_like(v2[:, :, 150:])
    after = attention(q, k2, v2, causal=True, backend="cuda")
    assert torch.equal(before[:, :, :150], after[:, :, :150])
    assert not torch.equal(before[:, :, 150:], after[:, :, 150:])


@needs_gpu
def test_runs_on_torchs_current_stream_and_large_scores_stay_finite(rng):
    stream = torch.cuda.Stream()
    q, k, v = _inputs(1, 2, 2, 333, 333, 128, torch.bfloat16, seed=int(rng.integers(2**31)))
    q = (q.float() * 30).to(torch.bfloat16)  # scores in the hundreds: the running max must keep exp in range
    with torch.cuda.stream(stream):
        out = attention(q, k, v, backend="cuda")
    stream.synchronize()
    assert torch.isfinite(out).all()
    assert _relative_error(out, _reference(q, k, v, False)) < TOLERANCE[torch.bfloat16]


@needs_gpu
def test_empty_inputs():
    q, k, v = _inputs(1, 2, 2, 0, 5, 64, torch.float16, seed=1)
    assert attention(q, k, v, backend="cuda").shape == (1, 2, 0, 64)
    q, k, v = _inputs(1, 2, 2, 3, 0, 64, torch.float16, seed=1)
    assert torch.equal(attention(q, k, v, backend="cuda"), torch.zeros_like(q))


@needs_gpu
def test_status_reports_the_device():
    status = cuda_status()
    assert status.loaded and status.library.is_file() and status.device
