"""The exercise view: pick an exercise, edit its file anywhere, and see it checked on every save.

A timer polls the workspace files' modification times (no extra dependency,
works over SSH and on network file systems); every changed file joins a queue,
and the queue is checked one file at a time in a worker that runs the child
process of workbench.exercises.run, so a runaway exercise never blocks the
screen, a save elsewhere is never dropped, and x cancels. The list shows each
exercise's state, queued and checking included.
"""

from __future__ import annotations

import ast
from pathlib import Path

from rich.console import Group
from rich.padding import Padding
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.exercises.catalog import BUILD_A_GPT, EXERCISES, Exercise, by_track, unsolved
from workbench.exercises.run import RunReport, run_exercise
from workbench.exercises.sandbox import LIMITS_TEXT
from workbench.exercises.workspace import (
    ensure_workspace,
    exercise_file,
    reset_exercise,
)
from workbench.progress import ExerciseState, ProgressStore
from workbench.widgets.profile_panel import ProfilePanel

MARK = {"solved": "✓", "attempted": "✗", "new": "·", "queued": "…", "checking": "⟳"}
POLL_SECONDS = 0.5


def task_text(path: Path) -> str:
    """The module docstring of an exercise file (the task), or a note when it does not parse."""
    try:
        return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "(no docstring)"
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return f"(the file does not parse yet: {exc})"


def task_renderable(text: str) -> Group:
    """The task as paragraphs and indented formulas.

    A docstring is hard-wrapped near 72 columns; the pane is narrower, so each
    paragraph is joined and wrapped afresh (no ragged half lines), and an
    indented line wraps under its own indent, never at column 0, so a formula
    too long for the pane still reads as one formula.
    """
    parts: list[Text | Padding] = []
    paragraph: list[str] = []

    def close_paragraph() -> None:
        if paragraph:
            parts.append(Text(" ".join(paragraph)))
            paragraph.clear()

    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip():
            close_paragraph()
            parts.append(Text(""))
        elif indent:
            close_paragraph()
            parts.append(Padding(Text(line.strip(), overflow="fold"), (0, 0, 0, indent)))
        else:
            paragraph.append(line.strip())
    close_paragraph()
    return Group(*parts)


def list_entry(mark: str, title: str) -> Table:
    """One exercise in the list: its mark, then its title, which wraps under itself (not under the mark, where
    a wrapped word would read as a track's heading)."""
    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(f" {mark}", title)
    return grid


