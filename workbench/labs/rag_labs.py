"""The RAG lab: BM25 over the plays finds passages, SmolLM2-135M-Instruct answers with and without them.

The engine is :mod:`workbench_engines.retrieval.rag`; this module asks it and
draws. SmolLM2 is loaded once per process (``models.llama.bundled``, shared
with the other labs and the probes), in the worker, with its weights as stored
(Q4_1/Q8_0 blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from workbench.labs.base import Lab, Progress
from workbench.labs.knobs import plus_minus_keys

K_MAX = 8
"""Most passages the lab puts in a prompt (eight are about 900 tokens: the prefill then takes seconds)."""
LABELS = {"none": "no passage", "retrieved": "retrieved", "gold": "gold passage"}


@dataclass(frozen=True)
class Asked:
    """One question as the lab shows it, filled in while the model writes."""

    question: str
    k: int
    hits: tuple = ()
    """The Retrieved passages, best first."""
    known: object = None
    """The set's Question when the question is one of the set (its answer and gold passage are then known)."""
    run: object = None
    """The QuestionRun once finished (known questions)."""
    partial: dict = field(default_factory=dict)
    """condition -> the answer written so far."""


def _passage_line(text: str, width: int = 60) -> str:
    """text on one line of at most ``width`` characters (an 80-column lab's passage column)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def asked_view(asked: Asked) -> Group:
    """The retrieved passages with their BM25 scores, then the answers and log-probabilities by condition."""
    run = asked.run
    gold_id = run.gold.id if run is not None else None
    hits = Table(box=None, header_style="bold", title=f"BM25 top {asked.k} of the plays' passages",
                 title_justify="left")
    hits.add_column("#", justify="right")
    hits.add_column("score", justify="right", min_width=5)
    hits.add_column("passage", no_wrap=True)
    for rank, hit in enumerate(asked.hits, start=1):
        mark = " (gold)" if hit.passage.id == gold_id else ""
        hits.add_row(str(rank), f"{hit.score:.1f}", _passage_line(f"{hit.passage.heading}{mark}: {hit.passage.text}"))
    parts: list = [hits if asked.hits else Text("BM25 found no passage sharing a word with the question (stop "
                                                 "words such as 'the' and 'is' do not count).")]
    answers = Table(box=None, header_style="bold")
    answers.add_column("prompt holds")
    answers.add_column("log p(ans)", justify="right")
    answers.add_column("per token", justify="right")
    answers.add_column("the model's answer")
    for condition, label in LABELS.items():
        reply = run.replies[condition] if run is not None else None
        scored = reply is not None and reply.answer_logprobs
        text = reply.text if reply is not None and reply.text else asked.partial.get(condition, "")
        if condition == "gold" and not text:
            text = "(not generated)" if run is not None else ""
        answers.add_row(label, f"{reply.logprob:.2f}" if scored else "", f"{reply.per_token:.2f}" if scored else "",
                        repr(text) if text and not text.startswith("(") else text)
    parts.append(answers)
    if run is not None:
        gain, gold_gain = run.gain("retrieved"), run.gain("gold")
        rank = f"rank {run.gold_rank}" if run.gold_rank else f"not in the top {asked.k}"
        parts.append(Text(f"Answer {asked.known.answer!r}: the retrieved passages change its log p by {gain:+.2f} "
                          f"nats ({_ratio(gain)} as likely), the gold passage ({rank}) by {gold_gain:+.2f}."))
    elif asked.known is None and asked.partial:
        parts.append(Text("Not a question of the set: its answer is unknown, so no log-probability (q picks one)."))
    return Group(*parts)


def _ratio(nats: float) -> str:
    """e^nats as a factor: ×2,564, ×0.45, or 1/250 where two decimals would round a small factor to ×0.0x."""
    import math

    value = math.exp(nats)
    if value >= 10:
        return f"×{value:,.0f}"
    return f"×{value:.2f}" if value >= 0.1 else f"1/{1 / value:,.0f}"


def report_view(report) -> Group:
    """BM25's recall of the gold passages, then the question set's table: mean log p, its change, the share made
    more likely, exact match and contains."""
    n, k = len(report.runs), report.k
    recall = f"BM25 ranked the gold passage first for {report.found_at(1)} of {n} (recall@1 {report.recall_at(1):.3f})"
    if k > 1:
        recall += f", in its top {k} for {report.found_at(k)} of {n} (recall@{k} {report.recall:.3f})"
    table = Table(box=None, header_style="bold", title=f"{n} questions, {k} passages retrieved",
                  title_justify="left")
    for name in ("prompt holds", "mean log p", "mean Δ", "Δ/token", "more likely", "exact", "contains"):
        table.add_column(name, justify="left" if name == "prompt holds" else "right")
    for condition, label in LABELS.items():
        generated = any(r.replies[condition].text for r in report.runs)
        base = condition == "none"
        table.add_row(label, f"{report.mean_logprob(condition):.2f}",
                      "" if base else f"{report.mean_gain(condition):+.2f}",
                      "" if base else f"{report.mean_gain_per_token(condition):+.2f}",
                      "" if base else f"{report.share_more_likely(condition):.0%}",
                      f"{report.exact_rate(condition):.0%}" if generated else "",
                      f"{report.contains_rate(condition):.0%}" if generated else "")
    note = Text("log p in nats, teacher-forced on the answer's tokens; exact and contains compare the greedy answer "
                "with the known one after SQuAD's normalisation.", style="dim")
    return Group(Text(recall + "."), table, note)


class RagLab(Lab):
    """Ask the plays a question: BM25 retrieves passages, SmolLM2-135M-Instruct answers with and without them."""

    BINDINGS = [
        Binding("r", "ask", "Ask", tooltip="Ask the question in the box"),
        Binding("q", "next_question", "Next", tooltip="Ask the next question of the set"),
        *plus_minus_keys("k(1)", "k(-1)", "k"),
        Binding("a", "all", "All", tooltip="Run the whole question set and show its table"),
    ]
    k = reactive(Initialize(lambda lab: lab.params["k"]))
    """Passages retrieved into the prompt."""
    asked = reactive(None, always_update=True)
    """The question being answered or answered (an Asked)."""
    report = reactive(None, always_update=True)
    """The whole set's Report, once run."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["question"], placeholder="a question about the plays; Enter asks it")
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.readout(Text("SmolLM2-135M-Instruct (weights as stored, Q4_1) reads passages that BM25 finds among "
                          "the 38 plays. r asks the question above, q takes the next one of the set, a runs all "
                          "of them."))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self.action_ask()

    def action_k(self, step: int) -> None:
        if not self.busy():
            self.k = max(1, min(K_MAX, self.k + step))
            self.status(f"k = {self.k} passages in the prompt (r asks again)")

    def action_next_question(self) -> None:
        from workbench_engines.retrieval.rag import load_questions

        if self.busy():
            return

        questions = [q.question for q in load_questions()]
        box = self.query_one(Input)
        now = questions.index(box.value) if box.value in questions else -1
        box.value = questions[(now + 1) % len(questions)]
        self.action_ask()

    def action_ask(self) -> None:
        question, k = self.query_one(Input).value.strip(), self.k
        if not question:
            self.status("Type a question first.")
            return

        def work(progress: Progress) -> Asked:
            from workbench_engines.models.llama import bundled
            from workbench_engines.retrieval.rag import CONDITIONS, answer, load_questions, retrieve, run_question

            worker = get_current_worker()
            progress(0.02, "indexing the plays (BM25, once)")
            hits = tuple(retrieve(question, k))
            known = next((q for q in load_questions() if q.question == question), None)
            asked = Asked(question, k, hits, known)
            self._ui(setattr, self, "asked", asked)
            progress(0.1, "loading SmolLM2 (once)")
            model = bundled("quantized")
            partial: dict = {}

            def on_token(condition: str, text: str) -> None:
                partial[condition] = text
                done = CONDITIONS.index(condition) / len(CONDITIONS)
                self._ui_stream(self._streamed, 0.2 + 0.8 * done, Asked(question, k, hits, known, None, dict(partial)))

            # Checked before each prefill and each generated token: x stops the run within one forward pass.
            def stop() -> bool:
                return worker.is_cancelled

            if known is not None:
                run = run_question(model, known, k, on_token=on_token, should_stop=stop)
                return Asked(question, k, hits, known, run, dict(partial))
            for condition, passages in (("none", ()), ("retrieved", [h.passage for h in hits])):
                partial[condition] = answer(question, passages, model, should_stop=stop,
                                            on_token=lambda text, c=condition: on_token(c, text))
            return Asked(question, k, hits, None, None, dict(partial))

        self.start(work, lambda asked: setattr(self, "asked", asked), "Asking")

    def _streamed(self, fraction: float, asked: Asked) -> None:
        self._progress(fraction, "SmolLM2 is writing")
        self.asked = asked

    def watch_asked(self, asked: Asked | None) -> None:
        if asked is not None:
            self.readout(asked_view(asked))

    def action_all(self) -> None:
        k = self.k

        def work(progress: Progress):
            from workbench_engines.models.llama import bundled
            from workbench_engines.retrieval.rag import evaluate

            worker = get_current_worker()
            progress(0.0, "loading SmolLM2 (once)")
            return evaluate(bundled("quantized"), k=k, progress=progress, should_stop=lambda: worker.is_cancelled)

        self.start(work, lambda report: setattr(self, "report", report), "Running the question set")

    def watch_report(self, report) -> None:
        if report is not None:
            self.readout(report_view(report))
