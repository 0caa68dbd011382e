"""Experiment labs show what their lessons claim, on the lessons' own settings, and say so in words.

Each test opens the lab with the parameters its lesson gives it and checks
the claim the lesson's prose makes about the run (never a time: timings
differ by machine, so only deterministic quantities are asserted), plus the
lab's verdict sentence for both outcomes.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import needs_smollm
from workbench.curriculum import load_curriculum
from workbench.curriculum.model import LabBlock

LESSONS = Path(__file__).resolve().parents[1] / "lessons"


def lesson_params(lesson_id: str, lab_id: str, block: int = 0) -> dict:
    """The parameters the lesson's block of lab_id (the first, or the ``block``-th from 0) passes to it."""
    lesson = load_curriculum(LESSONS).lesson(lesson_id)
    blocks = [b for step in lesson.steps for b in step.blocks if isinstance(b, LabBlock) and b.lab_id == lab_id]
    assert len(blocks) > block, f"{lesson_id} has no block {block} of the {lab_id} lab"
    return dict(blocks[block].params)


@asynccontextmanager
async def lesson_run(open_lab, lesson_id: str, lab_id: str, key: str = "r"):
    """The lab opened with its lesson's parameters, after one run (``key``) has finished."""
    async with open_lab(lab_id, **lesson_params(lesson_id, lab_id)) as h:
        await h.press(key)
        await h.settle()
        yield h


async def test_beam_lab_finds_more_probable_text_than_greedy_and_says_where_greedy_wins(open_lab):
    async with lesson_run(open_lab, "beam-search", "decode.beam") as h:
        outcome = h.lab.outcome
        best = max(outcome.result.hypotheses, key=lambda hyp: hyp.logprob)
        assert best.logprob > outcome.greedy.logprob
        assert "The beams found a better log p than greedy: -10.79 against -14.74, text 52.1 times as likely" \
            in h.readout()
        await h.press("W", "W", "W", "W", "r")  # 4 beams: the prose says greedy wins here
        await h.settle()
        outcome = h.lab.outcome
        assert h.lab.settings.width == 4
        assert max(hyp.logprob for hyp in outcome.result.hypotheses) < outcome.greedy.logprob
        assert "Greedy won this time" in h.readout() and "fell out of the 4 beams at step 8" in h.readout()


@pytest.mark.slow
def test_beam_beats_greedy_on_the_lessons_other_lines_at_4_beams_and_on_all_five_at_8():
    from workbench_engines.generation import beam_search, generate, sequence_logprob
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    eos = target.tokenizer.special_tokens["<|endoftext|>"]
    lines = ["**HAMLET**  \nTo be, or not to be", "**ROMEO**  \nBut soft, what light", "**KING LEAR**  \nBlow, winds",
             "**MACBETH**  \nIs this a dagger", "**PORTIA**  \nThe quality of mercy"]
    for i, line in enumerate(lines):
        ids = target.prompt_ids(line)
        greedy = generate(target.model, ids, 16, stop_tokens=(eos,)).tokens
        mine = sequence_logprob(target.model, ids, greedy)
        for width in (4, 8):
            best = beam_search(target.model, ids, 16, width=width, alpha=0.0, eos=eos).best.logprob
            assert (best > mine) == (width == 8 or i > 0), (line, width, best, mine)


def test_beam_verdict_ranks_by_the_searched_score_and_knows_a_finished_greedy_path():
    from workbench.labs.decoding_labs import beam_verdict, likelihood_ratio
    from workbench_engines.generation.beam import BeamResult, Hypothesis

    eos = 0
    live = [[Hypothesis((5,), -1.0), Hypothesis((6,), -1.5)], [Hypothesis((5, 7), -2.0), Hypothesis((6, 8), -2.2)]]
    short = Hypothesis((5, eos), -2.5, finished=True)
    # α = 1 ranks by log p per token: the finished 2-token text (−1.25) beats the greedy 3-token one (−1.33).
    result = BeamResult([short, *live[-1]], live, alpha=1.0)
    greedy = Hypothesis((6, 8, 9), -4.0)
    text = beam_verdict(result, greedy, 2).plain
    assert text.startswith("The beams found a better score (log p / length^1) than greedy: -1.25 against -1.33.")
    # Greedy wrote the end-of-text token at step 2: it finished, it did not fall out of the beam.
    result = BeamResult([*live[-1]], live, alpha=0.0)
    ended = Hypothesis((5, eos), -1.1, finished=True)
    text = beam_verdict(result, ended, 2).plain
    assert "Greedy won this time: log p -1.10 against the beams' best -2.00" in text and "fell out" not in text
    assert "fell out of the 1 beam at step 1, when 1 other prefix scored higher" in beam_verdict(
        BeamResult([Hypothesis((6, 8), -2.2)], [[Hypothesis((6,), -1.5)], [Hypothesis((6, 8), -2.2)]], alpha=0.0),
        Hypothesis((5, 7), -2.0), 1).plain
    tie = beam_verdict(BeamResult([Hypothesis((6, 8), -2.0)], live, alpha=0.0), Hypothesis((5, 7), -2.0), 2)
    assert tie.plain.startswith("A tie")
    assert likelihood_ratio(0.1) == "1.11 times" and likelihood_ratio(92.1) == "about 10^40 times"


