"""``workbench runs``: list, show, export and replay the lab runs the app recorded.

``show`` prints a run in the terminal (its heading, readouts, and figures
drawn from their data); ``replay`` opens it in the app, where ``o`` runs
the lab again live; ``export`` writes Markdown, JSON and CSV. A run file
copied from another machine is named by its path.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.run_export import FORMATS, export
from workbench.run_store import RunFileError, load, runs_dir, summaries
from workbench.screens.runs import heading
from workbench.widgets.plots import Series, floats_of, lines_text


def list_runs(lab: str | None) -> int:
    console = Console()
    rows, problems = summaries(lab=lab)
    for problem in problems:
        console.print(Text(f"skipped {problem}", style="yellow"))
    if not rows:
        console.print(f"No recorded runs{' of ' + lab if lab else ''} in {runs_dir(create=False)}.")
        return 0
    # The id starts with the date and time and holds the lab's id: whole on one line, to copy.
    table = Table(box=None, header_style="bold")
    table.add_column("id (date-time-lab-tag)", no_wrap=True)
    table.add_column("seconds", justify="right")
    table.add_column("what", overflow="fold")
    for r in rows:
        table.add_row(r.id, f"{r.seconds:.2f}", r.what)
    console.print(table)
    return 0


def show_run(run: str) -> int:
    console = Console()
    record = load(run)
    console.print(heading(record))
    width = min(console.width, 100)
    for part in record["panel"]:
        console.print()
        if part["kind"] == "figure" and part["plot"] == "lines":
            series = [Series(s["label"], floats_of(s["x"]), floats_of(s["y"]), bool(s.get("points")))
                      for s in part["series"]]
            console.print(lines_text(part["title"], series, width=width, xlabel=part.get("xlabel", "")))
        elif part["kind"] == "figure":
            groups = part["groups"] if part["plot"] == "grouped_bars" else {"": part["values"]}
            table = Table(title=part["title"], box=None, header_style="bold")
            table.add_column("")
            for name in groups:
                table.add_column(name, justify="right")
            for k, label in enumerate(part["labels"]):
                table.add_row(str(label), *(f"{values[k]:.4g}" for values in groups.values()))
            console.print(table)
        elif part["kind"] == "input":
            console.print(Text(f"input: {part['value']}"))
        else:
            console.print(Text.from_ansi(part["ansi"]) if console.color_system else Text(part["plain"]))
    if record.get("status"):
        console.print(Text(record["status"], style="dim"))
    return 0


def runs_command(args) -> int:
    try:
        if args.runs_command == "list":
            return list_runs(args.lab)
        if args.runs_command == "show":
            return show_run(args.run)
        if args.runs_command == "export":
            formats = FORMATS if args.format == "all" else (args.format,)
            for path in export(load(args.run), args.out or Path.cwd(), formats):
                print(path)
            return 0
        if args.runs_command == "replay":
            from workbench.app import WorkbenchApp
            from workbench.cli import run_app

            return run_app(WorkbenchApp(replay=load(args.run)))
    except RunFileError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.runs_command)
