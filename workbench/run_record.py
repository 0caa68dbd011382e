"""A lab run kept as data: what ran (lab, parameters, seed, backend, machine), how long, and what the panel showed.

A record is a plain JSON object, written by :func:`snapshot` the moment a
run's result has been drawn. The panel is kept widget by widget, in screen
order: a figure as the data it was drawn from (so a replay draws the same
plot at any width, and CSV export has the numbers), a profile table as its
rows and its text, every other readout as its text, with colours (ANSI) and
without. Nothing in a record is code: replaying one never runs an engine, so
a run made on a GPU box can be read on a laptop.
"""

from __future__ import annotations

import os
import platform
import secrets
import sys
import time
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.text import Text
from textual.widgets import Input, Static

from workbench import __version__
from workbench.widgets.heat_grid import HeatGrid
from workbench.widgets.plots import Figure
from workbench.widgets.profile_panel import ProfilePanel

FORMAT, VERSION = "workbench-run", 1
"""What a record file says it is; a reader refuses any other."""

TEXT_WIDTH = 78
"""Columns a readout is rendered at when no lab width is known (an 80-column terminal less the lab's border)."""


def machine_summary() -> dict[str, Any]:
    """Where the run ran: processor and its vector units, cores, OS, Python, torch and CUDA where loaded."""
    from workbench_engines.profiling.bench import cpu_model

    summary: dict[str, Any] = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count(), "os": platform.platform(terse=True),
                               "python": platform.python_version(), "workbench": __version__}
    torch = sys.modules.get("torch")  # only what the run itself imported: recording must not load torch
    if torch is not None:
        summary["torch"] = torch.__version__
        if torch.cuda.is_available():
            summary["gpu"] = torch.cuda.get_device_name(0)
    return summary


def rendered(renderable: Any, width: int) -> tuple[str, str]:
    """(plain text, text with ANSI colours) of a Rich renderable at width columns."""
    console = Console(width=width, record=True, file=open(os.devnull, "w"), color_system="truecolor",
                      force_terminal=True, legacy_windows=False, highlight=False)
    console.print(Text(renderable) if isinstance(renderable, str) else renderable)
    console.file.close()
    return (console.export_text(styles=False, clear=False).rstrip("\n"),
            console.export_text(styles=True).rstrip("\n"))


def _text_part(widget: Static, role: str, width: int) -> dict[str, Any] | None:
    content = widget.content
    if content is None or content == "":
        return None
    plain, ansi = rendered(content, width)
    return {"kind": "text", "role": role, "plain": plain, "ansi": ansi} if plain.strip() else None


def panel_parts(lab, width: int = TEXT_WIDTH) -> list[dict[str, Any]]:
    """The lab's widgets that show results, in screen order, as data (see the module docstring)."""
    parts: list[dict[str, Any]] = []
    inside_figure = {id(w) for figure in lab.query(Figure) for w in figure.query("*")}
    for widget in lab.query("*"):
        if id(widget) in inside_figure or widget.has_class("lab-title") or widget.has_class("lab-status"):
            continue
        if isinstance(widget, Figure):
            if widget.drawn is not None:
                parts.append({"kind": "figure", **widget.drawn})
        elif isinstance(widget, ProfilePanel):
            part = _text_part(widget, "profile", width)
            if part is not None:
                parts.append({**part, "rows": [asdict(row) for row in widget.rows]})
        elif isinstance(widget, HeatGrid):
            part = _text_part(widget, "heat", width)
            if part is not None:
                values = getattr(widget, "values", None)
                parts.append({**part, "values": values.tolist() if values is not None else None})
        elif isinstance(widget, Input):
            if widget.value and widget.display:
                parts.append({"kind": "input", "placeholder": widget.placeholder, "value": widget.value})
        elif isinstance(widget, Static) and widget.display:
            part = _text_part(widget, "readout", width)
            if part is not None:
                parts.append(part)
    return parts


def jsonable(value: Any) -> Any:
    """value as plain JSON: numpy numbers and arrays as Python ones, NaN and infinities as None (a gap), tuples
    and sets as lists, anything else unknown as its text. A record must never fail to write for its types."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def backend_name(requested: str) -> str:
    """The backend "auto" (or the one asked for) resolves to now: what a lab's run went through."""
    from workbench_engines.backends import resolve
    from workbench_engines.errors import EngineError

    try:
        return resolve(requested).name
    except (EngineError, ValueError):
        return requested


def run_id(lab_id: str, when: float) -> str:
    """A sortable, unique name: local time, the lab, four random hex digits."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}-{lab_id}-{secrets.token_hex(2)}"


def snapshot(lab, what: str, started: float, seconds: float, status: str = "") -> dict[str, Any]:
    """The record of the run that just finished in lab (its result already drawn).

    Args:
        lab: The Lab widget.
        what: The run's description (what its progress line said).
        started: time.time() when it started.
        seconds: How long it took, wall clock.
        status: The lab's status line after the run.
    """
    params = lab.params
    width = max(40, (lab.content_region.width or TEXT_WIDTH + 2) - 2)
    return jsonable({
        "format": FORMAT, "version": VERSION, "id": run_id(lab.spec.id, started),
        "lab": lab.spec.id, "title": lab.spec.title, "what": what,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)), "seconds": round(seconds, 3),
        "params": params, "seed": params.get("seed"),
        # Only a lab with a backend knob says which ran; the others run torch or NumPy whatever is built.
        "backend": backend_name(str(params["backend"])) if "backend" in params else None,
        "machine": machine_summary(), "status": status, "panel": panel_parts(lab, width),
    })