@pytest.mark.slow
async def test_entropy_sweep_names_a_middle_temperature_as_most_like_the_plays(open_lab):
    async with lesson_run(open_lab, "entropy-and-diversity", "decode.entropy_sweep") as h:
        points = h.lab.points
        coldest, hottest = points[0], points[-1]
        best = max(points, key=lambda p: p.plays_like)
        assert coldest.temperature < best.temperature < hottest.temperature
        assert coldest.real_words > 0.95 and coldest.repeated_4 > 0.1  # real words, looping
        assert hottest.repeated_4 < 0.05 and hottest.real_words < 0.7  # no loops, invented words
        assert all(p.sample for p in points)
        assert f"Reads most like the plays at T = {best.temperature:g}" in h.readout()


def test_real_words_are_the_plays_words_in_any_case_with_inner_apostrophes():
    from workbench_engines.generation.diversity import plays_vocabulary, real_word_share

    vocabulary = plays_vocabulary()
    assert {"o'er", "i'll", "hamlet", "thou"} <= vocabulary and len(vocabulary) > 20_000
    assert real_word_share(["O'er THOU, Hamlet!"], vocabulary) == 1.0
    assert real_word_share(["thou prength wiplild"], vocabulary) == pytest.approx(1 / 3)
    assert real_word_share(["", "12 — !"], vocabulary) == 1.0  # no words: nothing invented


def test_sweep_verdict_names_only_the_extremes_it_beat():
    from workbench.labs.decoding_labs import sweep_verdict
    from workbench_engines.generation import SweepPoint

    points = [SweepPoint(0.5, 2.0, 0.7, 0.02, "a", 0.99), SweepPoint(1.0, 4.0, 0.9, 0.0, "b", 0.80)]
    text = sweep_verdict(points).plain
    assert "at T = 0.5" in text and "At T = 1 only 80% of words are real" in text and "repeat." not in text
    # A tie goes to the coldest, and the hottest is not blamed for a share no lower than the winner's.
    tied = [SweepPoint(0.5, 2.0, 0.7, 0.0, "a", 0.9), SweepPoint(1.0, 4.0, 0.9, 0.0, "b", 0.9)]
    assert "only" not in sweep_verdict(tied).plain
    assert sweep_verdict([SweepPoint(0.5, 2.0, 0.7, 0.0)]).plain.startswith("No text was decoded")


def test_speculative_acceptance_falls_with_draft_length_on_the_lessons_settings():
    """The lab's acceptance figures, computed as its race does (greedy, the lesson's tokens and draft lengths),
    without the timing repeats: acceptance is deterministic, speed is the machine's."""
    from workbench.labs.kvcache_labs import PROMPT
    from workbench.labs.registry import LABS
    from workbench_engines.generation import speculative_generate
    from workbench_engines.models import small_gpt
    from workbench_engines.sampling.settings import GREEDY

    params = LABS["kv.speculative"].validate(lesson_params("speculative-decoding", "kv.speculative"))
    target, draft = small_gpt.load("target"), small_gpt.load("draft")
    acceptance = [speculative_generate(target.model, draft.model, target.prompt_ids(PROMPT), params["tokens"],
                                       k=int(k), sampler=GREEDY, seed=1).acceptance_rate for k in params["ks"]]
    # The lesson: 63% at k = 1 (about three in five), 43% at k = 2, 21% at k = 6, falling as k grows.
    assert [round(100 * a) for a in acceptance] == [63, 43, 31, 27, 21]


