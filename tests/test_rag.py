"""RAG over the plays (engines/retrieval/rag.py): passages, the question set, retrieval, the prompt, scoring."""

from __future__ import annotations

import pytest

from tests.conftest import needs_smollm
from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.retrieval import rag

PLAY = """# A Play

## ACT I

### SCENE I. A heath.

_Thunder. Enter three WITCHES_

**FIRST WITCH**  
When shall we three meet again  
In thunder, lightning, or in rain?

**KING HENRY VIII**  
Well, well.

_Exeunt_
"""


def test_a_play_parses_into_scenes_of_speeches_and_directions():
    title, scenes = rag.parse_play(PLAY)
    assert title == "A Play"
    lines = ("(Thunder. Enter three WITCHES)\nFirst Witch: When shall we three meet again In thunder, lightning, or "
             "in rain?\nKing Henry VIII: Well, well.\n(Exeunt)")
    assert scenes == [("Act I, Scene I", lines)]
    assert rag.parse_play(PLAY.replace("# A Play\n", ""), "Fallback")[0] == "Fallback"
    assert rag.title_from_stem("measure-for-measure") == "Measure for Measure"
    assert rag.title_from_stem("a-winter-s-tale") == "A Winter's Tale"
    with pytest.raises(EngineError, match="Title"):
        rag.parse_play("**A**  \nline")


def test_passages_are_short_and_carry_play_act_and_scene():
    passages = rag.play_passages()
    assert len(passages) > 10_000 and [p.id for p in passages[:3]] == [0, 1, 2]
    assert all(0 < len(p.text) <= rag.PASSAGE_CHARS for p in passages)
    assert passages[0].heading == "A Midsummer Night's Dream, Act I, Scene I"
    assert passages[0].text.startswith("(Enter THESEUS, HIPPOLYTA, PHILOSTRATE, and Attendants)\nTheseus: Now, fair")
    assert passages[0].shown == f"{passages[0].heading}\n{passages[0].text}"
    assert len({p.play for p in passages}) == 38 and "Measure for Measure" in {p.title for p in passages}


def test_every_answer_occurs_in_its_one_gold_passage():
    questions = rag.load_questions()
    assert len(questions) >= 20 and len({q.question for q in questions}) == len(questions)
    for q in questions:
        gold = rag.gold_passage(q)  # raises unless the evidence is in exactly one passage, which holds the answer
        assert gold.play == q.play and q.evidence.lower() in gold.text.lower()
        assert q.answer.lower() in gold.shown.lower()
        assert q.answer.lower() not in q.question.lower(), "the question must not give its answer away"
    moved = rag.Question("hamlet", "?", "Francisco", "Who's there?")  # Hamlet says it in several passages
    with pytest.raises(EngineError, match="not exactly one"):
        rag.gold_passage(moved)
    with pytest.raises(EngineError, match="not in the passage"):
        rag.gold_passage(rag.Question("hamlet", "?", "Ophelia", "Not a mouse stirring"))


def test_a_broken_question_file_is_an_engine_error(tmp_path):
    bad = tmp_path / "qa.toml"
    bad.write_text('[[question]]\nplay = "hamlet"\n')
    with pytest.raises(EngineError, match="not a question set"):
        rag.load_questions(bad)
    bad.write_text("")
    with pytest.raises(EngineError, match="no"):
        rag.load_questions(bad)


def test_retrieval_is_deterministic_and_refuses_bad_input():
    question = rag.load_questions()[0].question
    first, again = rag.retrieve(question, 5), rag.retrieve(question, 5)
    assert [h.passage.id for h in first] == [h.passage.id for h in again] and len(first) == 5
    scores = [h.score for h in first]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert first[0].passage == rag.gold_passage(rag.load_questions()[0])
    n = len(rag.play_passages())
    for k in (0, -1, n + 1, True, 2.0):
        with pytest.raises(EngineError, match="k must be an int from 1"):
            rag.retrieve(question, k)
    for empty in ("", "   ", None):
        with pytest.raises(EngineError, match="empty"):
            rag.retrieve(empty, 3)


def test_bm25_recall_of_the_gold_passages_grows_with_k():
    recalls = [rag.recall_at_k(k) for k in (1, 2, 3)]
    assert [round(r * len(rag.load_questions())) for r in recalls] == [26, 29, 30]


def test_the_prompt_numbers_the_passages_before_the_question():
    passages = list(rag.play_passages()[:2])
    system, user = rag.messages("  Who enters?  ", passages)
    assert system == {"role": "system", "content": rag.SYSTEM}
    assert user["content"] == (f"Passages from the plays:\n\n[1] {passages[0].shown}\n\n[2] {passages[1].shown}\n\n"
                               "Question: Who enters?\nAnswer in a few words.")
    assert rag.messages("Who enters?")[1]["content"] == "Question: Who enters?\nAnswer in a few words."
    with pytest.raises(EngineError, match="empty"):
        rag.messages(" ")


def test_answers_are_compared_after_squad_normalisation():
    assert rag.normalize("The  Ghost, of course!") == "ghost of course"
    assert rag.exact_match("A horse.", "a horse") and not rag.exact_match("a horse, a horse", "a horse")
    assert rag.contains("It was Francisco.", "Francisco") and not rag.contains("Franciscan", "Francisco")


@needs_smollm
@pytest.mark.slow
def test_scoring_equals_a_direct_teacher_forced_sum_and_answers_greedily():
    """read() scores the answer through the KV cache; one uncached forward over prompt + answer must agree."""
    from workbench_engines.generation import generate
    from workbench_engines.generation.diversity import sequence_logprob
    from workbench_engines.models.llama import bundled

    model = bundled("quantized")
    prompt = rag.prompt_ids(model, "Who wrote Hamlet?")
    text = model.chat(rag.messages("Who wrote Hamlet?"))
    assert text.startswith(f"<|im_start|>system\n{rag.SYSTEM}<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    reply = rag.read(model, prompt, "William Shakespeare", max_new_tokens=3)
    assert reply.answer_tokens == tuple(model.tokenizer.encode("William Shakespeare")) and len(reply.answer_tokens) >= 2
    direct = sequence_logprob(model.model, prompt, list(reply.answer_tokens))
    assert reply.logprob == pytest.approx(direct, abs=2e-3) and reply.logprob < 0
    assert reply.per_token == pytest.approx(reply.logprob / len(reply.answer_tokens))
    greedy = generate(model.model, prompt, 3, stop_tokens=model.stop_tokens).tokens
    assert reply.text == model.tokenizer.decode([t for t in greedy if t not in model.stop_tokens]).strip()
    with pytest.raises(EngineError, match="empty"):
        rag.read(model, prompt, "")
    with pytest.raises(EngineError, match="max_new_tokens"):
        rag.read(model, prompt, None, max_new_tokens=0)
    with pytest.raises(EngineError, match="condition"):
        rag.logprob_gain(model, rag.load_questions()[0], "none")
    # should_stop is asked before the prefill, then before each token: True on its third call stops after one token.
    asked, streamed = iter([False, False, True]), []
    with pytest.raises(Cancelled):
        rag.read(model, prompt, None, on_token=streamed.append, should_stop=lambda: next(asked))
    assert len(streamed) == 1
    with pytest.raises(Cancelled):
        rag.answer("Who wrote Hamlet?", (), model, should_stop=lambda: True, on_token=streamed.append)
    assert len(streamed) == 1
