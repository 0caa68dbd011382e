"""The logit-lens and induction-head labs show what their lessons claim, on the lessons' own settings, and say so
in words (pattern of tests/test_lab_claims.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import needs_smollm
from tests.test_lab_claims import lesson_params

pytestmark = pytest.mark.no_c_path  # interpretability calls no C kernel of its own


async def test_lens_lab_shows_be_rising_from_rank_54_to_the_top_only_at_the_last_block(open_lab):
    async with open_lab("interp.logit_lens", **lesson_params("logit-lens", "interp.logit_lens")) as h:
        await h.settle()
        lens, names, name = h.lab.lens
        assert name == "small-gpt" and names[lens.target] == " be"
        rows = lens.rows
        assert rows[0].target_rank == 54 and names[rows[0].top_tokens[0]] == " to" and rows[0].top_probs[0] > 0.985
        assert [r.target_rank for r in rows[1:6]] == [2, 2, 2, 3, 2]
        assert [names[r.top_tokens[0]] for r in rows[1:6]] == [" the"] * 5
        assert rows[-1].target_prob == pytest.approx(0.119, abs=0.0005) and rows[4].target_rank == 3
        assert "The final answer ' be' (11.9% at the output) first becomes the top token at layer 5 (row 6 of 6)" \
            in h.readout()
        assert "before that its best rank was 2" in h.readout()


async def test_lens_lab_reads_an_edited_prompt_with_newlines_written_as_backslash_n(open_lab):
    from textual.widgets import Input

    async with open_lab("interp.logit_lens", **lesson_params("logit-lens", "interp.logit_lens")) as h:
        await h.settle()
        box = h.lab.query_one(Input)
        assert box.value == "**HAMLET**  \\nTo be, or not to"
        box.value = ""
        box.focus()
        await h.press("enter")
        await h.settle()
        assert "Type a prompt first" in h.status()


async def test_induction_lab_finds_no_induction_heads_in_the_small_gpt(open_lab):
    async with open_lab("interp.induction", **lesson_params("induction-heads", "interp.induction")) as h:
        await h.settle()
        scan, name = h.lab.scan
        assert name == "small-gpt" and (scan.n, scan.batch, scan.seed) == (20, 4, 0)
        assert round(scan.first_loss, 2) == 11.88 and round(scan.second_loss, 2) == 12.05
        l, head, p, _ = scan.top_heads(1)[0]
        assert (l, head, round(p, 2)) == (2, 0, 0.05) and scan.induction_heads() == []
        uniform = np.mean([1 / (i + 1) for i in range(21, 41)])
        assert round(uniform, 2) == 0.03
        assert "first repeat 11.88, second 12.05 nats" in h.lab.query_one("Figure .figure-title").content
        assert "No head prefix-matches: the best, L2H0, puts 0.05 of its attention" in h.readout()
        assert "This model has no induction heads." in h.readout()


@pytest.mark.slow
@needs_smollm
@pytest.mark.claims
async def test_smollm2_shows_its_induction_heads_and_the_lens_answer_at_layer_23(open_lab):
    async with open_lab("interp.induction", **lesson_params("induction-heads", "interp.induction")) as h:
        await h.settle()
        await h.press("m")
        await h.settle()
        scan, name = h.lab.scan
        assert name == "smollm2"
        assert round(scan.first_loss, 2) == 14.67 and round(scan.second_loss, 2) == 1.59
        top = [(l, hd, round(p, 2)) for l, hd, p, _ in scan.top_heads(5)]
        assert top == [(18, 6, 0.96), (17, 4, 0.87), (17, 3, 0.80), (17, 5, 0.78), (18, 7, 0.61)]
        assert [(l, hd) for l, hd, _, _ in scan.induction_heads()] == [(18, 6), (17, 4), (17, 3), (18, 7), (24, 4),
                                                                        (22, 7)]
        assert scan.copying[17, 5] < 0
        assert "from 14.67 to 1.59 nats per token. Heads that both prefix-match (score ≥ 0.4) and copy (OV score > 0): " \
            "L18H6, L17H4, L17H3, L18H7, L24H4, L22H7." in h.readout()
    async with open_lab("interp.logit_lens", **lesson_params("logit-lens", "interp.logit_lens")) as h:
        await h.settle()
        await h.press("m")
        await h.settle()
        lens, names, name = h.lab.lens
        assert name == "smollm2" and names[lens.target] == " be"
        assert (lens.first_top, lens.settled) == (24, 24)
        assert round(lens.rows[24].target_prob, 2) == 0.40 and round(lens.rows[25].target_prob, 2) == 0.88
        assert all(12 <= r.target_rank <= 33 for r in lens.rows[1:20])
        assert "(98.1% at the output) first becomes the top token at layer 23 (row 24 of 30)" in h.readout()
        from textual.widgets import Input

        box = h.lab.query_one(Input)
        box.value = "The capital of France is Paris. The capital of Germany is the city of"
        box.focus()
        await h.press("enter")
        await h.settle()
        lens, names, _ = h.lab.lens
        assert names[lens.target] == " Berlin" and lens.first_top == 30
        assert [names[r.top_tokens[0]] for r in lens.rows[28:30]] == [" city", " city"]


def _lens(ranks, names_target=3):
    from workbench_engines.interp.lens import LensRow, LogitLens

    rows = [LensRow("s", "embed" if i == 0 else f"L{i - 1}", (0,), (0.5,), r, 0.5 if r == 1 else 0.1)
            for i, r in enumerate(ranks)]
    return LogitLens((1, 2), 1, names_target, rows, np.zeros((len(ranks), 2)), np.zeros((len(ranks), 2)))


def test_lens_verdict_says_where_the_answer_leads_and_whether_it_kept_the_lead():
    from workbench.labs.interp_lens_labs import lens_verdict

    names = ["a", "b", "c", "X"]
    kept = lens_verdict(_lens([9, 4, 1, 1]), names)
    assert "first becomes the top token at layer 1 (row 2 of 3)." in kept and "loses" not in kept
    lost = lens_verdict(_lens([9, 1, 2, 1]), names)
    assert "at layer 0 (row 1 of 3), loses the top place again and holds it from layer 2 on." in lost
    late = lens_verdict(_lens([9, 4, 3, 1]), names)
    assert "Only the last block puts it first; before that its best rank was 3." in late
    other = lens_verdict(_lens([9, 4, 1, 2]), names)
    assert other.startswith("The tracked token 'X' is not the model's top token (rank 2 at the output)")


def test_induction_verdict_names_heads_that_match_and_copy_or_says_there_are_none():
    from workbench_engines.interp.induction import InductionScan

    from workbench.labs.interp_lens_labs import induction_verdict

    loss = np.array([np.nan, 9.0, 9.0, 1.0, 1.0, 1.0])
    prefix = np.array([[0.1, 0.9], [0.5, 0.02]])
    copying = np.array([[0.3, 0.4], [-0.2, 0.9]])
    scan = InductionScan(3, 2, 0, np.zeros((2, 7), dtype=np.int64), 1, loss, prefix, copying)
    found = induction_verdict(scan)
    assert found.startswith("The repeat lowered the loss from 9.00 to 1.00 nats per token. Heads that both "
                             "prefix-match (score ≥ 0.4) and copy (OV score > 0): L0H1.")
    assert "L0H1 (0.90, copying +0.40), L1H0 (0.50, copying -0.20), L0H0 (0.10, copying +0.30)" in found
    none = induction_verdict(replace(scan, prefix=prefix * 0.1, loss_by_token=np.full(6, 9.0)))
    assert none.startswith("No head prefix-matches: the best, L0H1, puts 0.09 of its attention")
    assert "(9.00 nats) is no lower than the first's (9.00)" in none
    # Heads that prefix-match but do not copy are named, not denied; a large fall is "well below".
    no_copy = induction_verdict(replace(scan, copying=-np.abs(copying)))
    assert no_copy.startswith("Heads prefix-match (L0H1 (0.90, copying -0.40)") and "well below" in no_copy
    assert "no head here passes both tests" in no_copy
