"""A lesson, one step at a time: prose, labs and quizzes, with a step counter."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown, Static

from workbench.curriculum import ExerciseBlock, LabBlock, Lesson, QuizBlock, TextBlock
from workbench.labs.knobs import paired_keys
from workbench.labs.registry import LABS
from workbench.messages import QuizAnswered
from workbench.progress import ProgressStore
from workbench.widgets.question import QuestionView


class LessonScreen(Screen):
    """Steps through a lesson; remembers the step and every answer in the progress store."""

    BINDINGS = [
        # "go", not "step": the footer shows one item per action name, and a lab's "step(1)" (the BPE
        # trainer's next merge) would take this one's place.
        *paired_keys("n,right", "p,left", "go(1)", "go(-1)", "Step", display="n/p",
                     up_help="Next step", down_help="Previous step"),
        Binding("escape", "leave", "Catalog"),
        # Out of the footer here, as is the palette's ^p, to leave a lab's keys room at 80 columns; help lists both.
        Binding("q", "app.quit", "Quit", show=False),
    ]
    DEFAULT_CSS = """
    LessonScreen #stepbar { height: 1; background: $primary-background; padding: 0 1; width: 1fr; }
    LessonScreen #body { height: 1fr; padding: 0 1; }
    LessonScreen #body:focus { background-tint: $foreground 3%; }
    LessonScreen Markdown { margin: 0; padding: 0; }
    LessonScreen .block-error { color: $error; border-left: thick $error; padding: 0 1; margin: 1 0; width: 1fr; }
    LessonScreen .score { margin: 1 0; text-style: bold; width: 1fr; }
    """

    def __init__(self, lesson: Lesson, store: ProgressStore, step: int | None = None) -> None:
        super().__init__()
        self.lesson = lesson
        self.store = store
        last = store.last_step(lesson.id) if step is None else step
        self.step = min(max(0, last or 0), len(lesson.steps) - 1)
        self._question_numbers = {q.id: i + 1 for i, q in enumerate(lesson.questions)}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="stepbar")
        yield VerticalScroll(id="body", can_focus=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = self.lesson.title
        self.show_step()

    def show_step(self) -> None:
        """Replace the body with the current step and record that it was seen."""
        step = self.lesson.steps[self.step]
        total = len(self.lesson.steps)
        self.store.mark_step(self.lesson.id, self.step, total)
        bar = Text()
        bar.append(f"Step {self.step + 1} of {total}", style="bold")
        bar.append(f" · {step.title}")
        self.query_one("#stepbar", Static).update(bar)
        body = self.query_one("#body", VerticalScroll)
        body.remove_children()
        widgets = [Markdown(f"## {step.title}")]
        for block in step.blocks:
            widgets.append(self._widget(block))
        if self.step == total - 1:
            # A class, not an id: a step shown again before the old one is removed would mount a second one.
            widgets.append(Static(self._score_text(), classes="score"))
        body.mount_all(widgets)
        body.scroll_home(animate=False)
        body.focus()

    def _widget(self, block):
        if isinstance(block, TextBlock):
            return Markdown(block.markdown)
        if isinstance(block, LabBlock):
            if block.error:
                return Static(Text(f"This lab can't run: {block.error}"), classes="block-error")
            spec = LABS[block.lab_id]
            return spec.widget_class()(spec, block.params)
        if isinstance(block, ExerciseBlock):
            if block.error:
                return Static(Text(f"This exercise link is broken: {block.error}"), classes="block-error")
            from workbench.widgets.exercise_card import ExerciseCard

            return ExerciseCard(block.exercise_id, self.store)
        assert isinstance(block, QuizBlock)
        if block.question is None:
            return Static(Text(f"This quiz question is malformed: {block.error}"), classes="block-error")
        q = block.question
        return QuestionView(q, self._question_numbers[q.id], len(self._question_numbers),
                            self.store.latest_answer(self.lesson.id, q.id))

    def _score_text(self) -> str:
        questions = self.lesson.questions
        if not questions:
            return "End of the lesson. Press Escape for the catalog."
        p = self.store.lesson_progress(self.lesson.id, [q.id for q in questions])
        return (f"Quiz score: {p.correct} of {len(questions)} correct "
                f"({p.answered} of {len(questions)} answered). Press Escape for the catalog.")

    def on_quiz_answered(self, message: QuizAnswered) -> None:
        self.store.record_answer(self.lesson.id, message.question_id, message.answer, message.correct, message.score,
                                 message.expected)
        for score in self.query(".score").results(Static):
            score.update(self._score_text())
        # The answered question keeps the focus (it has no keys of its own, so n/p work straight away);
        # focusing the body here would leave the view wherever blurring the answer box had scrolled it.

    def action_go(self, delta: int) -> None:
        target = self.step + delta
        if 0 <= target < len(self.lesson.steps):
            self.step = target
            self.show_step()
        elif target >= len(self.lesson.steps):
            self.notify("That was the last step. Escape returns to the catalog.")

    def action_leave(self) -> None:
        self.dismiss()
