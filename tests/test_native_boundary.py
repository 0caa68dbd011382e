"""Issue 18, native boundary: nothing handed to an engine's native path crashes the process or comes back wrong.

Thread counts are checked in one place (nativelib.check_threads) by every
entry point and again in C; the native modules check their own arguments when
called directly; sizes that overflow get an honest status; native and
reference agree at the edges (NaN, +inf, tiny temperatures); ids are
integers or refused. The C side of the same cases runs under ASan and UBSan
in `make sanitize` (native/sanitize/harness.c).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from workbench_engines import moe, sampling
from workbench_engines.errors import EngineError
from workbench_engines.nativelib import THREADS_PER_CPU, check_threads, default_threads, max_threads, native

pytestmark = pytest.mark.native

BAD_THREADS = [0, -1, 50_000, 10**5, 10**6]
NOT_THREAD_COUNTS = [True, 1.5, "2", np.float32(2)]


def _softmax(threads):
    from workbench_engines.softmax import softmax

    return softmax(np.ones((4, 8), np.float32), backend="native", threads=threads)


def _logsumexp(threads):
    from workbench_engines.softmax import native as softmax_native

    return softmax_native.logsumexp(np.ones((4, 8), np.float32), threads=threads)


def _attention(kernel):
    def run(threads):
        from workbench_engines.attention import attention

        q = np.ones((1, 2, 3, 4), np.float32)
        return attention(q, q, q, backend="native", kernel=kernel, threads=threads)

    return run


def _top_k(threads):
    return sampling.top_k(np.ones((3, 10), np.float32), 2, backend="native", threads=threads)


def _top_p(threads):
    return sampling.top_p(np.ones((3, 10), np.float32), 0.5, backend="native", threads=threads)


def _moe_case():
    x = np.ones((5, 4), np.float32)
    experts = np.array([[0, 1], [1, 2], [2, 0], [0, 1], [1, 2]], np.int64)
    return x, experts


def _dispatch(threads):
    x, experts = _moe_case()
    return moe.dispatch(x, experts, 3, 4, backend="native", threads=threads)


def _combine(threads):
    x, experts = _moe_case()
    buffers, positions, _ = moe.dispatch(x, experts, 3, 4)
    return moe.combine(buffers, positions, experts, np.ones(experts.shape, np.float32), backend="native",
                       threads=threads)


def _encode_batch(backend):
    def run(threads):
        from workbench_engines.tokenizers import load

        return load("cl100k_base", backend=backend).encode_batch(["hello world", "again"], threads=threads)

    return run


def _paged(threads):
    import torch

    from workbench_engines.kvcache.native import paged_decode_attention

    return paged_decode_attention(torch.zeros(4, 16), torch.zeros(2, 2, 4, 8 * 16), torch.tensor([0, 1]), 12, 0.25,
                                  threads=threads)


def _linear(threads):
    from workbench_engines.linear import forward

    return forward(np.ones((2, 32), np.float32), np.ones((3, 32), np.float32), backend="native", threads=threads)


ENTRY_POINTS = {
    "softmax": _softmax, "logsumexp": _logsumexp, "attention naive": _attention("naive"),
    "attention flash": _attention("flash"), "top_k": _top_k, "top_p": _top_p, "moe dispatch": _dispatch,
    "moe combine": _combine, "encode_batch native": _encode_batch("native"),
    "encode_batch reference": _encode_batch("reference"), "paged decode": _paged, "linear": _linear,
}


@pytest.mark.parametrize("threads", BAD_THREADS, ids=repr)
@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_every_entry_point_refuses_bad_thread_counts(name, threads):
    # Issue 18: 10^5 threads segfaulted every family inside libgomp; 5·10^4 made it call exit(1);
    # encode_batch(threads=0) meant "default" while the others refused 0.
    with pytest.raises(ValueError, match=f"threads must be an integer from 1 to {max_threads()}, got"):
        ENTRY_POINTS[name](threads)


@pytest.mark.parametrize("threads", NOT_THREAD_COUNTS, ids=repr)
@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_every_entry_point_refuses_what_is_not_an_integer(name, threads):
    with pytest.raises(TypeError, match="threads must be an integer, got"):
        ENTRY_POINTS[name](threads)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_every_entry_point_runs_at_the_limit_and_by_default(name):
    ENTRY_POINTS[name](None)
    ENTRY_POINTS[name](np.int64(1))
    ENTRY_POINTS[name](max_threads())


def test_the_limit_is_a_few_threads_per_cpu_and_never_past_c():
    lib = native().lib
    assert max_threads() == min(THREADS_PER_CPU * os.cpu_count(), lib.WB_MAX_THREADS)
    assert check_threads(None) <= max_threads()
    assert check_threads(np.int32(2)) == 2 and type(check_threads(np.int32(2))) is int


def test_the_default_never_passes_the_limit(monkeypatch):
    # Issue 18 review: on a host with more CPUs than WB_MAX_THREADS, default_threads() was past the cap, so
    # llama.load and the benches, which used it directly, were refused their own default.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(100_000)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the test workers set it to one
    assert default_threads() == max_threads() == check_threads(None)


@pytest.mark.parametrize("value, expected", [("3", 3), ("2,1", 2), (" 1 ", 1), ("64", 4), ("0", 4), ("two", 4),
                                             ("", 4), (None, 4)])
def test_omp_num_threads_lowers_the_default_as_openmp_reads_it(monkeypatch, value, expected):
    """A shared machine (or the test workers) asks for fewer threads the way torch and the BLAS libraries are
    asked; an unreadable value, or one above the CPUs this process may use, leaves the default alone."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    if value is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert default_threads() == check_threads(None) == expected


