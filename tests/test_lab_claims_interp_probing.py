"""The probes and attribution labs show what lessons 05 and 06 claim on their defaults, and say it in words."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from workbench_engines.interp.probing import LayerProbe, ProbeResult

from tests.conftest import needs_minilm
from tests.test_lab_claims import lesson_params
from workbench.labs.interp_probe_labs import (
    attribution_verdict,
    gap_text,
    probes_verdict,
)

pytestmark = pytest.mark.no_c_path  # interpretability calls no C kernel of its own

PROMPT = "**ROMEO**  \nBut, soft! what light through yonder window"


@pytest.mark.claims
async def test_probes_lab_finds_selectivity_peaking_at_layer_3_of_the_small_gpt(open_lab):
    async with open_lab("interp.probes", **lesson_params("probes-and-controls", "interp.probes")) as h:
        await h.settle()
        layers = h.lab.result.layers
        assert h.lab.model == "small GPT" and len(layers) == 7
        assert [round(p.accuracy, 3) for p in layers] == [0.426, 0.5, 0.519, 0.556, 0.537, 0.5, 0.556]
        assert round(layers[0].control_accuracy, 3) == 0.426 and round(layers[6].control_accuracy, 3) == 0.519
        assert "selectivity peaks at layer 3: 55.6% on genre against 37.0% on the control task, +18.5%" in h.readout()
        assert "Layer 6 is as accurate or more (55.6%), but its control probe reaches 51.9%: selectivity +3.7%" \
            in h.readout()
        result = h.lab.result
        assert round(result.chance, 3) == 0.333 and 0.333 <= result.control_chance < 0.6
        assert (f"scores 33% on genre, {result.control_chance:.0%} on the control task"
                in " ".join(h.readout().split()))


@pytest.mark.slow
@needs_minilm
@pytest.mark.claims
async def test_probes_lab_on_minilm_peaks_at_layer_5(open_lab):
    async with open_lab("interp.probes", **lesson_params("probes-and-controls", "interp.probes")) as h:
        await h.settle()
        await h.press("m")
        await h.settle()
        assert h.lab.model == "MiniLM"
        assert "selectivity peaks at layer 5: 61.1% on genre against 27.8% on the control task, +33.3%" in h.readout()
        assert round(h.lab.result.layers[0].selectivity, 3) == 0.204
        assert round(h.lab.result.layers[6].accuracy, 3) == 0.444


@pytest.mark.claims
async def test_attribution_lab_names_the_tokens_and_completeness_tightens_with_steps(open_lab):
    params = lesson_params("attribution", "interp.attribution")
    assert params == {} or params.get("prompt", PROMPT) == PROMPT
    async with open_lab("interp.attribution", **params) as h:
        await h.settle()
        result = h.lab.outcome[0]
        assert h.lab.steps == 32 and h.lab.baseline == "mean"
        assert round(result.delta, 3) == 6.232 and round(result.gap, 4) == 0.0005
        assert np.abs(result.grad_x_input).max() < 0.13
        assert "small GPT's top next token is '?'" in h.readout()
        assert "'␣␣' (+1.57), 'ow' (+1.52), ' what' (+1.43)" in h.readout()
        assert "a gap of 0.05% at 32 steps." in h.readout()
        gaps = {}
        for _ in range(6):  # 64, 128, 4, 8, 16, 32
            await h.press("s")
            await h.settle()
            gaps[h.lab.steps] = h.lab.outcome[0].gap
        assert [round(gaps[s], 4) for s in (4, 8, 16, 32, 64)] == [0.3237, 0.0376, 0.0035, 0.0005, 0.0]
        assert gaps[128] < gaps[64]
        await h.press("b")
        await h.settle()
        assert h.lab.baseline == "zero" and h.lab.outcome[0].gap > 1e9
        assert "too few steps for this path from the zero baseline" in h.readout()


def _result(rows):
    return ProbeResult([LayerProbe(i, a, c) for i, (a, c) in enumerate(rows)], 126, 54, 1 / 3, 1 / 3)


def test_probes_verdict_names_the_most_selective_layer_and_a_rival_that_only_looks_as_good():
    text = probes_verdict("small GPT", _result([(0.4, 0.4), (0.6, 0.35), (0.65, 0.6)]))
    assert "selectivity peaks at layer 1: 60.0% on genre against 35.0%" in text
    assert "Layer 2 is as accurate or more (65.0%), but its control probe reaches 60.0%" in text
    plain = probes_verdict("MiniLM", _result([(0.7, 0.3), (0.5, 0.4)]))
    assert "the embeddings (layer 0)" in plain and "as accurate" not in plain
    none = probes_verdict("small GPT", _result([(0.3, 0.4), (0.33, 0.35)]))
    assert "No layer beats its control" in none


def test_attribution_verdict_says_whether_completeness_held():
    good = SimpleNamespace(scores=np.array([0.1, -2.0, 1.0]), total=-0.9, delta=-0.9, gap=0.001, steps=32,
                           baseline="mean", keep_first=False)
    text = attribution_verdict("small GPT", good, ["a", "b", "c"], "?")
    assert "'b' (-2.00), 'c' (+1.00), 'a' (+0.10)" in text and "a gap of 0.10% at 32 steps." in text
    bad = SimpleNamespace(**{**vars(good), "gap": 60.3, "total": 55.0})
    assert "a gap of 60.3 times F(x) − F(x') at 32 steps: the output jumps along this path, and more steps will " \
        "not fix it. f keeps the first token in place" in attribution_verdict("SmolLM2", bad, ["a", "b", "c"], "?")
    kept = SimpleNamespace(**{**vars(bad), "keep_first": True})
    assert "too few steps for this path from the mean baseline" in attribution_verdict("SmolLM2", kept, ["a", "b", "c"], "?")
    short = SimpleNamespace(**{**vars(good), "gap": 0.19})
    assert "a gap of 19.00% at 32 steps: too few steps" in attribution_verdict("small GPT", short, ["a", "b", "c"], "?")
    assert gap_text(0.0005) == "0.05%"
