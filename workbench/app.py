"""The Textual app: routes between catalog, lessons, labs and help."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.abc import Traversable
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from workbench.commands import LessonsAndLabs
from workbench.curriculum import Curriculum, load_curriculum
from workbench.labs.registry import LABS
from workbench.logs import start_logging
from workbench.messages import ExerciseChosen, LabChosen, LessonChosen, ProgressNoticed
from workbench.paths import data_dir, progress_db_path
from workbench.progress import ProgressStore
from workbench.themes import THEME_256, theme_for


class LeavingExecutor(ThreadPoolExecutor):
    """The event loop's default executor, where Textual runs thread workers (every lab run), whose shutdown
    does not wait for them.

    A lab still inside a C kernel can't be interrupted; asyncio would join its
    thread before ``App.run`` returns, so quitting would wait for the run.
    ``workbench.cli.run_app`` then leaves without joining it either.
    """

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


class WorkbenchApp(App[None]):
    """workbench: pick a lesson, step through it, run its labs, answer its quizzes."""

    TITLE = "workbench"
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    COMMANDS = App.COMMANDS | {LessonsAndLabs}
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+s", "export_svg", "Save SVG", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        open_lesson: str | None = None,
        lessons_root: Traversable | None = None,
        store_path: Path | None = None,
        open_exercises: bool = False,
        exercise_workspace: Path | None = None,
        replay: dict | None = None,
    ) -> None:
        super().__init__()
        self.register_theme(THEME_256)
        self.theme = theme_for(os.environ)
        start_logging()
        self.curriculum: Curriculum = load_curriculum(lessons_root)
        self.store = ProgressStore.open(store_path or progress_db_path())
        self._first_lesson = open_lesson
        self._open_exercises = open_exercises
        self._exercise_workspace = exercise_workspace
        self._replay = replay
        self.unsaved: str | None = None
        """What the progress store could not save, said once the app has closed (``workbench.cli.run_app``)."""

    def on_mount(self) -> None:
        from workbench.screens.catalog import CatalogScreen

        asyncio.get_running_loop().set_default_executor(LeavingExecutor(thread_name_prefix="workbench-worker"))
        self.push_screen(CatalogScreen(self.curriculum, self.store))
        if self.store.notice:
            self.notify(self.store.notice, title="Progress", severity="warning", timeout=15, markup=False)
        self.store.listen(lambda text: self.post_message(ProgressNoticed(text)))
        if self._first_lesson:
            self.open_lesson(self._first_lesson)
        elif self._open_exercises:
            self.open_exercises(workspace=self._exercise_workspace)
        elif self._replay is not None:
            from workbench.screens.runs import ReplayScreen

            self.push_screen(ReplayScreen(self._replay))

    def on_unmount(self) -> None:
        self.store.listen(None)
        self.unsaved = self.store.close()

    def on_progress_noticed(self, message: ProgressNoticed) -> None:
        self.notify(message.text, title="Progress", severity="warning", timeout=15, markup=False)

    def on_lesson_chosen(self, message: LessonChosen) -> None:
        self.open_lesson(message.lesson_id)

    def on_lab_chosen(self, message: LabChosen) -> None:
        self.open_lab(message.lab_id)

    def on_exercise_chosen(self, message: ExerciseChosen) -> None:
        self.open_exercises(message.exercise_id)

    def open_lesson(self, lesson_id: str) -> None:
        """Open lesson_id at the step where the learner left it."""
        from workbench.screens.lesson import LessonScreen

        lesson = self.curriculum.lesson(lesson_id)
        if lesson is None:
            self.notify(f"No lesson with id {lesson_id!r}.", severity="error", markup=False)
        elif lesson.broken:
            self.notify(str(lesson.issues[0]), title="This lesson is broken", severity="error", markup=False)
        else:
            self._back_to_catalog()
            self.push_screen(LessonScreen(lesson, self.store))

    def _back_to_catalog(self) -> None:
        """Close the screens above the catalog (a lesson, a lab, the exercises).

        A lesson's footer promises "esc Catalog": one opened from the palette
        inside another lesson must not return to that lesson instead.
        """
        from workbench.screens.catalog import CatalogScreen

        if not any(isinstance(screen, CatalogScreen) for screen in self.screen_stack):
            return
        while not isinstance(self.screen, CatalogScreen):
            self.pop_screen()

    def open_lab(self, lab_id: str, params: dict | None = None) -> None:
        """Open lab_id on its own screen, with params (validated) over its defaults."""
        from workbench.screens.lab import LabScreen

        spec = LABS[lab_id]
        self.push_screen(LabScreen(spec, spec.validate(params or {})))

    def open_exercises(self, exercise_id: str | None = None, workspace: Path | None = None) -> None:
        """The exercise view, on exercise_id if given, in the remembered (or given) workspace."""
        from workbench.exercises.workspace import workspace_path
        from workbench.screens.exercises import ExercisesScreen

        self.push_screen(ExercisesScreen(self.store, workspace_path(self.store, workspace), exercise_id))

    def action_help(self) -> None:
        from workbench.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def open_runs(self, lab_id: str | None = None) -> None:
        """The recorded runs (lab_id's only, when given), newest first."""
        from workbench.screens.runs import RunsScreen

        self.push_screen(RunsScreen(lab_id))

    def export_record(self, record: dict) -> list[Path]:
        """Write a run's record as Markdown, JSON and CSV in DATA_DIR/exports, and say where (or why not)."""
        from workbench.run_export import export

        folder = data_dir() / "exports"
        try:
            paths = export(record, folder)
        except (OSError, ValueError, TypeError) as exc:  # a disk that refuses, or a record that is not JSON
            self.notify(f"Can't export to {folder}: {getattr(exc, 'strerror', None) or exc}", title="Export",
                        severity="error", markup=False)
            return []
        names = ", ".join(p.suffix for p in paths)
        self.notify(f"Saved {folder / record['id']} ({names})", title="Export", markup=False)
        return paths

    def action_export_svg(self) -> None:
        folder = data_dir() / "screenshots"
        name = time.strftime("workbench-%Y%m%d-%H%M%S.svg")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = self.save_screenshot(filename=name, path=str(folder))
        except OSError as exc:
            self.notify(f"Can't save a screenshot in {folder}: {exc.strerror or exc}", title="Screenshot",
                        severity="error", markup=False)
            return
        self.notify(f"Saved {path}", title="Screenshot", markup=False)