def test_the_limit_is_worked_out_once(monkeypatch):
    # Issue 18 review: os.cpu_count() (a read of /sys) ran in every kernel call, every decoded token.
    calls = []
    monkeypatch.setattr(os, "cpu_count", lambda: calls.append(1) or 8)
    max_threads.cache_clear()
    try:
        for _ in range(100):
            check_threads(1)
            check_threads(None)
    finally:
        max_threads.cache_clear()
    assert len(calls) == 1


@pytest.mark.parametrize("threads", [0, -5, 257, 50_000, 10**6])  # 257: WB_MAX_THREADS + 1
def test_the_c_kernels_refuse_bad_thread_counts_themselves(threads):
    # Defence in depth: a caller that skips the Python check still gets a status, not a libgomp crash.
    module = native()
    ffi, lib = module.ffi, module.lib
    x = np.ones((64, 64), np.float32)
    out = np.empty_like(x)
    status = lib.wb_softmax_forward_f32(ffi.from_buffer("float[]", out, require_writable=True),
                                        ffi.from_buffer("float[]", x), 64, 64, 64, 64, threads)
    assert status == lib.WB_ERR_BAD_THREADS
    assert lib.wb_attention_workspace_f32(lib.WB_ATTN_NAIVE, 4, 4, 4, 4, threads) == lib.WB_ERR_BAD_THREADS
    # Issue 18 review: linear and quant had caps of their own (WB_LINEAR_/WB_QUANT_MAX_THREADS); one cap now.
    f32 = ffi.from_buffer("float[]", out, require_writable=True)
    assert lib.wb_linear_forward_f32(f32, f32, f32, 1, 1, 1, threads) == lib.WB_ERR_BAD_THREADS
    u8 = ffi.new("uint8_t[]", lib.WB_QUANT_Q8_0_BYTES)
    assert lib.wb_quant_dequantize_f32(f32, u8, lib.WB_QUANT_Q8_0, 1, 32, threads) == lib.WB_ERR_BAD_THREADS
    assert b"WB_MAX_THREADS" in ffi.string(lib.wb_status_message(lib.WB_ERR_BAD_THREADS))


# ---- the native modules check their own arguments ---------------------------------------------------------


def _qkv(lq=3, lk=5, d=4, dtype=np.float32):
    return (np.ones((1, 2, lq, d), dtype), np.ones((1, 2, lk, d), dtype), np.ones((1, 2, lk, d), dtype))


@pytest.mark.parametrize("case, error, match", [
    ("long keys", ValueError, "same heads and length"),
    ("float16", ValueError, "float32"),
    ("mask shape", ValueError, "key_mask"),
    ("kernel", ValueError, "unknown kernel"),
    ("rank", ValueError, r"\[batch, heads, seq, dim\]"),
    ("list", TypeError, "numpy"),
])
def test_attention_native_called_directly_checks_its_arguments(case, error, match):
    from workbench_engines.attention import native as attention_native

    q, k, v = _qkv()
    kwargs = {}
    if case == "long keys":
        k = np.ones((1, 2, 10_000, 4), np.float32)  # k longer than v: the kernel would read past v
    elif case == "float16":
        q, k, v = _qkv(dtype=np.float16)
    elif case == "mask shape":
        kwargs["key_mask"] = np.ones((1, 2), bool)
    elif case == "kernel":
        kwargs["kernel"] = "fast"
    elif case == "rank":
        q = q[0]
    else:
        q = q.tolist()
    with pytest.raises(error, match=match):
        attention_native.attention(q, k, v, **kwargs)


