"""The Decoding and KV-cache tracks' labs driven in the real app at 80×24, and their probes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from workbench_engines.generation import distinct_n, repeated_ngram_fraction
from workbench.probes import compute_probe
from workbench.widgets.profile_panel import ProfilePanel


def test_repetition_measures():
    assert repeated_ngram_fraction([1, 2, 3, 4, 5, 6]) == 0
    assert repeated_ngram_fraction([1, 2, 3, 4] * 3) == pytest.approx(5 / 9)
    assert distinct_n([[1, 2, 3], [1, 2, 4]]) == pytest.approx(3 / 4)


@pytest.mark.slow
async def test_generate_lab_greedy_repeats_and_sampling_differs(open_lab):
    async with open_lab("decode.generate") as h:
        await h.press("g")
        await h.settle()
        greedy = h.lab.generated.tokens
        await h.press("g")
        await h.settle()
        assert h.lab.generated.tokens == greedy and len(greedy) == 80
        await h.press("s")
        await h.settle()
        assert h.lab.generated.tokens != greedy
        assert "repeat an earlier one" in h.readout()


@pytest.mark.slow
async def test_sampler_dashboard_knobs_cut_the_distribution(open_lab):
    async with open_lab("decode.sampler") as h:
        await h.settle()
        lab = h.lab
        assert lab.kept == 2048 and 0 < lab.entropy < 11
        await h.press("k", "k", "k")  # top-k: off → 1 → 2 → 5
        assert lab.state.sampler.top_k == 5 and lab.kept == 5
        await h.press("z", "u", "u")
        raw, after = lab.distribution()
        assert lab.state.sampler.top_p == 0.3 and after[raw.argmax()] > raw.max()
        await h.press(*["T"] * 8)  # down to T = 0.1
        assert lab.state.sampler.temperature == 0.1 and lab.entropy < 1
        await h.press("d")
        await h.settle()
        assert len(lab.state.samples) == 4 and "fresh continuations" in h.readout()


async def test_entropy_sweep_lab_rises_with_temperature(open_lab):
    async with open_lab("decode.entropy_sweep", temperatures=[0.3, 1.0, 2.0], samples=2, tokens=16) as h:
        await h.press("r")
        await h.settle()
        entropies = [p.entropy_bits for p in h.lab.points]
        assert entropies == sorted(entropies) and entropies[-1] < 11


async def test_beam_lab_ranks_hypotheses_by_their_real_log_probability(open_lab):
    from workbench_engines.generation import sequence_logprob
    from workbench_engines.models import small_gpt

    async with open_lab("decode.beam") as h:
        await h.press("A", "A", "W", "W")  # α = 0 (total log-probability), width 2
        await h.press("r")
        await h.settle()
        assert h.lab.settings == h.lab.Settings(2, 0.0)
        result = h.lab.outcome.result
        scores = [hyp.score(0) for hyp in result.hypotheses]
        assert scores == sorted(scores, reverse=True)
        target = small_gpt.load("target")
        prompt = target.tokenizer.encode_ordinary("**HAMLET**  \nTo be, or not to be")
        best = result.best
        assert best.logprob == pytest.approx(sequence_logprob(target.model, prompt, list(best.tokens)), abs=1e-3)
        assert "greedy:" in h.readout()


@pytest.mark.slow
async def test_constrained_lab_output_parses(open_lab):
    async with open_lab("decode.constrained") as h:
        for index in range(2):
            await h.press("r")
            await h.settle()
            outcome = h.lab.outcome
            assert outcome.result.complete and json.loads(outcome.result.text) == outcome.value
            await h.press("ctrl+n")
            assert h.lab.schema_index == index + 1


@pytest.mark.slow
async def test_cache_speedup_lab_gives_the_same_tokens_faster(open_lab):
    async with open_lab("kv.speedup", lengths=[16, 48]) as h:
        await h.press("r")
        await h.settle()
        rows = h.lab.query_one(ProfilePanel).rows
        assert [row.case for row in rows] == ["generate 16 tokens"] * 2 + ["generate 48 tokens"] * 2
        assert all(row.matches for row in rows)  # the cache changes the speed, never the tokens


async def test_cache_memory_lab_keys(open_lab):
    async with open_lab("kv.memory") as h:
        await h.press("d", "b", "b")
        assert h.lab.state == h.lab.State("bf16", 4)  # fp16 → bf16, batch 1 → 4
        assert "Llama-2-70B" in h.readout()


async def test_paged_lab_shares_the_common_prefix(open_lab):
    async with open_lab("kv.paged") as h:
        lab = h.lab
        for _ in range(3):
            await h.press("s")
            await h.settle()
        assert lab.cache.stats.hits > 0 and len(lab.live) == 3
        first = lab.cache.block_table(lab.live[0].sequence)
        second = lab.cache.block_table(lab.live[1].sequence)
        assert first[0] == second[0]  # the shared prefix's first block
        await h.press("f")
        assert len(lab.live) == 2 and lab.cache.pool.refs[first[-1]] == 0
        assert "req 1 finished" in h.readout()


@pytest.mark.slow
async def test_speculative_lab_greedy_matches_the_target(open_lab):
    async with open_lab("kv.speculative", tokens=24, ks=[1, 3]) as h:
        await h.press("r")
        await h.settle()
        rows = {row.name: row for row in h.lab.query_one(ProfilePanel).rows}
        assert set(rows) == {"target alone", "draft alone", "speculative, k=1", "speculative, k=3"}
        assert all(row.matches for row in rows.values())  # greedy speculative text equals the target's
        assert all(0 <= rows[f"speculative, k={k}"].extra["acceptance"] <= 1 for k in (1, 3))


def test_decoding_and_kv_probes():
    assert compute_probe("kv.model_gib", {"model": "Llama-2-7B", "tokens": 4096}) == pytest.approx(2.0)
    assert compute_probe("kv.paged_empty_slots", {"tokens": 33, "block_size": 16}) == 15
    logits = [3.0, 2.0, 1.0, 0.0, -1.0]
    assert compute_probe("sampling.kept", {"logits": logits, "method": "top_p", "value": 0.9}) == 3
    assert compute_probe("sampling.kept", {"logits": logits, "method": "min_p", "value": 0.2}) == 2
    assert compute_probe("sampling.kept", {"logits": logits, "method": "top_k", "value": 4}) == 4
    assert compute_probe("speculative.expected_tokens", {"alpha": 0.5, "k": 3}) == pytest.approx(1.875)
    assert compute_probe("speculative.expected_tokens", {"alpha": 1.0, "k": 3}) == 4
    p = compute_probe("decode.next_token_probability", {"prompt": "**HAMLET**  \\nTo be", "token": ","})
    assert 0 < p < 1
    with pytest.raises(ValueError, match="not one"):
        compute_probe("decode.next_token_probability", {"prompt": "x", "token": "Hamlet and Ophelia"})
    allowed = compute_probe("constrained.first_allowed", {"pattern": "(yes|no)"})
    assert 2 <= allowed < 20 and not math.isnan(allowed)
    assert np.isfinite(compute_probe("softmax.entropy_bits", {"logits": [2.0, 1.0, 0.0, -1.0], "temperature": 0.5}))


def test_a_labs_table_wraps_a_long_case_heading_and_keeps_every_figure_whole():
    """The SmolLM2 race's heading is 80-odd characters: in the 74-column lab pane it wraps in the contender
    column instead of widening it until the times and ratios are cut."""
    from rich.console import Console

    from workbench.widgets.profile_panel import CASE_WIDTH, profile_table
    from workbench_engines.profiling.profile import Profile

    case = "speculative decoding with the distilled draft, quantized, 1 thread, 128 tokens, greedy"
    rows = [Profile("native", 3.541, name="target alone", case=case, matches=True, ratios={"target alone": 1.0}),
            Profile("native", 2.4, name="speculative, k≤6, stop below 0.4", case=case, matches=True,
                    ratios={"target alone": 1.47})]
    console = Console(width=74, record=True)
    console.print(profile_table(rows, ("target alone",), compact=True))
    text = console.export_text()
    assert "3541.000" in text and "2400.000" in text and "1.47" in text and "greedy" in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 74
    assert all(len(line.split("  ")[0]) <= CASE_WIDTH for line in text.splitlines())
    # A bench table (not compact, two cases) heads each case the same way, 160 columns when piped, and its
    # contender and note columns keep whole words.
    rows.insert(0, Profile("native", 0.027, name="verify 1 token", case="verify", matches=True,
                           note="long pieces by backtracking, linear time"))
    console = Console(width=160, record=True)
    console.print(profile_table(rows, ("target alone",)))
    text = console.export_text()
    assert "3541.000" in text and "1.47" in text and "greedy" in text and "long pieces by backtracking" in text
    assert "verify 1 token" in text and "speculative, k≤6, stop below 0.4" in text
    assert all(len(line.split("│")[1].strip()) <= CASE_WIDTH for line in text.splitlines() if line.count("│") > 2)
