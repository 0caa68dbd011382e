"""A lesson's link to an exercise: what to write, its status, and enter to open it.

The status is read from the progress store whenever the card's screen comes
back to the front, so a card never says "new" about an exercise the learner
has just solved in the exercise view.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from workbench.exercises.catalog import EXERCISES
from workbench.messages import ExerciseChosen
from workbench.progress import ProgressStore

MARK = {"solved": "✓", "attempted": "✗", "new": "·"}


class ExerciseCard(Static, can_focus=True):
    BINDINGS = [Binding("enter", "open", "Open exercise")]
    # The focused card's border changes shape, not only colour, so focus shows under NO_COLOR too.
    DEFAULT_CSS = """
    ExerciseCard { border: round $secondary; padding: 0 1; margin: 1 0; height: auto; }
    ExerciseCard:focus { border: heavy $accent; }
    """

    def __init__(self, exercise_id: str, store: ProgressStore) -> None:
        self.exercise = EXERCISES[exercise_id]
        self.store = store
        super().__init__(self.card_text())

    @property
    def status(self) -> str:
        """new, attempted or solved, as the progress store has it now."""
        return self.store.exercise_state(self.exercise.id).status

    def card_text(self) -> Text:
        text = Text()
        text.append(f"Exercise · {self.exercise.title}", style="bold")
        status = self.status
        text.append(f"  {MARK.get(status, '·')} {status}\n", style="dim")
        text.append(f"Write {self.exercise.function}() yourself in {self.exercise.file_name}; "
                    "the workbench checks it on every save, in a separate sandboxed process, and races it against "
                    "the reference. Enter opens it.")
        return text

    def on_mount(self) -> None:
        self.app.screen_change_signal.subscribe(self, self._screen_changed)

    def _screen_changed(self, screen: Screen) -> None:
        if screen is self.screen:
            self.update(self.card_text())

    def action_open(self) -> None:
        self.post_message(ExerciseChosen(self.exercise.id))