@pytest.mark.parametrize("case, match", [
    ("more expert rows than tokens", "rows"),
    ("expert id too large", "experts must each be an integer from 0 to 2"),
    ("negative expert id", "experts must each be an integer from 0 to 2"),
    ("float64 x", "float32"),
    ("zero capacity", "capacity"),
])
def test_moe_native_dispatch_called_directly_checks_its_arguments(case, match):
    from workbench_engines.moe import native as moe_native

    x, experts = _moe_case()
    capacity = 4
    if case == "more expert rows than tokens":
        experts = np.zeros((5000, 2), np.int64)
    elif case == "expert id too large":
        experts = experts + 1000
    elif case == "negative expert id":
        experts = experts - 5
    elif case == "float64 x":
        x = x.astype(np.float64)
    else:
        capacity = 0
    with pytest.raises(ValueError, match=match):
        moe_native.dispatch(x, experts, 3, capacity)


@pytest.mark.parametrize("backend", ["reference", "native", "torch"])
def test_moe_combine_refuses_out_of_range_rows_and_non_integer_ids(backend):
    from workbench_engines.moe import native as moe_native

    x, experts = _moe_case()
    buffers, positions, _ = moe.dispatch(x, experts, 3, 4)
    weights = np.ones(experts.shape, np.float32)
    with pytest.raises(ValueError, match="experts must each be an integer from 0 to 2"):
        moe_native.combine(buffers, positions, experts + 1000, weights)
    with pytest.raises(ValueError, match="experts must each be an integer from 0 to 2"):
        moe.combine(buffers, positions, experts - 3, weights, backend=backend)  # negative ids wrapped around
    with pytest.raises(ValueError, match="positions must each be an integer from -1 to 3"):
        moe.combine(buffers, positions - 5, experts, weights, backend=backend)
    # Issue 18: a NaN position became a huge negative int64, read as "dropped".
    nan_positions = positions.astype(np.float64)
    nan_positions[0, 0] = np.nan
    with pytest.raises(TypeError, match="positions must hold integers"):
        moe.combine(buffers, nan_positions, experts, weights, backend=backend)
    with pytest.raises(TypeError, match="experts must hold integers"):
        moe.combine(buffers, positions, experts.astype(np.float32), weights, backend=backend)


@pytest.mark.parametrize("backend", ["reference", "native", "torch"])
def test_moe_dispatch_takes_ids_as_combine_does(backend):
    # Issue 18 review: dispatch demanded int64 with ValueError while combine took any integer dtype and refused
    # floats with TypeError; both now go through arrays.require_int_array.
    x, experts = _moe_case()
    expected = moe.dispatch(x, experts, 3, 4, backend=backend)
    for ids in (experts.astype(np.int32), experts.astype(np.uint8), experts.tolist()):
        for got, want in zip(moe.dispatch(x, ids, 3, 4, backend=backend), expected):
            np.testing.assert_array_equal(got, want)
    for bad in (experts.astype(np.float64), experts.astype(bool)):
        with pytest.raises(TypeError, match="experts must hold integers"):
            moe.dispatch(x, bad, 3, 4, backend=backend)
        with pytest.raises(TypeError, match="experts must hold integers"):
            moe.combine(expected[0], expected[1], bad, np.ones(experts.shape, np.float32), backend=backend)
    with pytest.raises(TypeError, match="capacity must be an integer"):
        moe.dispatch(x, experts, 3, 4.0, backend=backend)


def test_moe_combine_backends_agree_when_a_dropped_slot_points_at_inf():
    x, experts = _moe_case()
    buffers, positions, _ = moe.dispatch(x, experts, 3, 1)  # capacity 1: most slots are dropped
    buffers[:, 0, :] = np.inf  # where a dropped slot's placeholder index points
    buffers[0, 0, :] = 1.0
    weights = np.full(experts.shape, 0.5, np.float32)
    expected = moe.combine(buffers, positions, experts, weights, backend="native")
    for backend in ("reference", "torch"):
        got = moe.combine(buffers, positions, experts, weights, backend=backend)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))


# ---- sizes that overflow get an honest status --------------------------------------------------------------