@needs_smollm
@pytest.mark.claims
def test_the_distilled_draft_is_accepted_as_the_lesson_says_on_smollm2():
    """The lesson's second race: SmolLM2 and its distilled draft on the first held-out prompt, the lab's
    settings, one thread as the race runs; the acceptance figures the prose quotes (deterministic), and the
    tokens SmolLM2's own."""
    from workbench.labs.decoding_labs import load_model
    from workbench.labs.registry import LABS
    from workbench_engines.generation import generate, speculative_generate
    from workbench_engines.generation.bench import dynamic_name
    from workbench_engines.models import llm_bench, llm_draft
    from workbench_engines.sampling.settings import GREEDY

    params = LABS["kv.speculative"].validate(lesson_params("speculative-decoding", "kv.speculative", block=1))
    assert params["model"] == "smollm2"
    target = load_model("smollm2")
    case = llm_bench.speculative_race(target, prompts=1, new=params["tokens"], ks=tuple(int(k) for k in params["ks"]))
    assert [c.name for c in case.contenders][-1] == dynamic_name(*llm_bench.SPECULATIVE_DYNAMIC)
    setup, teardown = llm_bench._threads(1, target)
    setup()
    try:
        prompt = llm_bench.held_out_prompts(target, 1, llm_bench.VERIFY_PROMPT)[0]
        plain = generate(target.model, prompt, params["tokens"]).tokens
        runs = [speculative_generate(target.model, llm_draft.load(), prompt, params["tokens"], k=int(k),
                                     sampler=GREEDY) for k in params["ks"]]
        k, confidence = llm_bench.SPECULATIVE_DYNAMIC
        runs.append(speculative_generate(target.model, llm_draft.load(), prompt, params["tokens"], k=k,
                                         sampler=GREEDY, confidence=confidence))
    finally:
        teardown()
    assert all(run.tokens == plain for run in runs)
    # The lesson: 82% accepted at k = 2, 77% at k = 3 and 77% for the draft that stops when unsure, which
    # writes 4.6 tokens a target pass against 3.3 at k = 3.
    assert [round(100 * run.acceptance_rate) for run in runs] == [82, 77, 77]
    assert [round(run.tokens_per_round, 1) for run in runs[1:]] == [3.3, 4.6]


def test_speculative_verdict_reports_the_best_k_and_every_loss():
    from workbench.labs.kvcache_labs import speculative_verdict

    def row(speedup, acceptance, per_round):
        return SimpleNamespace(ratios={"target alone": speedup}, extra={"acceptance": acceptance,
                                                                        "tokens_per_round": per_round})

    text = speculative_verdict((1, 4), [row(1.1, 0.6, 1.6), row(0.9, 0.3, 2.0)], draft_speed=6.0)
    assert "60% at k = 1, 30% at k = 4." in text and "It falls with k" in text
    assert "Best: k = 1, 1.10× the target alone" in text and "gives 1.37×" in text  # 1.6 / (1 + 1/6)
    assert "Slower than the target alone at k = 4." in text
    text = speculative_verdict((1,), [row(0.8, 0.6, 1.6)], draft_speed=2.0)
    assert "Best" not in text and "Slower than the target alone at k = 1." in text
    rising = speculative_verdict((1, 2), [row(1.0, 0.5, 1.5), row(1.0, 0.6, 2.2)], draft_speed=2.0)
    assert "It falls" not in rising and "No draft length changed the speed." in rising
    assert speculative_verdict((), [], draft_speed=2.0) == "No draft length was raced."


@pytest.mark.slow
@pytest.mark.claims
async def test_flash_race_memory_grows_fourfold_for_scores_and_twofold_for_flash(open_lab):
    async with open_lab("attention.flash_race", seqs=[256, 512, 1024]) as h:
        await h.press("r")
        await h.settle()
        by_case = [case for name, case in h.lab.result.by_case().items() if name.startswith("full")]
        peaks = {name: [case[name].peak_bytes for case in by_case] for name in ("numpy", "native naive 1T",
                                                                                 "native flash 1T")}
        growth = {name: [b / a for a, b in zip(p, p[1:])] for name, p in peaks.items()}
        assert all(3.4 < g < 4.1 for g in growth["numpy"])
        assert all(2.2 < g < 4.0 for g in growth["native naive 1T"])
        assert growth["native naive 1T"] == sorted(growth["native naive 1T"])  # climbing towards 4
        assert all(1.7 < g < 2.3 for g in growth["native flash 1T"])
        assert "Peak memory per doubling: numpy ×" in h.status()


