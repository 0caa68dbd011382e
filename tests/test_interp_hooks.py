"""engines.interp.hooks: sites read what the model computes, edits change only what they say, on the small GPT
(every test) and SmolLM2's quantised model (where installed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import needs_smollm
from workbench_engines.errors import EngineError
from workbench_engines.interp import attention_patterns, hooked, patched, replace_with, run_with_cache, zero_head
from workbench_engines.models import small_gpt

pytestmark = pytest.mark.no_c_path  # interpretability calls no C kernel of its own


@pytest.fixture(scope="module")
def gpt():
    return small_gpt.load("target").model


def _ids(rng, n=24, vocab=2048):
    return rng.integers(0, vocab, (2, n))


def test_an_identity_edit_leaves_the_logits_bit_identical(gpt, rng):
    ids = _ids(rng)
    plain = gpt(torch.from_numpy(ids))
    sites = [f"{kind}.{layer}" for kind in ("resid_pre", "resid_post", "attn_out", "mlp_out", "head_z")
             for layer in (0, 3, 5)]
    logits, _ = run_with_cache(gpt, ids, [], edits={s: (lambda x: x.clone()) for s in sites})
    assert torch.equal(logits, plain)


def test_sites_decompose_the_residual_stream(gpt, rng):
    ids = _ids(rng)
    sites = ["resid_pre.2", "attn_out.2", "mlp_out.2", "resid_post.2", "resid_pre.3", "head_z.2", "resid_post.5"]
    logits, cache = run_with_cache(gpt, ids, sites)
    torch.testing.assert_close(cache["resid_pre.2"] + cache["attn_out.2"] + cache["mlp_out.2"], cache["resid_post.2"])
    assert torch.equal(cache["resid_post.2"], cache["resid_pre.3"])
    z = cache["head_z.2"]
    assert z.shape == (2, 24, 6, 32)
    torch.testing.assert_close(gpt.blocks[2].attn.out(z.reshape(2, 24, -1)), cache["attn_out.2"])
    torch.testing.assert_close(gpt.unembed(gpt.norm(cache["resid_post.5"])), logits)
    assert set(cache) == set(sites)  # only what was asked for is kept


def test_zeroing_a_head_changes_only_that_heads_share(gpt, rng):
    ids = _ids(rng)
    _, clean = run_with_cache(gpt, ids, ["head_z.1", "attn_out.1"])
    _, ablated = run_with_cache(gpt, ids, ["head_z.1", "attn_out.1"], edits={"head_z.1": zero_head(4)})
    z = ablated["head_z.1"]
    assert torch.equal(z[:, :, 4], torch.zeros_like(z[:, :, 4]))
    assert torch.equal(z[:, :, :4], clean["head_z.1"][:, :, :4])
    w = gpt.blocks[1].attn.out.weight[:, 4 * 32 : 5 * 32]  # the columns head 4 writes through
    torch.testing.assert_close(clean["attn_out.1"] - ablated["attn_out.1"], clean["head_z.1"][:, :, 4] @ w.T)
    with pytest.raises(EngineError, match="head 6 is out of range"):
        run_with_cache(gpt, ids, [], edits={"head_z.1": zero_head(6)})


def test_patching_a_run_into_itself_changes_nothing_and_into_another_copies_it(gpt, rng):
    a, b = _ids(rng)[:1], _ids(rng)[:1]
    logits_a, cache_a = run_with_cache(gpt, a, ["resid_post.2"])
    same, _ = run_with_cache(gpt, a, [], edits={"resid_post.2": replace_with(cache_a["resid_post.2"])})
    assert torch.equal(same, logits_a)
    moved, cache = run_with_cache(gpt, b, ["resid_post.2", "resid_pre.3"],
                                  edits={"resid_post.2": replace_with(cache_a["resid_post.2"], positions=[5])})
    assert torch.equal(cache["resid_pre.3"][:, 5], cache_a["resid_post.2"][:, 5])
    # Causal: positions before 5 never see the patch.
    plain_b, _ = run_with_cache(gpt, b, [])
    assert torch.equal(moved[:, :5], plain_b[:, :5]) and not torch.equal(moved[:, 5:], plain_b[:, 5:])
    with pytest.raises(EngineError, match="same length"):
        run_with_cache(gpt, _ids(rng, n=20)[:1], [], edits={"resid_post.2": replace_with(cache_a["resid_post.2"])})


def test_attention_patterns_recompute_what_the_heads_attended(gpt, rng):
    ids = _ids(rng)
    patterns = attention_patterns(gpt, ids, layers=[0, 4])
    _, cache = run_with_cache(gpt, ids, ["head_z.4"])
    p = patterns[4]
    assert p.shape == (2, 6, 24, 24)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 6, 24))
    assert torch.all(p.triu(1) == 0)
    # Their weighted sum of the values is the head's output: the pattern is the one the model used.
    attn, c = gpt.blocks[4].attn, gpt.config
    with torch.no_grad():
        x = gpt.blocks[4].attn_norm(run_with_cache(gpt, ids, ["resid_pre.4"])[1]["resid_pre.4"])
        v = attn.kv(x).view(2, 24, 2, c.kv_heads, c.head_dim)[:, :, 1].transpose(1, 2)  # (B, KVH, T, HS)
        v = v.repeat_interleave(c.n_heads // c.kv_heads, dim=1)
    torch.testing.assert_close((p @ v).transpose(1, 2), cache["head_z.4"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("site, message", [("resid.2", "unknown site kind"), ("attn_out.6", "layer 6 is out of range"),
                                           ("attn_out", "kind.layer"), ("head_z.-1", "kind.layer")])
def test_bad_sites_are_refused(gpt, rng, site, message):
    with pytest.raises(EngineError, match=message):
        run_with_cache(gpt, _ids(rng), [site])


def test_bad_prompts_and_bad_edits_are_refused(gpt, rng):
    with pytest.raises(EngineError, match="non-empty"):
        run_with_cache(gpt, np.zeros((1, 0), np.int64), ["resid_pre.0"])
    with pytest.raises(EngineError):
        run_with_cache(gpt, [5, 2048], ["resid_pre.0"])
    with pytest.raises(EngineError, match="keep its shape"):
        run_with_cache(gpt, _ids(rng), [], edits={"mlp_out.0": lambda x: x[:, :-1]})
    with pytest.raises(EngineError, match="not a GPT-shaped model"):
        run_with_cache(torch.nn.Linear(2, 2), [1], [])
    with pytest.raises(EngineError, match="out of range"):
        attention_patterns(gpt, [1, 2, 3], layers=[9])


def test_hooks_are_removed_after_an_error(gpt, rng):
    def broken(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        with patched(gpt, {"mlp_out.0": broken}):
            gpt(torch.from_numpy(_ids(rng)))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in gpt.modules())
    with hooked(gpt, read=["resid_pre.1"]) as store:
        gpt(torch.from_numpy(_ids(rng)))
    assert "resid_pre.1" in store and not any(m._forward_hooks or m._forward_pre_hooks for m in gpt.modules())


@needs_smollm
def test_smollm2_sites_and_patterns(rng):
    from workbench.labs.decoding_labs import load_model

    model = load_model("smollm2").model
    ids = rng.integers(0, model.config.vocab_size, (1, 12))
    logits, cache = run_with_cache(model, ids, ["resid_post.29", "head_z.10"])
    assert cache["head_z.10"].shape == (1, 12, model.config.n_heads, model.config.head_dim)
    torch.testing.assert_close(model.unembed(model.norm(cache["resid_post.29"])), logits, rtol=1e-4, atol=1e-4)
    p = attention_patterns(model, ids, layers=[10])[10]
    torch.testing.assert_close(p.sum(-1), torch.ones(1, model.config.n_heads, 12))


def test_replace_rows_patches_each_row_at_its_own_position_only(gpt, rng):
    from workbench_engines.interp import replace_rows

    a, b = _ids(rng)[:1], _ids(rng)[:1]
    _, cache_a = run_with_cache(gpt, a, ["resid_pre.2"])
    batch = np.repeat(b, 3, axis=0)
    positions = [4, None, 9]
    _, cache = run_with_cache(gpt, batch, ["resid_pre.2"], edits={"resid_pre.2": replace_rows(cache_a["resid_pre.2"],
                                                                                           positions)})
    _, plain = run_with_cache(gpt, b, ["resid_pre.2"])
    for row, p in enumerate(positions):
        expected = plain["resid_pre.2"][0].clone()
        if p is not None:
            expected[p] = cache_a["resid_pre.2"][0, p]
        torch.testing.assert_close(cache["resid_pre.2"][row], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(EngineError, match="one per row"):
        run_with_cache(gpt, batch, [], edits={"resid_pre.2": replace_rows(cache_a["resid_pre.2"], [1, 2])})
    with pytest.raises(EngineError, match="out of range"):
        run_with_cache(gpt, batch, [], edits={"resid_pre.2": replace_rows(cache_a["resid_pre.2"], [1, 2, 99])})


def test_hooks_edit_only_the_passes_of_the_thread_that_installed_them(gpt, rng):
    # A lab's worker and a quiz probe share one loaded model: one's edits must not reach the other's pass.
    import threading

    ids = _ids(rng)
    plain = gpt(torch.from_numpy(ids))
    seen = {}
    with patched(gpt, {"resid_pre.0": lambda x: torch.zeros_like(x)}):
        other = threading.Thread(target=lambda: seen.__setitem__("logits", gpt(torch.from_numpy(ids))))
        other.start()
        other.join()
        mine = gpt(torch.from_numpy(ids))
    assert torch.equal(seen["logits"], plain) and not torch.equal(mine, plain)
