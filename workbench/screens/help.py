"""Help: every key the screen beneath answers to, read from its live bindings (as Textual's key panel does).

First the keys that work right now (the focused widget and everything
around it up to the app), then, for each lab on the screen that is not
focused, the keys it adds once Tab reaches it. Keys are shown as Textual
displays them (``?``, ``ctrl+s``), never as binding names, each under its
tooltip where it has one: the footer's short label ("n/p Step±") stands for
several keys that help spells out. Keys a footer leaves out to fit 80
columns (q, the command palette) are listed here too.
"""

from __future__ import annotations

from dataclasses import replace

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from workbench.labs.base import Lab


def _owner_title(node: DOMNode) -> str:
    """A heading for the node whose bindings follow: its binding group title, a lab's title, or its kind."""
    title = getattr(node, "BINDING_GROUP_TITLE", None)
    if title:
        return title
    spec = getattr(node, "spec", None)
    if spec is not None and hasattr(spec, "title"):
        return f"Lab: {spec.title}"
    return {"WorkbenchApp": "Everywhere"}.get(type(node).__name__, type(node).__name__)


def _what(binding: Binding) -> str:
    """What a key does, in help's words: its tooltip, else its footer label, else its action."""
    return binding.tooltip or binding.description or binding.action


class HelpScreen(ModalScreen[None]):
    """A scrollable table of the keys of the screen beneath; Escape or ? closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen VerticalScroll { width: 76; max-width: 100%; height: 90%; border: round $accent; background: $surface; padding: 0 1; }
    """

    def __init__(self, beneath: Screen) -> None:
        super().__init__()
        self.beneath = beneath
        """The screen whose keys are listed."""

    def rows(self) -> list[tuple[str, str, str]]:
        """(section, keys, what they do) for every binding the screen beneath has, live ones first."""
        def display(binding: Binding) -> str:
            # The key itself, not a footer's key_display: "n/p" there stands for two rows here.
            return self.app.get_key_display(replace(binding, key_display=None))

        rows: list[tuple[str, str, str]] = []
        by_action: dict[tuple[int, str], int] = {}
        for node, binding, enabled, _ in self.beneath.active_bindings.values():
            if binding.system:
                continue
            key = (id(node), binding.action)
            if key in by_action:  # another key for the same action: one row, keys joined
                section, keys, what = rows[by_action[key]]
                rows[by_action[key]] = (section, f"{keys}  {display(binding)}", what)
                continue
            what = _what(binding)
            by_action[key] = len(rows)
            rows.append((_owner_title(node), display(binding), what if enabled else f"{what} (not now)"))
        focused = self.beneath.focused
        live = {id(node) for node in (focused.ancestors_with_self if focused is not None else [])}
        for lab in self.beneath.query(Lab):
            if id(lab) in live:
                continue
            for binding in lab.BINDINGS:
                binding = binding if isinstance(binding, Binding) else Binding(*binding)
                keys = "  ".join(display(Binding(key.strip(), binding.action)) for key in binding.key.split(","))
                rows.append((f"{_owner_title(lab)} (Tab to it)", keys, _what(binding)))
        return rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action")
        section = None
        for title, keys, what in self.rows():
            if title != section:
                table.add_row(Text(title, style="underline"), "")
                section = title
            table.add_row(f"  {keys}", what)
        table.add_row(Text("Everywhere", style="underline"), "")
        table.add_row("  tab  shift+tab", "move between the text, quizzes and labs")
        with VerticalScroll():
            yield Static(table)
        yield Footer()