def test_memory_growth_skips_unmeasured_contenders():
    from workbench.labs.attention_labs import memory_growth

    def case(**peaks):
        return {name: SimpleNamespace(peak_bytes=peak) for name, peak in peaks.items()}

    text = memory_growth([256, 512, 1024], [case(naive=1, torch=None), case(naive=3, torch=None),
                                            case(naive=11, torch=None)])
    assert text.startswith("Peak memory per doubling: naive ×3.0 ×3.7.") and "torch" not in text
    assert memory_growth([256, 512], [case(torch=None), case(torch=None)]).startswith("No peak memory was measured")
    assert memory_growth([256], [case(naive=1)]).startswith("Race two or more sequence lengths")
    # 256 → 1,024 is two doublings: ×16 overall is ×4 per doubling.
    assert memory_growth([256, 1024], [case(naive=1), case(naive=16)]).startswith("Peak memory per doubling: naive ×4.0.")


@pytest.mark.slow
@pytest.mark.claims
async def test_depth_lab_says_depth_has_not_paid_after_the_lessons_150_steps(open_lab):
    assert lesson_params("stacking-blocks", "blocks.train_compare")["steps"] == 150
    async with lesson_run(open_lab, "stacking-blocks", "blocks.train_compare") as h:
        one, two, four = h.lab.trained.curves
        # The lesson's numbers (default seed): 4.82, 4.80, 4.86; four blocks behind one.
        assert [round(c.val_loss, 1) for c in (one, two, four)] == [4.8, 4.8, 4.9]
        assert four.val_loss > one.val_loss
        assert "After 150 steps depth has not paid yet" in h.readout()


def test_depth_verdict_separates_gains_from_the_seed_spread():
    from workbench.labs.blocks_labs import depth_verdict

    def curve(name, loss, seconds, diverged=False):
        return SimpleNamespace(name=name, val_loss=loss, seconds=seconds, steps=list(range(100)), diverged=diverged)

    curves = [curve("1 block", 3.91, 10), curve("2 blocks", 3.82, 12), curve("4 blocks", 3.87, 20)]
    text = depth_verdict(curves)
    assert text.startswith("Depth has begun to pay: 2 blocks below 1 block")
    assert "2 blocks 0.090 lower; 4 blocks 0.040 lower, within the seed spread we measured (0.05)" in text
    assert "×1.2, ×2.0" in text
    # Two seeds measured: the means and the learner's own spread (here 0.02) decide.
    seeds = {0: {"1 block": 3.91, "2 blocks": 3.82, "4 blocks": 3.87},
             1: {"1 block": 3.93, "2 blocks": 3.83, "4 blocks": 3.88}}
    text = depth_verdict(curves, seeds)
    assert text.startswith("More blocks lowered the validation loss.") and "within" not in text
    assert depth_verdict([curve("1 block", 4.0, 10), curve("2 blocks", float("nan"), 12, diverged=True)]) \
        .startswith("2 blocks diverged")
    assert depth_verdict([curve("1 block", 4.0, 10)]) == ""


def test_seed_summary_is_mean_and_half_range_per_variant():
    from workbench.labs.blocks_labs import seed_summary

    text = seed_summary({0: {"a": 4.0, "b": 3.0}, 1: {"a": 4.2, "b": float("nan")}})
    assert text == "Over seeds 0, 1: a 4.100 ± 0.100; b 3.000 ± 0.000 (mean ± half the range)."


@pytest.mark.slow
@pytest.mark.claims
async def test_scaling_lab_loss_falls_with_size_on_the_lessons_settings(open_lab):
    async with lesson_run(open_lab, "scaling", "training.scaling") as h:
        losses = [c.val_loss for c in h.lab.run.curves]
        assert losses == sorted(losses, reverse=True) and losses[0] - losses[-1] > 0.3
        assert 0.02 < h.lab.run.fit[1] < 0.05  # the lesson: about 0.034
        assert "Loss fell at every step up in size" in h.readout()


def test_scaling_verdict_names_every_size_that_did_not_help():
    from workbench.labs.training_labs import scaling_verdict

    text = scaling_verdict(["tiny", "small", "medium"], [4.86, 4.63, 4.66], 0.014)
    assert text.startswith("This run contradicts the trend: medium (4.660) is not below small (4.630)")
    assert "tiny (" not in text  # tiny → small did fall
    assert scaling_verdict(["a", "b"], [4.9, 4.4], 0.03).startswith("Loss fell at every step up in size")
