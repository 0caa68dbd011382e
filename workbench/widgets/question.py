"""One quiz question, answered with the keyboard; locks once answered.

Choice questions use an option list (the highlighted choice in reverse video
and ``[x]`` boxes, so selection reads without colour); numbers use an input; probe questions ask
the engine for the answer in a worker while the learner thinks.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from workbench.messages import QuizAnswered
from workbench.logs import logger
from workbench.probes import compute_cancellable
from workbench.progress import Attempt
from workbench.quiz import Grade, Question, exact_number, format_number, parse_number


class ChoiceList(OptionList):
    """Options for single, multiple and order questions."""

    BINDINGS = [
        Binding("enter", "select", "Answer"),
        Binding("space", "toggle", "Tick"),
        Binding("u", "move(-1)", "Move up"),
        Binding("d", "move(1)", "Move down"),
    ]

    def action_toggle(self) -> None:
        view = self.query_ancestor(QuestionView)
        if view.question.kind == "multiple" and self.highlighted is not None:
            view.toggle(self.highlighted)

    def action_move(self, delta: int) -> None:
        view = self.query_ancestor(QuestionView)
        if view.question.kind == "order" and self.highlighted is not None:
            self.highlighted = view.move(self.highlighted, delta)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Show only the keys that apply to this kind of question.
        kind = self.query_ancestor(QuestionView).question.kind
        if action == "toggle":
            return kind == "multiple"
        if action == "move":
            return kind == "order"
        return True


class NumberInput(Input):
    """The answer box of a number question: no number holds a "q", so q quits here too.

    Plain text, not ``type="number"``: Textual's number filter drops the ``/``
    of ``1/4`` (submitting 14) and the ``%`` of ``25%``; :func:`parse_number`
    reads what was typed and the view shows the result before Enter locks it.
    """

    BINDINGS = [
        Binding("q", "app.quit", "Quit", show=False, priority=True),
        # Shown, unlike Input's own: the box takes n, p, ? and q as typing, so without these the footer
        # said only "esc Catalog" while an answer was being typed (issue 20).
        Binding("enter", "submit", "Answer"),
        Binding("tab", "app.focus_next", "Leave the box"),
    ]

    def __init__(self) -> None:
        # select_on_focus off: Tab into the box must not arm one keystroke to wipe what is there.
        super().__init__(placeholder="your answer", id="answer", select_on_focus=False)


class QuestionView(Vertical):
    """A question, its answer control and, once answered, the feedback."""

    DEFAULT_CSS = """
    QuestionView { height: auto; margin: 1 0; padding: 0 1; border-left: thick $accent; }
    QuestionView .prompt { text-style: bold; width: 1fr; }
    QuestionView .hint { color: $text-muted; width: 1fr; }
    QuestionView ChoiceList { height: auto; max-height: 10; }
    /* Reverse video marks the highlighted choice without colour (NO_COLOR keeps it; a grey background goes). */
    QuestionView ChoiceList:focus > .option-list--option-highlighted { text-style: bold reverse; }
    QuestionView .feedback { width: 1fr; margin-top: 1; }
    QuestionView:focus { background-tint: $foreground 6%; }
    """

    def __init__(self, question: Question, number: int, total: int, attempt: Attempt | None) -> None:
        super().__init__()
        self.question = question
        self.number = number
        self.total = total
        # An answer stored before the lesson was edited (another kind, fewer choices) no longer fits: ask again.
        self.attempt = attempt if attempt is not None and question.accepts(attempt.answer) else None
        self.expected: float | None = None
        """The engine-computed answer of a probe question, once known."""
        self.ticked: set[int] = set()
        self.order: list[int] = question.shuffled_order() if question.kind == "order" else []

    # --- layout ----------------------------------------------------------

    def compose(self) -> ComposeResult:
        q = self.question
        yield Static(Text(f"Question {self.number} of {self.total}: {q.prompt}"), classes="prompt")
        hints = {
            "single": "↑↓ choose, Enter answer",
            "multiple": "↑↓ move, Space tick, Enter answer",
            "order": "↑↓ move, u/d shift the item, Enter answer",
            "numeric": "type a number (0.25, 1/4, 25%, 3e-4), Enter answer",
            "probe": "type a number (0.25, 1/4, 25%, 3e-4), Enter answer; the engine grades it",
        }
        yield Static(Text(hints[q.kind] + (f" · unit: {q.unit}" if q.unit else "")), classes="hint")
        if q.kind in ("single", "multiple", "order"):
            yield ChoiceList(*self._options())
        else:
            yield NumberInput()
        yield Static("", classes="feedback")

    def on_mount(self) -> None:
        attempt = self.attempt
        if self.question.kind != "probe":
            if attempt is not None:
                self._lock(self.question.grade(attempt.answer), attempt.answer)
        elif attempt is not None and attempt.expected is not None and math.isfinite(attempt.expected):
            # Shown against the value it was graded against, not one computed afresh today.
            self.expected = attempt.expected
            self._lock(self.question.grade(attempt.answer, attempt.expected), attempt.answer)
        else:
            self._compute_expected()

    def _options(self) -> list[Option]:
        q = self.question
        # Text, not markup: a lesson's choices may hold brackets ("a[i]", "[/]").
        if q.kind == "order":
            return [Option(Text(f"{pos + 1}. {q.choices[i]}")) for pos, i in enumerate(self.order)]
        if q.kind == "multiple":
            return [Option(Text(f"[{'x' if i in self.ticked else ' '}] {chr(65 + i)}) {c}"))
                    for i, c in enumerate(q.choices)]
        return [Option(Text(f"{chr(65 + i)}) {c}")) for i, c in enumerate(q.choices)]

    def _refresh_options(self, highlighted: int) -> None:
        choices = self.query_one(ChoiceList)
        choices.set_options(self._options())
        choices.highlighted = highlighted

    # --- interaction -----------------------------------------------------

    def toggle(self, index: int) -> None:
        self.ticked ^= {index}
        self._refresh_options(index)

    def move(self, index: int, delta: int) -> int:
        target = index + delta
        if not 0 <= target < len(self.order):
            return index
        self.order[index], self.order[target] = self.order[target], self.order[index]
        self._refresh_options(target)
        return target

    @on(OptionList.OptionSelected)
    def _choice_made(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        kind = self.question.kind
        if kind == "single":
            self.submit(event.option_index)
        elif kind == "multiple":
            self.submit(sorted(self.ticked))
        else:
            self.submit(list(self.order))

    def _read_number(self, typed: str) -> tuple[float | None, str]:
        """(the number typed, or None) and what to tell the learner about it."""
        try:
            value = parse_number(typed, self.question.unit)
        except ValueError as exc:
            return None, str(exc)
        if not math.isfinite(value):
            return None, f"{typed.strip()} is not a finite number; enter one that is."
        unit = f" {self.question.unit}" if self.question.unit else ""
        # Every digit typed, not 6 significant figures: the preview is what Enter grades.
        return value, f"Enter answers {exact_number(value)}{unit}."

    @on(Input.Changed)
    def _number_typed(self, event: Input.Changed) -> None:
        # What Enter will grade, shown as it is typed: an answer is never locked unseen.
        event.stop()
        if self.attempt is None:
            _, said = self._read_number(event.value) if event.value.strip() else (None, "")
            self.query_one(".feedback", Static).update(Text(said, style="dim"))

    @on(Input.Submitted)
    def _number_entered(self, event: Input.Submitted) -> None:
        event.stop()
        value, said = self._read_number(event.value)
        if value is None:
            self.query_one(".feedback", Static).update(Text(said))
            return
        if self.question.kind == "probe" and self.expected is None:
            self.query_one(".feedback", Static).update("The engine is still computing the answer; try again in a moment.")
            return
        self.submit(value)

    def submit(self, response: Any) -> None:
        """Grade response, lock the question and tell the lesson."""
        if self.attempt is not None:
            return
        if self.question.kind == "multiple" and not response:
            self.query_one(".feedback", Static).update("Tick at least one choice with Space first.")
            return
        grade = self.question.grade(response, self.expected)
        self.attempt = Attempt(response, grade.correct, grade.score, 0.0, self.expected)
        # Keep the focus here, not on whatever follows the control that _lock disables (a lab's
        # text box, the next question), so the feedback stays in view and Tab goes on from here.
        self.can_focus = True
        self.focus(scroll_visible=False)
        self._lock(grade, response)
        self.call_after_refresh(lambda: self.query_one(".feedback", Static).scroll_visible(animate=False))
        self.post_message(QuizAnswered(self.question.id, response, grade.correct, grade.score, self.expected))

    # --- probes ----------------------------------------------------------

    @work(thread=True, exclusive=True, group="probe", description="compute probe answer")
    def _compute_expected(self) -> None:
        q = self.question
        worker = get_current_worker()
        try:
            value = compute_cancellable(q.probe, q.params, lambda: worker.is_cancelled)
            error = None
        except Exception as exc:  # shown in the question, never a crash
            logger.exception("probe %s failed", q.probe)
            value, error = None, f"The engine could not compute this answer: {exc}"
        if value is None and error is None:
            return  # cancelled: the question or the app is closing
        if value is not None and not math.isfinite(value):
            value, error = None, f"The engine computed {value}, which can't be graded; the lesson needs fixing."
        if self.is_attached and not worker.is_cancelled:
            self.app.call_from_thread(self._expected_ready, value, error)

    def _expected_ready(self, value: float | None, error: str | None) -> None:
        self.expected = value
        if error:
            # Text: an engine's message may hold brackets, as in pip install 'workbench[minilm]'.
            self.query_one(".feedback", Static).update(Text(error))
        elif self.attempt is not None:
            self._lock(self.question.grade(self.attempt.answer, value), self.attempt.answer)

    # --- feedback --------------------------------------------------------

    def _lock(self, grade: Grade, response: Any) -> None:
        q = self.question
        # An answered question is a Tab stop of its own, so its feedback can be reached and read.
        self.can_focus = True
        if q.kind in ("single", "multiple", "order"):
            if q.kind == "multiple":
                self.ticked = set(response)
            elif q.kind == "order":
                self.order = list(response)
            choices = self.query_one(ChoiceList)
            choices.set_options(self._options())
            choices.disabled = True
        else:
            field = self.query_one(Input)
            field.value = exact_number(float(response))
            field.disabled = True
        text = Text()
        if grade.correct:
            text.append("✓ Correct. ", style="bold")
        else:
            text.append("✗ Not quite. ", style="bold")
            if q.kind == "single":
                text.append(f"You picked {chr(65 + response)}. ")
            elif q.kind == "multiple":
                text.append(f"You ticked {', '.join(chr(65 + i) for i in sorted(response)) or 'nothing'}. ")
            text.append(f"The answer is {grade.expected}. ")
        explanation = q.explanation
        if q.kind == "probe" and self.expected is not None:
            explanation = explanation.replace("{answer}", format_number(self.expected, q.tolerance))
        text.append(explanation)
        if q.why and q.kind in ("single", "multiple"):
            # Every choice's why, not only the picked ones: a right choice the learner missed teaches most.
            picked = {response} if q.kind == "single" else set(response)
            right = {q.answer} if q.kind == "single" else set(q.answer)
            did = "picked" if q.kind == "single" else "ticked"
            for index, why in enumerate(q.why):
                verdict = "right" if index in right else "wrong"
                if index in picked:
                    verdict += f", you {did} it"
                elif index in right:
                    verdict += ", you missed it"
                text.append(f"\n{chr(65 + index)}) ", style="bold")
                text.append(f"{verdict}: ", style="bold" if index in picked ^ right else "")
                text.append(why)
        self.query_one(".feedback", Static).update(text)

    @property
    def answered(self) -> bool:
        return self.attempt is not None
