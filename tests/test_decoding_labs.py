"""The Decoding and KV-cache tracks' labs driven in the real app at 80×24, and their probes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from textual.widgets import Static

from tests.test_tokenizer_labs import open_lab
from workbench.app import WorkbenchApp
from workbench.labs.decoding_labs import (
    BeamLab,
    ConstrainedLab,
    EntropySweepLab,
    GenerateLab,
    SamplerLab,
    distinct_n,
    repeated_ngram_fraction,
)
from workbench.labs.kvcache_labs import CacheMemoryLab, CacheSpeedupLab, PagedLab, SpeculativeLab
from workbench.probes import compute_probe

SIZE = (80, 24)


async def _settle(app, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def test_repetition_measures():
    assert repeated_ngram_fraction([1, 2, 3, 4, 5, 6]) == 0
    assert repeated_ngram_fraction([1, 2, 3, 4] * 3) == pytest.approx(5 / 9)
    assert distinct_n([[1, 2, 3], [1, 2, 4]]) == pytest.approx(3 / 4)


async def test_generate_lab_greedy_repeats_and_sampling_differs(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "decode.generate", GenerateLab)
        lab.focus()
        await pilot.press("g")
        await _settle(app, pilot)
        greedy = lab.last_tokens
        await pilot.press("g")
        await _settle(app, pilot)
        assert lab.last_tokens == greedy and len(greedy) == 80
        await pilot.press("s")
        await _settle(app, pilot)
        assert lab.last_tokens != greedy
        assert "repeat an earlier one" in str(lab.query_one(".readout", Static).content.renderables[1])


async def test_sampler_dashboard_knobs_cut_the_distribution(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "decode.sampler", SamplerLab)
        await _settle(app, pilot)
        lab.focus()
        full = lab.kept
        assert full == 2048 and 0 < lab.entropy < 11
        await pilot.press("k", "k", "k")  # top-k: off → 1 → 2 → 5
        assert lab.sampler.top_k == 5 and lab.kept == 5
        await pilot.press("z", "p", "p")
        raw, after = lab.distribution()
        assert lab.sampler.top_p == 0.3 and after[raw.argmax()] > raw.max()
        await pilot.press("T", "T", "T", "T", "T", "T", "T", "T")  # down to T = 0.1
        assert lab.sampler.temperature == 0.1 and lab.entropy < 1
        await pilot.press("n")
        await _settle(app, pilot)
        assert len(lab.samples) == 4


async def test_entropy_sweep_lab_rises_with_temperature(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "decode.entropy_sweep", EntropySweepLab)
        lab.params = {**lab.params, "temperatures": [0.3, 1.0, 2.0], "samples": 2, "tokens": 16}
        lab.focus()
        await pilot.press("r")
        await _settle(app, pilot)
        entropies = [row[1] for row in lab.rows]
        assert entropies == sorted(entropies) and entropies[-1] < 11


async def test_beam_lab_ranks_hypotheses_by_their_real_log_probability(tmp_path):
    from workbench_engines.models import small_gpt
    from workbench.labs.decoding_labs import _logprob

    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "decode.beam", BeamLab)
        lab.focus()
        await pilot.press("A", "A", "W", "W")  # α = 0 (total log-probability), width 2
        await pilot.press("r")
        await _settle(app, pilot)
        assert (lab.alpha, lab.width) == (0, 2)
        scores = [h.score(0) for h in lab.result.hypotheses]
        assert scores == sorted(scores, reverse=True)
        target = small_gpt.load("target")
        prompt = target.tokenizer.encode_ordinary("**HAMLET**  \nTo be, or not to be")
        best = lab.result.best
        assert best.logprob == pytest.approx(_logprob(target.model, prompt, list(best.tokens)), abs=1e-3)
        final = lab.query_one(".readout", Static).content.renderables[1]
        assert final.row_count == min(4, len(lab.result.hypotheses)) + 1  # and the greedy row


async def test_constrained_lab_output_parses(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "decode.constrained", ConstrainedLab)
        lab.focus()
        for _ in range(2):
            await pilot.press("r")
            await _settle(app, pilot)
            assert lab.result.complete and json.loads(lab.result.text) == lab.value
            await pilot.press("ctrl+n")


async def test_cache_speedup_lab_gives_the_same_tokens_faster(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "kv.speedup", CacheSpeedupLab)
        lab.params = {**lab.params, "lengths": [16, 48]}
        lab.focus()
        await pilot.press("r")
        await _settle(app, pilot)
        assert [row[0] for row in lab.rows] == [16, 48]


async def test_cache_memory_lab_keys(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "kv.memory", CacheMemoryLab)
        lab.focus()
        await pilot.press("d", "b", "b")
        assert (lab.dtype, lab.batch) == ("fp8", 4)
        table = lab.query_one(".readout", Static).content
        assert table.row_count == 4


async def test_paged_lab_shares_the_common_prefix(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "kv.paged", PagedLab)
        lab.focus()
        for _ in range(3):
            await pilot.press("n")
            await _settle(app, pilot)
        assert lab.cache.stats.hits > 0 and len(lab.live) == 3
        first = lab.cache.block_table(lab.live[0][0])
        second = lab.cache.block_table(lab.live[1][0])
        assert first[0] == second[0]  # the shared prefix's first block
        await pilot.press("f")
        assert len(lab.live) == 2 and lab.cache.pool.refs[first[-1]] == 0


async def test_speculative_lab_greedy_matches_the_target(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "kv.speculative", SpeculativeLab)
        lab.params = {**lab.params, "tokens": 24, "ks": [1, 3]}
        lab.focus()
        await pilot.press("r")
        await _settle(app, pilot)
        assert [row[0] for row in lab.rows] == [1, 3]
        assert all(0 <= rate <= 1 for _, rate, _, _ in lab.rows)


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
