"""A lesson's link to an exercise: what to write, its status, and enter to open it."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from workbench.exercises.catalog import EXERCISES
from workbench.messages import ExerciseChosen
from workbench.progress import ProgressStore


class ExerciseCard(Static, can_focus=True):
    BINDINGS = [Binding("enter", "open", "Open exercise")]
    DEFAULT_CSS = """
    ExerciseCard { border: round $secondary; padding: 0 1; margin: 1 0; height: auto; }
    ExerciseCard:focus { border: round $accent; }
    """

    def __init__(self, exercise_id: str, store: ProgressStore) -> None:
        self.exercise = EXERCISES[exercise_id]
        status = store.exercise_state(exercise_id).status
        text = Text()
        text.append(f"Exercise · {self.exercise.title}", style="bold")
        text.append(f"  ({status})\n", style="dim")
        text.append(f"Write {self.exercise.function}() yourself in {self.exercise.file_name}; "
                    "the workbench checks it on every save, in a separate sandboxed process, and races it against "
                    "the reference. Enter opens it.")
        super().__init__(text)

    def action_open(self) -> None:
        self.post_message(ExerciseChosen(self.exercise.id))
