"""Recorded runs in the app: a list of them (all, or one lab's), and a replay of one without its engines.

The replay draws the record's panel as the lab showed it: figures from their
data at this terminal's width, readouts and tables in their colours. ``o``
opens the live lab on the same parameters, to run it again here and compare.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from workbench.widgets.plots import Figure


def heading(record: dict[str, Any]) -> Text:
    """Who, when, where: the lines above a replayed panel."""
    machine = record.get("machine", {})
    out = Text()
    out.append(f"Replay of {record['title']}", style="bold")
    out.append(f"  (lab {record['lab']}, run {record['id']})\n", style="dim")
    out.append(f"{record['started']} · {record['seconds']:.2f} s")
    if record.get("backend"):
        out.append(f" · backend {record['backend']}")
    if record.get("seed") is not None:
        out.append(f" · seed {record['seed']}")
    out.append("\n" + " · ".join(str(machine[k]) for k in ("cpu", "gpu", "torch") if k in machine) + "\n", style="dim")
    params = ", ".join(f"{k}={v!r}" for k, v in record["params"].items())
    out.append(f"parameters: {params[:300]}" + ("…" if len(params) > 300 else ""), style="dim")
    return out


class ReplayScreen(Screen):
    """One recorded run, drawn from its record."""

    BINDINGS = [
        Binding("escape", "dismiss", "Back"),
        Binding("o", "open_live", "Run it live", tooltip="Open the lab on the recorded parameters and run it here"),
        Binding("ctrl+e", "export", "Export", tooltip="Write this run as Markdown, JSON and CSV files"),
        Binding("q", "app.quit", "Quit", show=False),
    ]
    DEFAULT_CSS = """
    ReplayScreen VerticalScroll { padding: 0 1; }
    ReplayScreen .replay-part { margin: 1 0 0 0; }
    ReplayScreen .replay-status { color: $text-muted; margin: 1 0 0 0; }
    """

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static(heading(self.record))
            for part in self.record["panel"]:
                if part["kind"] == "figure":
                    yield Figure(classes="replay-part")
                elif part["kind"] == "input":
                    yield Static(Text(f"input: {part['value']}"), classes="replay-part")
                else:
                    yield Static(Text.from_ansi(part["ansi"]) if not self.app.no_color else Text(part["plain"]),
                                 classes="replay-part")
            yield Static(Text(self.record.get("status") or ""), classes="replay-status")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = f"replay {self.record['id']}"
        self.call_after_refresh(self._draw_figures)

    def _draw_figures(self) -> None:
        parts = [part for part in self.record["panel"] if part["kind"] == "figure"]
        for figure, part in zip(self.query(Figure), parts):
            try:
                figure.redraw(part)
            except (KeyError, TypeError, ValueError) as exc:  # an edited or damaged record: say so, draw the rest
                figure.query_one(".figure-title", Static).update(Text(f"{part.get('title', 'figure')}: "
                                                                      f"can't draw it ({exc})"))

    def action_open_live(self) -> None:
        from workbench.labs.registry import LABS
        from workbench.params import ParamError

        spec = LABS.get(self.record["lab"])
        if spec is None:
            self.notify(f"This workbench has no lab {self.record['lab']}.", severity="error", markup=False)
            return
        try:
            self.app.open_lab(spec.id, self.record["params"])
        except ParamError as exc:
            self.notify(str(exc), severity="error", markup=False)

    def action_export(self) -> None:
        self.app.export_record(self.record)


class RunsScreen(Screen):
    """The recorded runs, newest first (one lab's when opened from it); Enter replays one."""

    BINDINGS = [
        Binding("escape", "dismiss", "Back"),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    def __init__(self, lab: str | None = None) -> None:
        super().__init__()
        self.lab = lab

    def compose(self) -> ComposeResult:
        from workbench.run_store import runs_dir, summaries

        rows, problems = summaries(lab=self.lab)
        yield Header()
        where = runs_dir(create=False)
        if rows:
            intro = f"{len(rows)} recorded run(s) in {where}. Enter replays one."
        else:
            intro = f"No recorded runs {'of this lab ' if self.lab else ''}yet in {where}: a lab records each run it finishes."
        if problems:
            intro += f" Skipped {len(problems)} unreadable file(s): {problems[0]}"
        yield Static(Text(intro))
        yield OptionList(*[Option(f"{r.started[:16].replace('T', ' ')}  {r.title}  ({r.seconds:.1f} s)  {r.what}",
                                  id=r.id) for r in rows])
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = f"runs of {self.lab}" if self.lab else "recorded runs"
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        from workbench.run_store import RunFileError, load

        try:
            record = load(event.option.id)
        except RunFileError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.app.push_screen(ReplayScreen(record))