class ExercisesScreen(Screen):
    BINDING_GROUP_TITLE = "Exercises"
    # The footer holds what a learner needs at 80 columns; reset and cancel are in the help screen (?) and said
    # where they apply ("x cancels" beside a running check).
    BINDINGS = [
        Binding("r", "check", "Check"),
        Binding("h", "hint", "Hint"),
        Binding("s", "reference", "Reference"),
        Binding("ctrl+r", "reset", "Reset file to the starter", show=False),
        Binding("x", "cancel", "Cancel the checks", show=False),
        Binding("escape", "dismiss", "Back"),
    ]
    DEFAULT_CSS = """
    ExercisesScreen OptionList { width: 32; height: 1fr; }
    ExercisesScreen #detail { width: 1fr; height: 1fr; padding: 0 1; }
    ExercisesScreen .part { width: 1fr; height: auto; margin: 0 0 1 0; }
    """

    def __init__(self, store: ProgressStore, workspace: Path, selected: str | None = None,
                 timeout: float = 30.0) -> None:
        super().__init__()
        self.store = store
        self.workspace = workspace
        self.timeout = timeout
        self.selected: Exercise = EXERCISES.get(selected or "", next(iter(EXERCISES.values())))
        self.reports: dict[str, RunReport] = {}
        self.showing_reference = False
        self.queue: list[str] = []
        """Exercises waiting to be checked, in order; the one being checked is not in it."""
        self.current: str | None = None
        """The exercise being checked now."""
        self._mtimes: dict[str, float] = {}
        self._worker: Worker | None = None
        self._checks: dict[Worker, str] = {}
        """The exercise each check worker is checking, until its end is handled (its result is never dropped)."""
        self.created: list[Path] = []
        self.workspace_problem: str | None = None
        try:
            self.created = ensure_workspace(workspace)
        except OSError as exc:
            self.workspace_problem = f"Can't prepare the workspace {workspace}: {exc.strerror or exc}"

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield OptionList(*self._options(), id="exercises")
            with VerticalScroll(id="detail"):
                for part in ("heading", "task", "result", "hints"):
                    yield Static(id=part, classes="part")
                yield ProfilePanel(narrow=True, id="race", classes="part")
                yield Static(self._sandbox_text(), id="sandbox", classes="part")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"exercises in {self.workspace}"
        options = self.query_one(OptionList)
        options.highlighted = self._index_of(self.selected.id)
        options.focus()
        self._mtimes = self._read_mtimes()
        self.set_interval(POLL_SECONDS, self._poll)
        if self.created:
            self.notify(f"Copied {len(self.created)} starter files into {self.workspace}", title="Exercises",
                        markup=False)
        if self.workspace_problem:
            self.notify(self.workspace_problem, title="Exercises", severity="error", timeout=30, markup=False)
        self.show()

    # ---- the list ---------------------------------------------------------------

    def _options(self) -> list[Option]:
        options: list[Option] = []
        for track, exercises in by_track():
            options.append(Option(Text(track, style="bold"), disabled=True))
            for exercise in exercises:
                options.append(Option(list_entry(MARK[self.status_of(exercise.id)], exercise.title), id=exercise.id))
        return options

    def status_of(self, exercise_id: str) -> str:
        """checking, queued, or the stored status (new, attempted, solved)."""
        if exercise_id == self.current and self.checking:
            return "checking"
        if exercise_id in self.queue:
            return "queued"
        return self.store.exercise_state(exercise_id).status

    def _index_of(self, exercise_id: str) -> int:
        return self.query_one(OptionList).get_option_index(exercise_id)

    def _refresh_list(self) -> None:
        """New marks in place. Clearing and re-adding the options measured them while the emptied list had no
        scrollbar, so a title that wraps only beside the scrollbar kept one line and lost its second."""
        options = self.query_one(OptionList)
        for exercise in (exercise for _, exercises in by_track() for exercise in exercises):
            options.replace_option_prompt(exercise.id, list_entry(MARK[self.status_of(exercise.id)], exercise.title))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.selected.id:
            self.selected = EXERCISES[event.option.id]
            self.showing_reference = False
            self.show()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_check()

    # ---- the detail -------------------------------------------------------------

    @staticmethod
    def _sandbox_text() -> Text:
        """What the sandbox isolates and what it does not, in plain words, under every exercise."""
        text = Text()
        text.append("How your code is checked\n", style="bold")
        text.append(LIMITS_TEXT.split("\n\n", 1)[0] + "\n\n")
        text.append(LIMITS_TEXT.split("\n\n", 1)[1], style="dim")
        return text

    @property
    def path(self) -> Path:
        return exercise_file(self.workspace, self.selected)

    def state(self) -> ExerciseState:
        return self.store.exercise_state(self.selected.id)

    def show(self) -> None:
        exercise, state = self.selected, self.state()
        heading = Text()
        heading.append(f"{exercise.title}", style="bold")
        status = self.status_of(exercise.id)
        saves = "1 checked save" if state.attempts == 1 else f"{state.attempts} checked saves"
        heading.append(f"  {MARK[status]} {status} · {saves}\n", style="dim")
        heading.append(f"edit: {self.path}\n", style="dim")
        heading.append("Save the file to check it; r checks now; ? lists every key.", style="dim")
        self.query_one("#heading", Static).update(heading)
        if self.showing_reference:
            # Wrapped, with line numbers, so a line too long for the pane continues beside an empty gutter
            # instead of being cut or reading as a new line.
            self.query_one("#task", Static).update(
                Syntax(exercise.solution.read_text(encoding="utf-8"), "python", theme="ansi_dark", line_numbers=True,
                       word_wrap=True))
        else:
            self.query_one("#task", Static).update(
                task_renderable(task_text(self.path if self.path.exists() else exercise.starter)))
        self._show_report(self.reports.get(exercise.id))
        hints = exercise.hints[: state.hints]
        hint_text = Text()
        if hints:
            for k, hint in enumerate(hints, start=1):
                hint_text.append(f"Hint {k}: ", style="bold")
                hint_text.append(hint + "\n")
        left = len(exercise.hints) - len(hints)
        hint_text.append(f"{left} more hint{'s' if left != 1 else ''} (h)" if left else "No more hints.", style="dim")
        self.query_one("#hints", Static).update(hint_text)

    def _show_report(self, report: RunReport | None) -> None:
        result, race = self.query_one("#result", Static), self.query_one("#race", ProfilePanel)
        status = self.status_of(self.selected.id)
        if status == "checking":
            result.update(Text(f"Checking {self.path.name}… (x cancels)", style="bold"))
            race.update("")
            return
        if status == "queued":
            ahead = self.queue.index(self.selected.id) + (1 if self.current else 0)
            result.update(Text(f"Saved; queued to be checked after {ahead} other{'s' if ahead != 1 else ''} "
                               "(x cancels them all).", style="bold"))
            race.update("")
            return
        if report is None:
            result.update(Text("Not checked in this session yet.", style="dim"))
            race.update("")
            return
        out = Text()
        if report.error:
            out.append("Could not finish: ", style="bold")
            out.append(report.error + "\n")
        passed = sum(c.passed for c in report.checks)
        if report.checks:
            out.append(f"{passed} of {len(report.checks)} checks pass\n", style="bold")
        for check in report.checks:
            out.append(f" {'✓' if check.passed else '✗'} {check.name}\n")
        failure = report.first_failure
        if failure:
            out.append("\nFirst mismatch, in ", style="bold")
            out.append(f"{failure.name}: ", style="bold")
            out.append(failure.detail + "\n")
        if report.traced_to:
            out.append("\nWhere it may come from: ", style="bold")
            out.append(report.traced_to + "\n")
        if report.output:
            out.append("\nYour code printed:\n", style="bold")
            out.append(report.output[-600:])
        result.update(out)
        if not report.race:
            race.update("")
            return
        race.show(report.race, ("yours",), report.race_note)

    # ---- watching and checking ----------------------------------------------------

    def _read_mtimes(self) -> dict[str, float]:
        times = {}
        for exercise in EXERCISES.values():
            try:
                times[exercise.id] = exercise_file(self.workspace, exercise).stat().st_mtime
            except OSError:
                times[exercise.id] = 0.0
        return times

    def _poll(self) -> None:
        now = self._read_mtimes()
        changed = [eid for eid, t in now.items() if t != self._mtimes.get(eid)]
        self._mtimes = now
        if not changed:
            return
        if self.selected.id not in changed:  # the view follows a save made elsewhere
            self.query_one(OptionList).highlighted = self._index_of(changed[0])
            self.selected = EXERCISES[changed[0]]
            self.showing_reference = False
        for exercise_id in changed:
            self._enqueue(exercise_id)
        self._check_next()

    @property
    def checking(self) -> bool:
        """A check runs, or has ended but its result is not handled yet (the worker's state flips first)."""
        return self.current is not None

    def _enqueue(self, exercise_id: str, first: bool = False) -> None:
        """Queue an exercise for checking; a check of it already running is stale and is cancelled."""
        if exercise_id == self.current and self.checking and self._worker is not None:
            self._worker.cancel()
            first = True
        if exercise_id in self.queue:
            if not first:
                return
            self.queue.remove(exercise_id)
        if first:
            self.queue.insert(0, exercise_id)
        else:
            self.queue.append(exercise_id)

    def action_check(self) -> None:
        if not self.path.exists():
            self.notify(f"{self.path} is missing; ctrl+r restores the starter.", severity="warning")
            return
        self._enqueue(self.selected.id, first=True)
        self._check_next()

    def _check_next(self) -> None:
        """Start the next queued check unless one is running; show every state that changed."""
        while self.queue and not self.checking:
            exercise = EXERCISES[self.queue.pop(0)]
            path, timeout = exercise_file(self.workspace, exercise), self.timeout
            if not path.exists():
                self.reports[exercise.id] = RunReport(exercise.id, error=f"{path} is missing; ctrl+r restores the starter")
                continue

            def work(exercise: Exercise = exercise, path: Path = path, timeout: float = timeout) -> RunReport:
                worker = get_current_worker()
                return run_exercise(exercise.id, path, timeout=timeout, should_stop=lambda: worker.is_cancelled)

            self.current = exercise.id
            self._worker = self.run_worker(work, thread=True, group="exercise-check", exit_on_error=False,
                                           description=f"check {exercise.id}")
            self._checks[self._worker] = exercise.id
        self._refresh_list()
        self.show()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker not in self._checks or event.state in (WorkerState.PENDING, WorkerState.RUNNING):
            return
        exercise_id = self._checks.pop(event.worker)
        if event.worker is self._worker:
            self.current = None
        if event.state == WorkerState.SUCCESS:
            report: RunReport = event.worker.result
        elif event.state == WorkerState.ERROR:
            report = RunReport(exercise_id, error=f"the check itself failed: {event.worker.error}")
        else:
            report = RunReport(exercise_id, error="cancelled")
        self.reports[report.exercise_id] = report
        if report.error != "cancelled" and event.state == WorkerState.SUCCESS:
            state = self.store.record_exercise_run(report.exercise_id, report.passed)
            if report.passed and state.passes == 1:
                self.notify("Solved! s shows the reference solution.", title=EXERCISES[report.exercise_id].title)
                if report.exercise_id in BUILD_A_GPT and not unsolved(
                        lambda eid: self.store.exercise_state(eid).solved_at is not None):
                    self.notify("Every step passes: the lesson \"Train your GPT\" (or `workbench exercises train`) "
                                "trains your model on the plays.", title="Build a GPT", timeout=20, markup=False)
        self._check_next()

    def action_cancel(self) -> None:
        if not self.checking and not self.queue:
            self.notify("Nothing is being checked.")
            return
        dropped, self.queue = len(self.queue), []
        if self.checking and self._worker is not None:
            self._worker.cancel()
        if dropped:
            self.notify(f"Cancelled; {dropped} queued check{'s' if dropped != 1 else ''} dropped.")
        self._refresh_list()
        self.show()

    def action_hint(self) -> None:
        shown = self.store.reveal_hint(self.selected.id, len(self.selected.hints))
        if shown == len(self.selected.hints):
            self.notify("That was the last hint.")
        self.show()

    def action_reference(self) -> None:
        if self.state().solved_at is None:
            self.notify("The reference unlocks once your version passes every check.", severity="warning")
            return
        self.showing_reference = not self.showing_reference
        self.show()

    def action_reset(self) -> None:
        try:
            backup = reset_exercise(self.workspace, self.selected)
        except OSError as exc:
            self.notify(f"Can't restore the starter of {self.path.name}: {exc.strerror or exc}", title="Reset",
                        severity="error", markup=False)
            return
        self._mtimes = self._read_mtimes()
        self.reports.pop(self.selected.id, None)
        kept = f"; your version is kept as {backup.name}" if backup else ""
        self.notify(f"Restored the starter of {self.path.name}{kept}.", title="Reset")
        self.show()
