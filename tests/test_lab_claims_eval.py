"""The Evaluation and compression track's labs show what their lessons claim, on the lessons' own settings.

Split from test_lab_claims.py (same helpers, same rules: deterministic quantities only, never a time) so that
the two files run in parallel under ``pytest -n 2 --dist loadfile``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.conftest import needs_smollm
from tests.test_lab_claims import lesson_params, lesson_run


@pytest.mark.slow
@pytest.mark.claims
async def test_window_stride_lab_flat_inside_the_trained_window_and_worse_past_it(open_lab):
    from workbench.probes import compute_probe

    async with lesson_run(open_lab, "measuring-a-model", "eval.window_stride") as h:
        sweep = h.lab.sweep
        ppl = {w: s.perplexity for w, s in sweep.by_window}
        # The lesson: 36.3 at 32, 35.0 at 128, flat to 512, about 44 at 1,024.
        assert ppl[32] > ppl[128] and abs(ppl[512] - ppl[128]) / ppl[128] < 0.01 and ppl[1024] > 1.15 * ppl[512]
        strides = {s: score for s, score in sweep.by_stride}
        assert strides[128].perplexity < strides[255].perplexity
        assert strides[32].windows > 3 * strides[128].windows
        assert "rises" in h.readout() and "never seen in training" in h.readout()
        # The quiz's probe computes exactly the lab's row for stride 128.
        assert compute_probe("eval.heldout_perplexity", {"plays": 3, "window": 256, "stride": 128}) == \
            pytest.approx(strides[128].perplexity, rel=1e-12)


@needs_smollm
@pytest.mark.slow
@pytest.mark.claims
async def test_per_byte_lab_shows_perplexity_and_bits_per_byte_disagree_across_tokenizers(open_lab):
    async with lesson_run(open_lab, "measuring-a-model", "eval.per_byte") as h:
        small, draft, smollm = h.lab.rows
        assert small.score.perplexity < smollm.score.perplexity  # per token, the small GPT looks better
        assert smollm.score.bits_per_byte < small.score.bits_per_byte < draft.score.bits_per_byte  # per byte, not
        assert smollm.score.bytes / smollm.score.tokens > small.score.bytes / small.score.tokens
        assert "The measures disagree: small GPT has the lowest perplexity" in h.readout()


def test_per_byte_verdict_when_the_measures_agree():
    from workbench.labs.evaluation_labs import ModelScore, per_byte_verdict
    from workbench_engines.evaluation import TextScore

    a = ModelScore("a", 10, TextScore(nll=100.0, tokens=50, bytes=100, windows=1))
    b = ModelScore("b", 10, TextScore(nll=150.0, tokens=50, bytes=100, windows=1))
    assert per_byte_verdict([b, a]).startswith("Both measures rank the models the same way; a is best")


async def test_block_formats_lab_error_grows_as_bits_fall(open_lab):
    from workbench.probes import compute_probe

    async with open_lab("eval.block_formats", **lesson_params("block-formats", "eval.block_formats")) as h:
        await h.settle()  # e runs on opening
        costs = {c.format: c for c in h.lab.table.costs}
        assert list(costs) == ["Q8_0", "Q6_K", "Q4_1", "Q4_0"]
        errors = [c.output_error for c in costs.values()]
        assert errors == sorted(errors) and errors[-1] > 10 * errors[0]
        # The lesson's figures: 0.6%, 1.9%, 8.5%, 9.8% of ‖W·x‖.
        assert [round(100 * e, 1) for e in errors] == [0.6, 1.9, 8.5, 9.8]
        assert compute_probe("quant.bits_per_weight", {"format": "Q6_K"}) == costs["Q6_K"].bits_per_weight == 6.5625
        assert "every bit less roughly doubles the rounding step" in h.readout()


@pytest.mark.slow
async def test_block_formats_race_checks_every_kernel_against_fp32(open_lab):
    async with open_lab("eval.block_formats") as h:
        await h.settle()
        await h.press("r")
        await h.settle()
        rows = {row.name: row for row in h.lab.query_one("ProfilePanel").rows}
        # Correctness only (no times): every contender matched torch fp32 before and after timing.
        assert {"torch fp32 1T", "float32 Q8_0 1T", "int8 Q4_1 1T", "dequant+matmul 1T"} <= set(rows)
        assert all(row.matches and row.mismatch is None for row in rows.values())


@pytest.mark.slow
@pytest.mark.claims
async def test_pruning_lab_half_the_weights_are_free_and_the_least_important_heads_cheapest(open_lab):
    from workbench.probes import compute_probe

    async with lesson_run(open_lab, "pruning", "eval.pruning") as h:
        sweep = h.lab.result
        ppl = dict(sweep.by_sparsity)
        # The lesson: about free to 50%, +10% at 60%, 1.7× at 70%, 7× at 90%; 2:4 about +6%.
        assert ppl[0.5] < 1.02 * sweep.base and 1.05 * sweep.base < ppl[0.6] < 1.15 * sweep.base
        assert ppl[0.9] > 5 * sweep.base and ppl[0.5] < sweep.two_four < 1.1 * sweep.base
        assert compute_probe("eval.pruned_perplexity", {"sparsity": 0.6}) == pytest.approx(ppl[0.6], rel=1e-12)
        assert "Up to 50% of the weights go for at most 5% more perplexity." in h.readout()
        await h.press("h")
        await h.settle()
        heads = {k: (least, chance, most) for k, least, chance, most in h.lab.result.rows}
        assert heads[12][0] < 1.05 * h.lab.result.base and heads[18][0] < heads[18][1] < heads[18][2]
        assert heads[18][2] > 1.8 * h.lab.result.base
        assert "many heads can go, but which ones matters" in h.readout()


@pytest.mark.slow
@pytest.mark.claims
async def test_weight_quant_lab_gptq_halves_rounding_error_and_kl(open_lab):
    from workbench.probes import compute_probe

    async with lesson_run(open_lab, "gptq-and-awq", "eval.weight_quant") as h:
        result = h.lab.result
        assert result.bits == 4
        by = {r.method: r for r in result.runs}
        rtn, gptq, awq = by["rtn"], by["gptq"], by["awq"]
        # The lesson: layer error 0.022 against 0.044, KL 0.0015 against 0.0031, AWQ close to rounding.
        assert sum(layer.error for layer in gptq.layers) < 0.6 * sum(layer.error for layer in rtn.layers)
        assert gptq.comparison.kl < 0.6 * rtn.comparison.kl and gptq.comparison.same_top > rtn.comparison.same_top
        assert 0.8 * rtn.comparison.kl < awq.comparison.kl < 1.1 * rtn.comparison.kl
        assert compute_probe("eval.quantised_kl", {"method": "gptq", "bits": 4}) == pytest.approx(gptq.comparison.kl,
                                                                                                  rel=1e-9)
        assert "GPTQ's error compensation cuts the mean layer error" in h.readout()


async def test_integers_lab_finer_grids_cut_the_rounding_error(open_lab):
    async with open_lab("eval.integers", **lesson_params("integers-for-weights", "eval.integers")) as h:
        await h.settle()
        rows = {(label, grid): error for label, grid, error, _ in h.lab.table.rows}
        # The lesson at 4 bits: 21.7% per tensor absmax, 12.0% zero point per row, 9.2% zero point per group of 64.
        assert [round(100 * rows[key], 1) for key in (("per tensor", "absmax"), ("per channel", "zero point"),
                                                       ("groups of 64", "zero point"))] == [21.7, 12.0, 9.2]
        await h.press("b")
        await h.settle()
        assert h.lab.table.bits == 3 and "Smaller groups and a zero point cut the error" in h.readout()


@needs_smollm
@pytest.mark.slow
async def test_integers_lab_finds_smollm2s_outlier_channels(open_lab):
    async with open_lab("eval.integers") as h:
        await h.settle()
        await h.press("o")
        await h.settle()
        p = h.lab.outliers.profile
        # The lesson: σ about 0.17, five channels up to |x| 34; int8 40% → 7.7% with them kept in float.
        assert len(p.outliers) == 5 and p.channel_max.max() > 100 * p.sigma
        assert p.int8_error > 0.3 and p.int8_error_mixed < 0.1 and p.output_error_mixed < 0.25 * p.output_error


@pytest.mark.slow
@pytest.mark.claims
async def test_distill_lab_softens_and_the_distilled_draft_fits_the_target_better(open_lab):
    from workbench.probes import compute_probe

    params = lesson_params("distillation", "eval.distill")
    async with open_lab("eval.distill", **params) as h:
        await h.settle()
        # The lesson: 45% on the top token at T = 1, 12% at T = 1.5, 4% at T = 2 with 9.8 bits of entropy.
        assert h.lab.soft.temperature == 1 and h.lab.soft.tokens[0] == "?"
        assert round(100 * h.lab.soft.top_share) == 45 and round(h.lab.soft.entropy_bits, 1) == 4.8
        await h.press("t")
        await h.settle()
        assert round(100 * h.lab.soft.top_share) == 12
        await h.press("t")
        await h.settle()
        soft = h.lab.soft
        assert soft.temperature == 2 and round(100 * soft.top_share) == 4 and round(soft.entropy_bits, 1) == 9.8
        assert compute_probe("compress.softened_top_share", {"text": params["text"], "temperature": 2.0}) == \
            pytest.approx(soft.top_share, rel=1e-9)
        await h.press("r")
        await h.settle()
        data, distilled = h.lab.fits
        a, b = data.comparison, distilled.comparison
        # The lesson: Σ min 65.5% → 76.2%, same top 51% → 65%, KL halves, perplexity 57.5 → 47.6, and higher
        # acceptance at every k of the pooled runs.
        assert (round(100 * a.overlap, 1), round(100 * b.overlap, 1)) == (65.5, 76.2)
        assert b.same_top > a.same_top + 0.1 and b.kl < 0.55 * a.kl
        assert b.changed.perplexity < a.changed.perplexity - 5
        assert all(distilled.acceptance[k] > data.acceptance[k] + 0.05 for k in (1, 2, 4))
        assert compute_probe("eval.draft_overlap", {"draft": "draft-distilled"}) == pytest.approx(b.overlap, rel=1e-9)
        assert "acceptance rose at every k" in h.readout()


def test_distill_verdict_for_every_outcome():
    from workbench.labs.distill_lab import distill_verdict

    def fit(overlap, same, ppl, acceptance):
        comparison = SimpleNamespace(overlap=overlap, same_top=same, changed=SimpleNamespace(perplexity=ppl))
        return SimpleNamespace(comparison=comparison, acceptance=acceptance)

    data = fit(0.6, 0.5, 50.0, {1: 0.6, 2: 0.5})
    text = distill_verdict([data, fit(0.7, 0.6, 45.0, {1: 0.7, 2: 0.6})])
    assert "70.0% of the time against 60.0%" in text and "rose at every k: 70% vs 60% at k = 1" in text
    assert "lower too (45.0 against 50.0)" in text
    some = distill_verdict([data, fit(0.7, 0.6, 55.0, {1: 0.7, 2: 0.4})])
    assert "rose at k = 1 only" in some and "noisier" in some and "higher (55.0 against 50.0): it matched" in some
    none = distill_verdict([data, fit(0.5, 0.4, 60.0, {1: 0.5, 2: 0.4})])
    assert "did not rise" in none
    assert distill_verdict([data]) == "Both drafts are needed for a comparison."
