"""The ablation and patching labs show what their lessons claim, on the lessons' own settings, and say so in words."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.test_lab_claims import lesson_params

pytestmark = pytest.mark.no_c_path  # interpretability calls no C kernel of its own


@pytest.mark.slow
@pytest.mark.claims
async def test_ablation_lab_finds_layer_4_head_0_most_heads_removable_and_the_removal_curves_zero_and_mean(open_lab):
    """One lab, one zero-ablation grid: the removal curves are read off the grid the first claims were checked on
    (a second test opening the lab would ablate every head again for the same grid)."""
    async with open_lab("interp.ablation", **lesson_params("ablation", "interp.ablation")) as h:
        await h.press("r")
        await h.settle()
        grid = h.lab.grid
        assert grid.mode == "zero" and grid.tokens == 512
        assert grid.base_loss == pytest.approx(3.410, abs=5e-4)
        assert grid.heads[4, 0] == pytest.approx(0.088, abs=5e-4)
        assert grid.heads[5, 3] == pytest.approx(0.058, abs=5e-4) and grid.heads[2, 2] == pytest.approx(0.040, abs=5e-4)
        assert grid.heads[4, 3] == pytest.approx(-0.035, abs=5e-4)
        assert int((grid.heads < 0.01).sum()) == 26
        assert grid.mlps[0] == pytest.approx(3.538, abs=5e-4)
        assert ("head 0 of layer 4 matters most (Δloss +0.088 nats on 3.410); 26 of 36 heads cost under 0.01 nats"
                in h.readout())
        assert "The MLPs matter more than any head: MLP 0 costs +3.538." in h.readout()
        await h.press("c")
        await h.settle()
        counts, curves, base = h.lab.curve
        assert counts == [0, 6, 12, 18, 24, 30, 36]
        assert np.round(curves["Δloss"], 3).tolist() == [3.41, 3.404, 3.434, 3.482, 3.564, 4.002, 4.588]
        assert np.round(curves["gradient"], 3).tolist() == [3.41, 3.413, 3.436, 3.511, 3.598, 3.845, 4.588]
        assert "by Δloss: 12 of 36 heads go for under 0.05 nats (all: +1.18)" in h.readout()
        await h.press("z", "r")
        await h.settle()
        assert h.lab.grid.heads[4, 0] == pytest.approx(0.091, abs=5e-4)
        assert int((h.lab.grid.heads < 0.01).sum()) == 25
        await h.press("c")
        await h.settle()
        counts, curves, base = h.lab.curve
        assert curves["Δloss"][3] - base == pytest.approx(0.006, abs=5e-4)
        assert curves["Δloss"][1] < base and curves["Δloss"][2] < base
        assert "by Δloss: 18 of 36 heads go" in h.readout()


async def test_patching_lab_shows_the_answer_staying_at_the_changed_word(open_lab):
    async with open_lab("interp.patching", **lesson_params("activation-patching", "interp.patching")) as h:
        await h.settle()
        r = h.lab.view.result
        assert h.lab.view.answer == "?" and h.lab.view.labels[15] == "here"
        assert (r.p_clean, r.p_corrupt) == (pytest.approx(0.310, abs=5e-4), pytest.approx(0.089, abs=5e-4))
        restored = r.restored
        assert restored[0, 15] == pytest.approx(0.71, abs=5e-3) and restored[4, 15] == pytest.approx(0.81, abs=5e-3)
        assert restored[5, 15] == pytest.approx(0.62, abs=5e-3) and restored[5, 17] == pytest.approx(0.08, abs=5e-3)
        others = np.delete(restored, [14, 15, 16, 17], axis=1)
        assert np.abs(others).max() < 1e-6
        assert "restores at most 81% of p(?)" in h.readout()
        assert "it stays at the changed token (here)" in h.readout()
        for _ in range(2):  # resid_post, then attn_out
            await h.press("k")
            await h.settle()
        assert h.lab.view.result.kind == "attn_out"
        assert h.lab.view.result.restored[5, 17] == pytest.approx(0.58, abs=5e-3)
        await h.press("k")
        await h.settle()
        assert h.lab.view.result.restored[0, 15] == pytest.approx(0.69, abs=5e-3)


async def test_patching_lab_says_when_the_prompts_differ_in_length(open_lab):
    async with open_lab("interp.patching", clean="Where art thou", corrupt="Where art thou now, my lord") as h:
        await h.settle()
        assert h.lab.view is None
        assert "the clean prompt is" in h.status() and "change words for words of as many tokens" in h.status()


def _grid(heads, mlps):
    return SimpleNamespace(mode="zero", base_loss=3.0, heads=np.array(heads), mlps=np.array(mlps))


def test_ablation_verdict_names_the_top_head_and_compares_the_mlps():
    from workbench.labs.interp_causal_labs import ablation_verdict, curve_verdict

    text = ablation_verdict(_grid([[0.0, 0.2], [0.005, 0.05]], [0.1, 0.3]))
    assert "head 1 of layer 0 matters most (Δloss +0.200 nats on 3.000); 2 of 4 heads cost under 0.01" in text
    assert "The MLPs matter more than any head: MLP 1 costs +0.300." in text
    text = ablation_verdict(_grid([[0.0, 0.2], [0.005, 0.05]], [0.1, 0.15]))
    assert "No MLP costs more than the top head (largest: MLP 1, +0.150)." in text
    text = curve_verdict([0, 2, 4], {"Δloss": np.array([1.0, 1.01, 1.5])}, 1.0)
    assert text == "Removing the least important heads first, by Δloss: 2 of 4 heads go for under 0.05 nats (all: +0.50)."


def test_patching_verdict_branches():
    from workbench.labs.interp_causal_labs import PatchView, patching_verdict

    def view(restored, differing):
        result = SimpleNamespace(restored=np.array(restored), kind="resid_pre", p_clean=0.5, p_corrupt=0.1,
                                 differing=differing, best=lambda: (1, 1, 0.9))
        return PatchView("small-gpt", ["a", "b", "c"], "x", result)

    moved = patching_verdict(view([[0, 1, 0], [0, 0.9, 0], [0, 0, 1]], [1]))
    assert "In layer 0 the answer lives at the changed token (b); by layer 2 it has moved to the last position" in moved
    stays = patching_verdict(view([[0, 1, 0], [0, 0.9, 0], [0, 0.8, 0.1]], [1]))
    assert "Through layer 2 it stays at the changed token (b)" in stays
    other = patching_verdict(view([[1, 0, 0], [0, 0.9, 0], [0, 0.8, 0.1]], [1]))
    assert "The most restoring position is a in layer 0 and b in layer 2." in other
