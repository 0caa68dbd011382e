"""Attention sinks (engines.longctx.streaming): the chunked fast path equals a token-by-token rolling cache, and
the RoPE-past-context measurement (engines.longctx.rope_long) runs its code path on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.longctx import streaming
from workbench_engines.longctx.rope_long import buckets, past_context
from workbench_engines.models.gpt import GPT, GPTConfig


def tiny(rng, context: int = 64, kv_heads: int = 2) -> GPT:
    """A random small GPT with GQA and weights large enough that attention is far from uniform."""
    torch.manual_seed(int(rng.integers(1 << 31)))
    model = GPT(GPTConfig(vocab_size=40, context=context, d_model=32, n_layers=2, n_heads=4, n_kv_heads=kv_heads))
    with torch.no_grad():
        for block in model.blocks:
            block.attn.q.weight.mul_(15)
            block.attn.kv.weight.mul_(15)
    return model.eval()


@pytest.mark.parametrize(("method", "cache", "sinks"), [("dense", None, 4), ("window", 8, 4), ("sinks", 8, 4),
                                                        ("sinks", 9, 1), ("sinks", 12, 3)])
@pytest.mark.parametrize("chunk", [1, 5, 256])
def test_fast_path_equals_the_rolling_cache_token_by_token(rng, method, cache, sinks, chunk):
    model = tiny(rng, kv_heads=int(rng.choice([1, 2, 4])))
    ids = rng.integers(0, 40, int(rng.integers(30, 41)))
    fast = streaming.stream_nll(model, ids, method=method, cache=cache, sinks=sinks, chunk=chunk)
    slow = streaming.stream_nll_reference(model, ids, method=method, cache=cache, sinks=sinks)
    assert fast.nll.shape == slow.shape == (len(ids) - 1,)
    np.testing.assert_allclose(fast.nll, slow, rtol=1e-5, atol=1e-5)


def test_the_rolling_cache_without_eviction_is_the_models_own_forward(rng):
    model = tiny(rng)
    ids = rng.integers(0, 40, 30)
    with torch.inference_mode():
        logits = model(torch.as_tensor(ids[None]))[0, :-1]
    expected = torch.nn.functional.cross_entropy(logits, torch.as_tensor(ids[1:]), reduction="none").numpy()
    np.testing.assert_allclose(streaming.stream_nll_reference(model, ids, method="dense"), expected, rtol=1e-5,
                               atol=1e-5)
    # A cache larger than the stream never evicts: every method reads the stream as dense does.
    for method in ("window", "sinks"):
        np.testing.assert_allclose(streaming.stream_nll(model, ids, method=method, cache=40, sinks=2).nll, expected,
                                   rtol=1e-5, atol=1e-5)


def test_methods_agree_before_the_first_eviction_and_differ_after(rng):
    model = tiny(rng)
    ids = rng.integers(0, 40, 40)
    curves = {m: streaming.stream_nll(model, ids, method=m, cache=10, sinks=2).nll for m in streaming.METHODS}
    for method in ("window", "sinks"):
        np.testing.assert_allclose(curves[method][:10], curves["dense"][:10], rtol=1e-5, atol=1e-5)
        assert np.abs(curves[method][10:] - curves["dense"][10:]).max() > 1e-3
    assert np.abs(curves["sinks"][10:] - curves["window"][10:]).max() > 1e-3


def test_curve_accounts_the_cache_and_perplexity_by_range(rng):
    model = tiny(rng)
    ids = rng.integers(0, 40, 25)
    curve = streaming.stream_nll(model, ids, method="sinks", cache=8, sinks=4)
    assert (curve.sinks, curve.cache) == (4, 8)
    assert curve.cache_bytes == 8 * model.config.kv_bytes_per_token(4) == 8 * 2 * 2 * 2 * 8 * 4
    assert streaming.stream_nll(model, ids, method="dense").cache == 25
    assert curve.perplexity(3, 9) == pytest.approx(float(np.exp(curve.nll[3:9].mean())))
    with pytest.raises(EngineError, match="no scored token"):
        curve.perplexity(30, 40)


def test_bad_arguments_are_refused(rng):
    model = tiny(rng, context=16)
    ids = rng.integers(0, 40, 20)
    for kwargs, match in (({"method": "h2o", "cache": 8}, "unknown streaming method"),
                          ({"method": "sinks", "cache": 8, "sinks": 8}, "no window"),
                          ({"method": "sinks", "cache": 8, "sinks": 0}, "sinks must be"),
                          ({"method": "window", "cache": 32}, "past the model's context"),
                          ({"method": "window", "cache": None}, "cache must be")):
        with pytest.raises((EngineError, ValueError, TypeError), match=match):
            streaming.stream_nll(model, ids, **kwargs)
    with pytest.raises(EngineError, match="two tokens"):
        streaming.stream_nll(model, ids[:1], method="dense")
    with pytest.raises(Cancelled):
        streaming.stream_nll(model, ids, method="dense", should_stop=lambda: True)


def test_dense_reads_past_the_models_tables_with_plain_rope(rng):
    model = tiny(rng, context=16)
    ids = rng.integers(0, 40, 24)
    np.testing.assert_allclose(streaming.stream_nll(model, ids, method="dense", chunk=7).nll,
                               streaming.stream_nll_reference(model, ids, method="dense"), rtol=1e-5, atol=1e-5)


def test_compare_reports_progress_across_methods(rng):
    model = tiny(rng)
    seen = []
    curves = streaming.compare(model, rng.integers(0, 40, 20), cache=8, sinks=2,
                               progress=lambda f, what: seen.append(f))
    assert [c.method for c in curves] == list(streaming.METHODS)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_rope_past_context_runs_each_method_on_a_stretched_copy(rng):
    model = tiny(rng, context=16)
    ids = rng.integers(0, 40, 50).tolist()
    curves = past_context(model, ids, tokens=40)
    assert [c.method for c in curves] == ["plain", "pi", "ntk", "yarn"]
    assert model.config.context == 16 and model.rope_cos.shape[0] == 16  # the model lent itself unchanged
    plain = curves[0]
    np.testing.assert_allclose(plain.nll, streaming.stream_nll(model, ids[:40], method="dense").nll, rtol=1e-4,
                               atol=1e-4)
    assert [(lo, hi) for lo, hi, _ in buckets(plain, 40, 16)] == [(0, 16), (16, 32), (32, 40)]
    with pytest.raises(ValueError, match="tokens must be"):
        past_context(model, ids, tokens=16)  # not past the context
    with pytest.raises(EngineError, match="holds 50 tokens"):
        past_context(model, ids, tokens=60)


@pytest.mark.slow
def test_fast_path_equals_the_rolling_cache_on_smollm2():
    from workbench_engines.evaluation.heldout import held_out_plays
    from workbench_engines.models.llama import bundled

    smol = bundled("quantized")
    ids = held_out_plays(smol.tokenizer, 1).ids[:24]
    for method in ("window", "sinks"):
        fast = streaming.stream_nll(smol.model, ids, method=method, cache=12, sinks=4, chunk=5).nll
        slow = streaming.stream_nll_reference(smol.model, ids, method=method, cache=12, sinks=4)
        # float32 round-off only: the token loop's one-row products run the quantised C kernel, the chunks torch's GEMM
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-3)
