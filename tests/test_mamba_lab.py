"""The Mamba lab (issue 23): on its lesson's settings it shows what the lesson claims, its quiz's probe equals the
figure it shows, a bad knob is refused. No time is asserted: the verdict is checked on made-up runs both ways."""

from __future__ import annotations

import pytest
from rich.console import Console

from tests.test_lab_claims import lesson_params, lesson_run
from workbench.curriculum import load_curriculum
from workbench.labs.mamba_labs import mamba_verdict, smoothed
from workbench.labs.registry import LABS
from workbench.params import ParamError
from workbench.probes import compute_probe
from workbench_engines.longctx.mamba import Comparison, ModelRun

pytestmark = pytest.mark.no_c_path  # the lab over torch training; test_mamba.py covers the scan with and without C

LESSON, LAB = "a-tiny-mamba", "longctx.mamba_vs_transformer"


def probe_answers() -> dict[str, float]:
    """quiz id -> the answer its probe computes today, for every probe question of the lesson."""
    lesson = load_curriculum().lesson(LESSON)
    return {q.id: compute_probe(q.probe, q.params) for q in lesson.questions if q.kind == "probe"}


@pytest.mark.slow
@pytest.mark.claims
async def test_the_lab_on_the_lessons_settings_shows_the_lessons_claims(open_lab):
    assert lesson_params(LESSON, LAB) == {"steps": 150, "seed": 0}
    async with lesson_run(open_lab, LESSON, LAB) as h:
        result = h.lab.comparison
        mamba, gpt = result.mamba, result.gpt
        assert 0.9 < mamba.parameters / gpt.parameters < 1.0  # about the same size, the Mamba a little smaller
        assert len(mamba.train_losses) == len(gpt.train_losses) == 150
        # The claim the lesson makes about this seed: the Mamba ends lower at equal steps.
        assert mamba.val_loss < gpt.val_loss
        assert "After 150 steps Mamba reached the lower validation loss" in h.readout()
        # Decode memory: the GPT's cache grows with the context, the Mamba's state does not.
        assert set(mamba.state_bytes.values()) == set(mamba.measured_state_bytes.values()) == {29184}
        assert gpt.state_bytes[16384] == 16 * gpt.state_bytes[1024] == 16 * 2**20
        assert gpt.measured_state_bytes == {c: c * 1024 for c in (256, 1024, 4096)}
        answer = probe_answers()["mamba-state"]
        assert answer == 28.5 and f"{answer:.1f} KiB" in h.readout() and "16.00 MiB" in h.readout()
        assert "575× the Mamba's 28.5 KiB" in h.readout()


async def test_the_seed_keys_stay_in_range_and_refuse_while_running(open_lab):
    async with open_lab(LAB, seed=9998) as h:
        await h.press("s", "s")
        assert h.lab.seed == 9999 and "Seed 9999, 150 steps each" in h.status()
        await h.press("S", "S", "S")
        assert h.lab.seed == 9996


def test_the_lab_refuses_bad_knobs():
    spec = LABS[LAB]
    for bad in ({"steps": 5}, {"steps": 10**6}, {"steps": 300.0}, {"seed": -1}, {"layers": 3}):
        with pytest.raises(ParamError):
            spec.validate(bad)


def _run(name: str, val: float, tokens_per_s: float, state: dict[int, int]) -> ModelRun:
    return ModelRun(name, 1000, {}, [val] * 5, val, 1.0, tokens_per_s, {4096: 500.0}, 0.0, state, {})


def test_the_verdict_names_the_winner_either_way_from_the_runs_own_figures():
    mamba_state = {1024: 29184, 16384: 29184}
    gpt_state = {1024: 2**20, 16384: 2**24}
    settings = {"steps": 300}
    mamba_wins = mamba_verdict(Comparison(_run("Mamba", 4.6, 4000, mamba_state), _run("GPT", 4.7, 20000, gpt_state),
                                          settings))
    assert mamba_wins.startswith("After 300 steps Mamba reached the lower validation loss, 4.600 against 4.700 "
                                 "(0.100 nats per token).")
    assert "The GPT trained 5.0× as fast" in mamba_wins
    assert "To decode token 16,384 the GPT keeps 16.00 MiB of keys and values, 575× the Mamba's 28.5 KiB" in mamba_wins
    gpt_wins = mamba_verdict(Comparison(_run("Mamba", 4.9, 30000, mamba_state), _run("GPT", 4.7, 15000, gpt_state),
                                        settings))
    assert gpt_wins.startswith("After 300 steps GPT reached the lower validation loss, 4.700 against 4.900")
    assert "The Mamba trained 2.0× as fast as the GPT." in gpt_wins


async def test_a_finished_run_is_drawn_as_curves_and_a_table_that_fits_80_columns(open_lab):
    mamba = _run("Mamba", 4.6, 4000, {1024: 29184, 16384: 29184})
    gpt = _run("GPT", 4.7, 20000, {1024: 2**20, 16384: 2**24})
    settings = {"steps": 5, "seed": 3, "batch_size": 8, "seq_len": 64, "decode_tokens": 32, "threads": 1}
    async with open_lab(LAB) as h:
        h.lab.comparison = Comparison(mamba, gpt, settings)
        await h.settle()
        assert h.readout().startswith(
            "model params val loss train tok/s decode@4k state@1k state@16k "
            "Mamba 1,000 4.600 4,000 500 28.5 KiB 28.5 KiB GPT 1,000 4.700 20,000 500 1.00 MiB 16.00 MiB After 5 steps")
        table = h.lab.query_one(".readout").content.renderables[0]
        assert Console(width=200).measure(table).maximum <= 76  # inside the lab's border and padding at 80 columns
        assert "seed 3, 5 steps of 8×64 tokens" in h.readout()


def test_smoothing_averages_ten_steps_and_leaves_short_curves_alone():
    assert smoothed([3.0, 2.0]) == ([1, 2], [3.0, 2.0])
    steps, losses = smoothed([float(i) for i in range(12)])
    assert steps == [10, 11, 12] and losses == pytest.approx([4.5, 5.5, 6.5])