def test_workspace_queries_that_overflow_say_so():
    from workbench_engines.nativelib import check_status

    module = native()
    ffi, lib = module.ffi, module.lib
    huge = 1 << 40
    assert lib.wb_attention_workspace_f32(lib.WB_ATTN_NAIVE, huge, huge, 4, 4, 1) == lib.WB_ERR_TOO_LARGE
    assert lib.wb_attention_workspace_f32(lib.WB_ATTN_NAIVE, 1 << 31, 1 << 31, 4, 4, 256) == lib.WB_ERR_TOO_LARGE
    assert lib.wb_attention_workspace_f32(lib.WB_ATTN_FLASH, 1, 1, 2**62, 4, 1) == lib.WB_ERR_TOO_LARGE
    assert lib.wb_attention_workspace_f32(7, 1, 1, 4, 4, 1) == lib.WB_ERR_BAD_ARGUMENT
    assert lib.wb_quant_workspace_bytes(huge, huge) == lib.WB_ERR_TOO_LARGE
    # The forward reports the size problem, not "the output buffer is too small".
    out = np.zeros(16, np.float32)
    p = ffi.from_buffer("float[]", out, require_writable=True)
    status = lib.wb_attention_forward_f32(p, p, p, p, huge, 1 << 20, 1, 1 << 20, 1, 4, 4, 1.0, 0, 0, ffi.NULL,
                                          lib.WB_ATTN_NAIVE, p, 16, 1)
    assert status == lib.WB_ERR_TOO_LARGE
    with pytest.raises(EngineError, match="64-bit"):
        check_status("wb_attention_forward_f32", status)


# ---- native and reference agree at the edges ---------------------------------------------------------------

EDGE_ROWS = {
    "nan": [1.0, np.nan, 3.0, 2.0, 3.0],
    "all nan": [np.nan] * 4,
    "+inf": [1.0, np.inf, 2.0, np.inf],
    "-inf row": [-np.inf] * 3,
    "nan and -inf": [-np.inf, np.nan, -np.inf],
    "ties": [3.0, 3.0, 1.0, -2.0],
}


