"""The exercise view: pick an exercise, edit its file anywhere, and see it checked on every save.

A timer polls the workspace files' modification times (no extra dependency,
works over SSH and on network file systems); a changed file is checked in a
worker that runs the child process of workbench.exercises.run, so a runaway
exercise never blocks the screen, and x cancels it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.exercises.catalog import EXERCISES, Exercise, by_track
from workbench.exercises.run import RunReport, run_exercise
from workbench.exercises.sandbox import LIMITS_TEXT
from workbench.exercises.workspace import ensure_workspace, exercise_file, reset_exercise
from workbench.progress import ExerciseState, ProgressStore
from workbench.widgets.profile_panel import ProfilePanel

MARK = {"solved": "✓", "attempted": "✗", "new": "·"}
POLL_SECONDS = 0.5


def task_text(path: Path) -> str:
    """The module docstring of an exercise file (the task), or a note when it does not parse."""
    try:
        return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "(no docstring)"
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return f"(the file does not parse yet: {exc})"


class ExercisesScreen(Screen):
    BINDINGS = [
        Binding("r", "check", "Check now"),
        Binding("h", "hint", "Hint"),
        Binding("s", "reference", "Reference"),
        Binding("ctrl+r", "reset", "Reset file"),
        Binding("x", "cancel", "Cancel check"),
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
        self._mtimes: dict[str, float] = {}
        self._worker: Worker | None = None
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
                yield ProfilePanel(id="race", classes="part")
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
                mark = MARK[self.store.exercise_state(exercise.id).status]
                options.append(Option(f" {mark} {exercise.title}", id=exercise.id))
        return options

    def _index_of(self, exercise_id: str) -> int:
        return self.query_one(OptionList).get_option_index(exercise_id)

    def _refresh_list(self) -> None:
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options(self._options())
        options.highlighted = highlighted

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
        heading.append(f"  {MARK[state.status]} {state.status} · {state.attempts} checked saves\n", style="dim")
        heading.append(f"edit: {self.path}\n", style="dim")
        heading.append("Save the file to check it; r (or enter) checks now.", style="dim")
        self.query_one("#heading", Static).update(heading)
        if self.showing_reference:
            self.query_one("#task", Static).update(
                Syntax(exercise.solution.read_text(encoding="utf-8"), "python", theme="ansi_dark", line_numbers=False))
        else:
            self.query_one("#task", Static).update(task_text(self.path if self.path.exists() else exercise.starter))
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
        target = self.selected.id if self.selected.id in changed else changed[0]
        if target != self.selected.id:
            self.query_one(OptionList).highlighted = self._index_of(target)
            self.selected = EXERCISES[target]
        self.action_check()

    @property
    def checking(self) -> bool:
        return self._worker is not None and self._worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def action_check(self) -> None:
        exercise, path, timeout = self.selected, self.path, self.timeout
        if not path.exists():
            self.notify(f"{path} is missing; ctrl+r restores the starter.", severity="warning")
            return
        self.query_one("#result", Static).update(Text(f"Checking {path.name}… (x cancels)", style="bold"))
        self.query_one("#race", ProfilePanel).update("")

        def work() -> RunReport:
            worker = get_current_worker()
            return run_exercise(exercise.id, path, timeout=timeout, should_stop=lambda: worker.is_cancelled)

        self._worker = self.run_worker(work, thread=True, exclusive=True, group="exercise-check",
                                       description=f"check {exercise.id}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker or event.state != WorkerState.SUCCESS:
            return
        report: RunReport = event.worker.result
        self.reports[report.exercise_id] = report
        if report.error != "cancelled":
            state = self.store.record_exercise_run(report.exercise_id, report.passed)
            if report.passed and state.passes == 1:
                self.notify("Solved! s shows the reference solution.", title=EXERCISES[report.exercise_id].title)
        self._refresh_list()
        if report.exercise_id == self.selected.id:
            self.show()

    def action_cancel(self) -> None:
        if self.checking and self._worker is not None:
            self._worker.cancel()
        else:
            self.notify("Nothing is being checked.")

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
