"""The "A real model" track's labs in the app at 80×24, and its probes."""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Input

from workbench.probes import compute_probe
from tests.conftest import needs_smollm
from workbench.widgets.profile_panel import ProfilePanel


@needs_smollm
async def test_card_lab_reads_the_file(open_lab):
    async with open_lab("llm.card") as h:
        text = h.readout()
        assert "layers 30" in text and "key/value heads 3 (GQA 3:1)" in text and "134,515,008 parameters" in text
        await h.press("minus")
        assert h.lab.context == 1024 and "at a context of 1,024" in h.readout()


@needs_smollm
async def test_chat_lab_streams_a_reply_and_shows_alternatives(open_lab):
    async with open_lab("llm.chat", tokens=6) as h:
        h.lab.query_one(Input).value = "Name a colour."
        await h.lab.query_one(Input).action_submit()
        await h.settle()
        reply = h.lab.reply
        assert reply.done and 1 <= len(reply.steps) <= 6 and reply.prompt_tokens > 20
        assert all(len(step.alternatives) == 5 for step in reply.steps)
        # Greedy: every token is the model's most probable one.
        assert all(step.text == step.alternatives[0][0] for step in reply.steps)
        await h.press("left_square_bracket")
        assert h.lab.looking == len(reply.steps) - 2 or len(reply.steps) == 1
        assert "top 5" in h.readout() and "tokens/s, decode" in h.readout()
        await h.press("t", "w")
        assert h.lab.settings == h.lab.Settings(temperature=0.3, weights="fp32")


async def test_rope_lab_shows_the_layouts_agree(open_lab):
    async with open_lab("llm.rope") as h:
        assert "columns agree" in h.readout()
        # Headers with brackets are shown, not read as markup (issue 20's tour: two columns both called "half").
        assert "interleaved(x[perm])" in h.readout() and "half[perm]" in h.readout()
        await h.press("plus")
        assert h.lab.position == 4 and "position 4" in h.readout()


async def test_rope_lab_refuses_an_odd_vector(open_lab):
    async with open_lab("llm.rope", vector=[1.0, 2.0, 3.0]) as h:
        assert "even number of values" in h.readout()


@needs_smollm
@pytest.mark.slow
async def test_profile_lab_times_every_operator(open_lab):
    async with open_lab("llm.profile", context=32) as h:
        await h.press("r")
        await h.settle()
        profiles = h.lab.profiled.profiles
        assert set(profiles) == {"fp32", "quantized"}
        for profile in profiles.values():
            ops = profile.by_operator()
            assert {"norms", "attention projections", "attention", "feed-forward", "output projection"} <= set(ops)
            assert sum(ops.values()) <= profile.step_seconds * 1.05 and len(profile.by_layer("feed-forward")) == 30


@needs_smollm
@pytest.mark.slow
async def test_profile_lab_races_decoding_against_the_bandwidth(open_lab):
    async with open_lab("llm.profile", new_tokens=4) as h:
        await h.press("b")
        await h.settle()
        rows = h.lab.query_one(ProfilePanel).rows
        assert all(row.matches for row in rows)
        assert {row.name for row in rows} == {"ours read 1T", "torch sum 1T", "ours fp32", "ours quantized",
                                              "ours quantized, int8 x"}
        assert "ours quantized: 97 MB of weights a token" in h.text(ProfilePanel)  # the roofline, under the table


@needs_smollm
def test_real_model_probes():
    assert compute_probe("llm.parameters", {"component": "attention"}) == 30 * (576 * 576 * 2 + 2 * 576 * 192)
    assert compute_probe("llm.kv_bytes", {"tokens": 10, "dtype": "fp32"}) == 10 * 2 * 30 * 3 * 64 * 4
    assert compute_probe("llm.weight_bytes", {"weights": "fp32"}) == 4 * 134_515_008
    assert compute_probe("llm.chat_tokens", {"message": "Hi"}) > compute_probe("llm.chat_tokens", {"message": ""}) - 1
    p = compute_probe("llm.first_token_probability", {"message": "What is the capital of France?", "token": "The"})
    assert 0 < p <= 1


def test_rope_rotate_probe_matches_by_hand():
    angle = 1.0  # pair 0 turns by position · base^0
    assert compute_probe("positional.rope_rotate", {"vector": [1, 0, 0, 1], "position": 1, "index": 0}) == \
        pytest.approx(np.cos(angle))
    assert compute_probe("positional.rope_rotate", {"vector": [1, 0, 0, 1], "position": 1, "index": 2,
                                                    "layout": "half"}) == pytest.approx(np.sin(angle))
