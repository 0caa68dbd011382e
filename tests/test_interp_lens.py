"""engines.interp.lens and engines.interp.induction: the lens's last row is the model's output, its ranks and
probabilities are the softmax's; induction scores measure what their docstrings say, on hand-made attention
patterns and on a tiny model whose full OV circuit fits in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from workbench_engines.errors import EngineError
from workbench_engines.interp import (
    induction_scan,
    lens_logits,
    logit_lens,
    ov_copying,
    repeated_tokens,
)
from workbench_engines.interp.induction import prefix_scores
from workbench_engines.models import small_gpt
from workbench_engines.models.gpt import GPT, GPTConfig

from tests.conftest import needs_smollm

pytestmark = pytest.mark.no_c_path  # interpretability calls no C kernel of its own


@pytest.fixture(scope="module")
def gpt():
    return small_gpt.load("target").model


def test_the_lens_at_the_last_layer_is_the_models_output_and_at_row_0_the_embedding_decoded(gpt, rng):
    ids = rng.integers(0, 2048, (2, 16))
    logits, lens = lens_logits(gpt, ids)
    assert lens.shape == (7, 2, 16, 2048)
    torch.testing.assert_close(lens[-1], logits)
    with torch.no_grad():
        assert torch.equal(logits, gpt(torch.from_numpy(ids)))
        torch.testing.assert_close(lens[0], gpt.unembed(gpt.norm(gpt.embed(torch.from_numpy(ids)))))


def test_lens_rows_rank_and_probability_the_target_as_the_softmax_does(gpt, rng):
    ids = rng.integers(0, 2048, 12)
    lens = logit_lens(gpt, ids, position=5, top=4)
    _, raw = lens_logits(gpt, ids)
    with torch.no_grad():
        final = gpt(torch.from_numpy(ids)[None])[0, 5]
    assert lens.target == int(final.argmax()) and lens.position == 5
    assert lens.rows[-1].target_rank == 1 and lens.rows[-1].top_tokens[0] == lens.target
    assert [r.site for r in lens.rows[:2]] == ["resid_pre.0", "resid_post.0"] and lens.rows[-1].label == "L5"
    for i, row in enumerate(lens.rows):
        p = torch.softmax(raw[i, 0, 5].double(), -1)
        assert row.target_prob == pytest.approx(float(p[lens.target]), rel=1e-4)
        assert row.target_rank == 1 + int((p > p[lens.target]).sum())
        assert list(row.top_tokens) == p.argsort(descending=True)[:4].tolist()
        assert (row.target_rank == 1) == (row.top_tokens[0] == lens.target)
    assert lens.grid_top.shape == (7, 12) and lens.grid_top[-1, 5] == lens.target
    chosen = logit_lens(gpt, ids, target=7)
    assert chosen.target == 7 and chosen.position == 11


def test_first_top_and_settled_tell_a_lead_lost_from_a_lead_kept(gpt, rng):
    from dataclasses import replace

    lens = logit_lens(gpt, rng.integers(0, 2048, 8))
    ranks = [5, 1, 3, 1, 1, 1, 1]
    rows = [replace(row, target_rank=r) for row, r in zip(lens.rows, ranks)]
    bent = replace(lens, rows=rows)
    assert (bent.first_top, bent.settled) == (1, 3)
    never = replace(lens, rows=[replace(row, target_rank=2) for row in lens.rows])
    assert (never.first_top, never.settled) == (None, None)


def test_lens_bad_input_gets_clear_errors(gpt):
    with pytest.raises(EngineError, match="non-empty prompt"):
        logit_lens(gpt, [])
    with pytest.raises(EngineError, match="position 9 is out of range"):
        logit_lens(gpt, [1, 2, 3], position=9)
    with pytest.raises(EngineError, match="target token 5000 is out of range"):
        logit_lens(gpt, [1, 2, 3], target=5000)
    with pytest.raises(EngineError, match="one prompt"):
        logit_lens(gpt, [[1, 2], [3, 4]])


def test_a_progress_call_that_raises_stops_the_pass_and_leaves_no_hook_behind(gpt):
    class Stop(Exception):
        """The learner's cancel, raised from inside a progress call."""

    def progress(fraction, what):
        if fraction > 0.3:
            raise Stop

    with pytest.raises(Stop):
        logit_lens(gpt, [1, 2, 3], progress=progress)
    with pytest.raises(Stop):
        induction_scan(gpt, n=4, batch=1, progress=progress)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in gpt.modules())