@pytest.mark.parametrize("temperature", [1.0, 1e-30, 1e-39, 1e-45, 1e-300])
@pytest.mark.parametrize("p", [0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("row", list(EDGE_ROWS))
def test_native_top_p_agrees_with_the_reference_at_the_edges(row, p, temperature):
    # Issue 18: below T ~ 1e-38, or with a NaN in the row, the native kernel kept no token at all.
    x = np.array(EDGE_ROWS[row], np.float32)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        expected = sampling.top_p(x, p, temperature=temperature)
    got = sampling.top_p(x, p, temperature=temperature, backend="native")
    np.testing.assert_array_equal(got, expected)
    if row in ("nan", "ties"):
        assert np.isfinite(got).any()  # the native kernel used to keep none


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("row", list(EDGE_ROWS))
def test_native_top_k_agrees_with_the_reference_at_the_edges(row, k):
    x = np.array(EDGE_ROWS[row], np.float32)
    np.testing.assert_array_equal(sampling.top_k(x, k, backend="native"), sampling.top_k(x, k))


@pytest.mark.parametrize("temperature", [5e-324, 1e-310, np.inf, np.nan, 0.0, -1.0])
@pytest.mark.parametrize("backend", ["reference", "native", "torch"])
def test_temperatures_without_a_finite_reciprocal_are_refused(backend, temperature):
    with pytest.raises(ValueError, match="temperature"):
        sampling.top_p(np.ones(4, np.float32), 0.5, temperature=temperature, backend=backend)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("ids", [[True], [1, False], [1.0], [np.float32(2)]], ids=repr)
def test_decode_refuses_what_token_bytes_refuses(backend, ids):
    from workbench_engines.tokenizers import load

    tokenizer = load("cl100k_base", backend=backend)
    with pytest.raises(EngineError, match="token ids are integers"):
        tokenizer.decode(ids)
    assert tokenizer.decode([np.int64(i) for i in tokenizer.encode("Hi")]) == "Hi"


def test_paged_decoder_refuses_float_block_ids_and_lengths():
    import torch

    from workbench_engines.kvcache.native import PagedDecoder, paged_decode_attention

    pool = torch.zeros(2, 2, 4, 8 * 16)
    q = torch.zeros(4, 16)
    # Issue 18: 1.7 was truncated to block 1.
    for table in (torch.tensor([0.0, 1.7]), np.array([0.0, 1.0]), [0.5], torch.tensor([True, False])):
        with pytest.raises(TypeError, match="block ids must hold integers"):
            paged_decode_attention(q, pool, table, 12, 0.25)
    with pytest.raises(TypeError, match="length"):
        paged_decode_attention(q, pool, torch.tensor([0, 1]), 12.9, 0.25)
    with pytest.raises(TypeError, match="block_size"):
        PagedDecoder(pool[None], 4, 8.0)
    decoder = PagedDecoder(pool[None], 4, 8)
    decoder.set_table(np.array([0, 1], np.int32))
    with pytest.raises(TypeError, match="slot"):
        decoder.attend(0, q, 3, 0.25, new_kv=(torch.zeros(2, 16), torch.zeros(2, 16)), slot=(0, 1.5))
    assert decoder.attend(0, q, 12, 0.25).shape == (4, 16)


# ---- vocabularies: dense ids, short reprs -------------------------------------------------------------------


def test_a_sparse_rank_file_is_refused_with_its_line(tmp_path):
    import base64

    from workbench_engines.tokenizers.formats import VocabFileError, load_tiktoken_file

    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    lines.append(f"{base64.b64encode(b'ab').decode()} {10**7}")
    path = tmp_path / "sparse.tiktoken"
    path.write_text("\n".join(lines) + "\n")
    # Issue 18: 257 lines allocated about 900 MB for a decoder table of 10^7 slots.
    with pytest.raises(VocabFileError, match=r"sparse.tiktoken:257: rank 10000000 for 257 tokens; ranks must be dense"):
        load_tiktoken_file(path, pattern="gpt2")


def test_sparse_ids_are_refused_however_the_vocabulary_arrives():
    from workbench_engines.tokenizers.bpe import BPETokenizer
    from workbench_engines.tokenizers.wordpiece import WordPiece

    ranks = {bytes([b]): b for b in range(256)}
    with pytest.raises(EngineError, match="dense"):
        BPETokenizer("t", {**ranks, b"ab": 10**7}, backend="reference")
    with pytest.raises(EngineError, match="dense"):
        BPETokenizer("t", ranks, special_tokens={"<|x|>": 10**9}, backend="reference")
    for bad in (-1, True, 300.0):
        with pytest.raises(EngineError, match=f"non-negative integers, got {bad!r}"):
            BPETokenizer("t", ranks, special_tokens={"<|x|>": bad}, backend="reference")
    with pytest.raises(EngineError, match="dense"):
        WordPiece({"[UNK]": 0, "a": 10**8})
    assert BPETokenizer("t", {**ranks, b"ab": 300}, special_tokens={"<|x|>": 400}, backend="reference").vocab_size == 401


def test_tokenizers_have_a_short_repr():
    from workbench_engines.tokenizers import load
    from workbench_engines.tokenizers.unigram import Unigram
    from workbench_engines.tokenizers.wordpiece import WordPiece

    for tokenizer, words in ((load("cl100k_base"), ("cl100k_base", "100256")),
                             (WordPiece({"[UNK]": 0, **{f"w{i}": i + 1 for i in range(5000)}}), ("5001",)),
                             (Unigram([("<unk>", 0.0), *((f"p{i}", -1.0) for i in range(5000))]), ("5001",))):
        text = repr(tokenizer)
        assert len(text) < 200 and all(w in text for w in words), text


@pytest.mark.parametrize("window", [10**30, 2**63, 7])
def test_a_window_wider_than_the_sequence_is_no_window(window, rng):
    from workbench_engines.attention import attention

    q, k, v = (rng.standard_normal((1, 2, n, 4)).astype(np.float32) for n in (3, 5, 5))
    for causal in (False, True):
        expected = attention(q, k, v, causal=causal, window=window)
        np.testing.assert_allclose(attention(q, k, v, causal=causal, window=window, backend="native"), expected,
                                   atol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "torch", "native"])
def test_zero_sizes_agree_across_backends(backend):
    from workbench_engines.attention import attention

    q = np.ones((1, 1, 3, 4), np.float32)
    no_keys = np.ones((1, 1, 0, 4), np.float32)
    np.testing.assert_array_equal(attention(q, no_keys, no_keys, backend=backend), np.zeros((1, 1, 3, 4)))
    assert attention(q, q, np.ones((1, 1, 3, 0), np.float32), backend=backend).shape == (1, 1, 3, 0)
    with pytest.raises(ValueError, match="head dim of at least 1"):
        attention(np.ones((1, 1, 3, 0), np.float32), np.ones((1, 1, 3, 0), np.float32), q, backend=backend)
    for x, experts in ((np.ones((3, 0), np.float32), np.zeros((3, 1), np.int64)),
                       (np.ones((3, 2), np.float32), np.zeros((3, 0), np.int64))):
        buffers, positions, counts = moe.dispatch(x, experts, 3, 2, backend=backend)
        expected = moe.dispatch(x, experts, 3, 2)
        for got, want in zip((buffers, positions, counts), expected):
            np.testing.assert_array_equal(got, want)
        y = moe.combine(buffers, positions, experts, np.ones(experts.shape, np.float32), backend=backend)
        assert y.shape == x.shape and not y.any()
