"""A lab on its own, opened from the command palette with its default parameters."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from workbench.labs.registry import LabSpec


class LabScreen(Screen):
    BINDINGS = [
        Binding("escape", "dismiss", "Back"),
        # As on a lesson screen: q and the palette's ^p stay out of the footer (help lists both), so a lab's own
        # keys and its cancel key fit at 80 columns.
        Binding("q", "app.quit", "Quit", show=False),
    ]
    DEFAULT_CSS = """
    LabScreen VerticalScroll { padding: 0 1; }
    """

    def __init__(self, spec: LabSpec, params: dict) -> None:
        super().__init__()
        self.spec = spec
        self.params = params
        """The lab's validated parameters (its defaults when opened from the palette)."""

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static(self.spec.summary)
            yield self.spec.widget_class()(self.spec, self.params)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = f"lab {self.spec.id}"
        self.query_one("Lab").focus()
