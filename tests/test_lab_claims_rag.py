"""The RAG lab shows what lesson 08 of the embeddings track claims on its defaults, its table reads right, and x
stops a question."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Input

from tests.conftest import needs_smollm, plain_text
from tests.test_lab_claims import lesson_params
from workbench.labs.rag_labs import _ratio, report_view
from workbench.probes import compute_probe
from workbench_engines.errors import EngineError
from workbench_engines.retrieval import rag


@needs_smollm
@pytest.mark.slow
@pytest.mark.claims
async def test_the_default_question_retrieves_the_gold_passage_and_raises_the_answers_log_probability(open_lab):
    async with open_lab("retrieval.rag", **lesson_params("rag-end-to-end", "retrieval.rag")) as h:
        assert "SmolLM2-135M-Instruct" in h.readout() and "BM25" in h.readout()
        await h.press("r")
        await h.settle()
        run = h.lab.asked.run
        assert run.question.answer == "Francisco" and run.gold_rank == 1
        assert [h.passage.heading for h in run.hits] == [
            "Hamlet, Act I, Scene I", "Love's Labours Lost, Act V, Scene II", "Hamlet, Act III, Scene II"]
        assert round(run.hits[0].score, 1) == 7.5
        # Log-probabilities, not the greedy text: a sum over another thread count can move them in the 4th decimal,
        # and that could flip a near-tied argmax of the text. The lesson claims only that no answer names Francisco.
        logprobs = [run.replies[c].logprob for c in rag.CONDITIONS]
        assert logprobs == pytest.approx([-16.20, -8.35, -5.11], abs=0.01)
        for condition in rag.GENERATED:
            assert run.replies[condition].text and not rag.contains(run.replies[condition].text, "Francisco")
        assert run.replies["retrieved"].prompt_tokens == 439
        text = h.readout()
        assert "Hamlet, Act I, Scene I (gold)" in text and all(f"{lp:.2f}" in text for lp in logprobs)
        gain, gold_gain = run.gain("retrieved"), run.gain("gold")
        assert (gain, gold_gain) == pytest.approx((7.85, 11.09), abs=0.01) and _ratio(gain).startswith("×2,5")
        assert (f"change its log p by {gain:+.2f} nats ({_ratio(gain)} as likely), the gold passage (rank 1) by "
                f"{gold_gain:+.2f}") in text
        # The probe runs on this thread, the lab on its worker, each with its own OpenMP thread count: the sums
        # agree to about 1e-5 nats, not bit for bit.
        assert compute_probe("rag.logprob_gain", {"index": 0, "condition": "gold"}) == pytest.approx(
            run.gain("gold"), abs=1e-4)


async def test_a_question_outside_the_set_and_an_empty_one_are_handled(open_lab):
    async with open_lab("retrieval.rag") as h:
        h.lab.query_one(Input).value = "   "
        await h.press("r")
        assert "Type a question first." in h.status()
        await h.press("plus", "plus")
        assert h.lab.k == 5
        await h.press(*["minus"] * 6)
        assert h.lab.k == 1


@needs_smollm
@pytest.mark.slow
async def test_x_stops_a_question_before_its_next_forward_pass(open_lab, monkeypatch):
    """x pressed while the first prompt is about to be read ends the run there, for a question of the set (three
    prompts) and for one of the learner's (two): no later prompt is read and nothing is shown as finished."""
    real_read = rag.read
    reads: list[int] = []
    entered, pressed = threading.Event(), threading.Event()

    def held_read(*args, **kwargs):
        reads.append(1)
        entered.set()
        pressed.wait(30)  # the worker reads its prompt only once x has been pressed
        return real_read(*args, **kwargs)

    monkeypatch.setattr(rag, "read", held_read)
    async with open_lab("retrieval.rag") as h:
        for question in (None, "Which king is poisoned in his orchard?"):
            if question is not None:
                h.lab.query_one(Input).value = question
            reads.clear()
            entered.clear()
            pressed.clear()
            await h.press("r")
            for _ in range(3000):  # the first run indexes the plays and loads SmolLM2
                if entered.is_set():
                    break
                await h.pilot.pause(0.02)
            assert entered.is_set()
            await h.press("x")
            pressed.set()
            await h.settle()
            assert h.status() == "Cancelled." and len(reads) == 1
            assert h.lab.asked.run is None and not h.lab.asked.partial


def test_the_recall_probe_is_the_lessons_figure():
    assert compute_probe("rag.recall_at_k", {"k": 1}) == pytest.approx(26 / 30)
    assert compute_probe("rag.recall_at_k", {"k": 3}) == 1.0


def _run(answer: str, rank: int | None, logprobs: dict, texts: dict) -> rag.QuestionRun:
    passage = rag.Passage(0, "hamlet", "Hamlet", "Act I, Scene I", "Francisco: Not a mouse stirring.")
    other = rag.Passage(1, "hamlet", "Hamlet", "Act I, Scene II", "Hamlet: A little more than kin.")
    hits = (rag.Retrieved(passage, 5.0), rag.Retrieved(other, 4.0)) if rank == 1 else (rag.Retrieved(other, 4.0),)
    replies = {c: rag.Reply(10, (1,), (logprobs[c],), texts.get(c, "")) for c in rag.CONDITIONS}
    return rag.QuestionRun(rag.Question("hamlet", "q?", answer, "mouse"), hits, passage, replies)


def test_the_set_table_reads_the_report():
    runs = (_run("Francisco", 1, {"none": -10.0, "retrieved": -4.0, "gold": -2.0},
                 {"none": "Hamlet", "retrieved": "Francisco."}),
            _run("Francisco", None, {"none": -6.0, "retrieved": -7.0, "gold": -3.0},
                 {"none": "a guard", "retrieved": "It is Francisco"}))
    report = rag.Report(runs, 2)
    assert report.recall == 0.5 and report.mean_gain("retrieved") == pytest.approx(2.5)
    assert report.share_more_likely("retrieved") == 0.5 and report.share_more_likely("gold") == 1.0
    assert report.exact_rate("retrieved") == 0.5 and report.contains_rate("retrieved") == 1.0
    assert report.found_at(1) == report.found_at(2) == 1 and report.recall_at(1) == 0.5
    with pytest.raises(EngineError, match="top 2 passages only"):
        report.found_at(3)
    text = " ".join(plain_text(report_view(report)).split())
    assert ("BM25 ranked the gold passage first for 1 of 2 (recall@1 0.500), in its top 2 for 1 of 2 "
            "(recall@2 0.500). 2 questions, 2 passages retrieved") in text
    assert "retrieved -5.50 +2.50 +2.50 50% 50% 100%" in text
    assert "gold passage -2.50 +5.50 +5.50 100%" in text and "no passage -8.00" in text


def test_a_likelihood_ratio_reads_as_a_factor_or_a_fraction():
    assert [_ratio(n) for n in (7.85, 0.0, -1.0, -3.0, -5.52)] == ["×2,566", "×1.00", "×0.37", "1/20", "1/250"]