def test_repeated_tokens_lay_out_start_then_the_same_n_twice_avoiding_specials():
    rows = repeated_tokens(50, 10, 3, seed=4, start=0, avoid=range(5))
    assert rows.shape == (3, 21) and (rows[:, 0] == 0).all()
    assert (rows[:, 1:11] == rows[:, 11:]).all() and rows[:, 1:].min() >= 5
    assert all(len(set(r[1:11])) == 10 for r in rows)
    assert (repeated_tokens(50, 10, 3, seed=4, start=0, avoid=range(5)) == rows).all()
    assert repeated_tokens(50, 10, 2).shape == (2, 20)
    with pytest.raises(EngineError, match="cannot make 10 distinct"):
        repeated_tokens(12, 10, 1, avoid=range(5))
    with pytest.raises(EngineError, match="n ≥ 1"):
        repeated_tokens(50, 0, 1)


def test_prefix_score_is_1_for_a_perfect_induction_pattern_and_the_mean_of_1_over_i_for_uniform_attention():
    n, offset = 6, 1
    t = offset + 2 * n
    perfect = torch.zeros(2, 3, t, t)
    for i in range(offset + n, t):
        perfect[:, 0, i, i - n + 1] = 1.0
    perfect[:, 1] = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]  # uniform over 0..i
    perfect[:, 2, :, 0] = 1.0  # everything on the start token
    scores = prefix_scores({0: perfect}, n, offset)
    expected_uniform = np.mean([1 / (i + 1) for i in range(offset + n, t)])
    np.testing.assert_allclose(scores[0], [1.0, expected_uniform, 0.0], rtol=1e-6)


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_copying_score_equals_the_eigenvalue_statistic_of_the_whole_vocab_by_vocab_ov_circuit(kv_heads):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=48, context=16, d_model=32, n_layers=2, n_heads=4, n_kv_heads=kv_heads)).eval()
    with torch.no_grad():
        for norm in [model.norm, *(b.attn_norm for b in model.blocks)]:
            norm.weight.uniform_(0.5, 1.5)
    scores = ov_copying(model)
    c, hs = model.config, model.config.head_dim
    w_e = model.embed.weight.detach().double()  # (V, C), tied: also W_U
    for l, block in enumerate(model.blocks):
        w_v = block.attn.kv.weight.detach().double()[kv_heads * hs:]  # (KVH·HS, C)
        w_o = block.attn.out.weight.detach().double()  # (C, NH·HS)
        for h in range(4):
            g = h // (4 // kv_heads)
            full = (w_e * model.norm.weight.detach().double()) @ w_o[:, h * hs:(h + 1) * hs] \
                @ w_v[g * hs:(g + 1) * hs] @ (w_e * block.attn_norm.weight.detach().double()).T  # (V, V)
            eigen = np.linalg.eigvals(full.numpy())
            assert scores[l, h] == pytest.approx(eigen.real.sum() / np.abs(eigen).sum(), abs=1e-4)
    assert scores.shape == (c.n_layers, c.n_heads) and np.abs(scores).max() <= 1 + 1e-9


def test_induction_scan_loss_is_the_cross_entropy_of_the_plain_forward_pass(gpt):
    scan = induction_scan(gpt, n=8, batch=2, seed=1, start=2047, avoid=[2047])
    ids = torch.from_numpy(scan.ids)
    assert ids.shape == (2, 17) and scan.offset == 1
    with torch.no_grad():
        logp = torch.log_softmax(gpt(ids), -1)  # (B, T, V)
    nll = -logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0].mean(0)  # (T − 1,)
    np.testing.assert_allclose(scan.loss_by_token, nll.numpy(), rtol=1e-4)
    assert scan.first_loss == pytest.approx(float(nll[1:8].mean()), rel=1e-5)
    assert scan.second_loss == pytest.approx(float(nll[9:].mean()), rel=1e-5)
    assert scan.prefix.shape == (6, 6) and scan.copying.shape == (6, 6)
    top = scan.top_heads(3)
    assert top[0][2] == scan.prefix.max() and top[0][2] >= top[1][2] >= top[2][2]
    with pytest.raises(EngineError, match="do not fit the model's context"):
        induction_scan(gpt, n=1100, batch=1)
    with pytest.raises(EngineError, match="start token 9999"):
        induction_scan(gpt, n=4, batch=1, start=9999)


@needs_smollm
def test_smollm2_lens_at_the_last_layer_is_its_output():
    from workbench_engines.models.llama import bundled

    model = bundled("quantized")
    ids = model.prompt_ids("To be, or not to")
    lens = logit_lens(model.model, ids)
    with torch.no_grad():
        out = model.model(torch.tensor([ids]))[0, -1]
    assert len(lens.rows) == 31 and lens.target == int(out.argmax())
    assert lens.rows[-1].target_prob == pytest.approx(float(torch.softmax(out.double(), -1).max()), rel=1e-3)
    assert lens.rows[-1].target_rank == 1
