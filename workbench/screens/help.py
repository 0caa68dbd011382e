"""Help: every key of every screen and widget, read from their bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


def _keys(owner: type) -> list[tuple[str, str]]:
    rows = []
    for binding in getattr(owner, "BINDINGS", []):
        if isinstance(binding, tuple):
            binding = Binding(*binding)
        keys = ", ".join(k.strip() for k in binding.key.split(","))
        rows.append((keys, binding.description or binding.action))
    return rows


class HelpScreen(ModalScreen[None]):
    """A scrollable table of keys; Escape or ? closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen VerticalScroll { width: 76; max-width: 100%; height: 90%; border: round $accent; background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        from workbench.app import WorkbenchApp
        from workbench.labs.base import Lab
        from workbench.labs.softmax_labs import StabilityLab, TemperatureLab
        from workbench.screens.catalog import CatalogScreen
        from workbench.screens.lesson import LessonScreen
        from workbench.widgets.question import ChoiceList

        sections = [
            ("Everywhere", WorkbenchApp),
            ("Catalog", CatalogScreen),
            ("Lesson", LessonScreen),
            ("Quiz question", ChoiceList),
            ("Any lab", Lab),
            ("Temperature lab", TemperatureLab),
            ("Stability lab", StabilityLab),
        ]
        extra = {
            "Everywhere": [("tab, shift+tab", "move between the text, quizzes and labs")],
            "Quiz question": [("up, down", "move between choices"), ("enter", "answer (or submit a typed number)")],
        }
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action")
        for title, owner in sections:
            table.add_row(title, "", style="underline")
            for key, action in _keys(owner) + extra.get(title, []):
                table.add_row(f"  {key}", action)
        with VerticalScroll():
            yield Static(table)
        yield Footer()
