"""A lab's panel (live or recorded) as files others can read: Markdown for notes, JSON for programs, CSV for plots.

- Markdown: the run's heading (lab, when, machine, backend, parameters),
  then each readout and table as a fenced text block and each figure as a
  table of its numbers (short series) or its first and last points.
- JSON: the record itself (see :mod:`workbench.run_record`).
- CSV: one row per plotted point, ``figure,series,x,y`` (bars: ``x`` is the
  bar's label), for a spreadsheet or pandas.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

FORMATS = ("md", "json", "csv")

MARKDOWN_POINTS = 40
"""A curve with more points than this is summarised in Markdown (the CSV has them all)."""


def figure_rows(part: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """(figure, series, x, y) for every point of a figure part."""
    title = part["title"]
    if part["plot"] == "lines":
        return [(title, s["label"], x, y) for s in part["series"] for x, y in zip(s["x"], s["y"])]
    if part["plot"] == "bars":
        return [(title, "", label, value) for label, value in zip(part["labels"], part["values"])]
    return [(title, group, label, value) for group, values in part["groups"].items()
            for label, value in zip(part["labels"], values)]


def to_csv(record: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["figure", "series", "x", "y"])
    for part in record["panel"]:
        if part["kind"] == "figure":
            writer.writerows(["" if v is None else v for v in row] for row in figure_rows(part))
    return out.getvalue()


def to_json(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def _figure_markdown(part: dict[str, Any]) -> list[str]:
    lines = [f"**{part['title']}**" + (f" ({part['hint']})" if part.get("hint") else ""), ""]
    if part["plot"] == "lines":
        for s in part["series"]:
            points = list(zip(s["x"], s["y"]))
            label = s["label"] or "curve"
            if len(points) > MARKDOWN_POINTS:
                finite = [y for _, y in points if y is not None]
                lines.append(f"- {label}: {len(points)} points, x from {_number(points[0][0])} to "
                             f"{_number(points[-1][0])}, y first {_number(points[0][1])}, last {_number(points[-1][1])}"
                             + (f", min {_number(min(finite))}, max {_number(max(finite))}" if finite else ""))
            else:
                lines.append(f"- {label}: " + ", ".join(f"({_number(x)}, {_number(y)})" for x, y in points))
        if part.get("xlabel"):
            lines.append(f"- x: {part['xlabel']}")
    else:
        groups = part["groups"] if part["plot"] == "grouped_bars" else {"value": part["values"]}
        lines.append("| " + " | ".join(["", *groups]) + " |")
        lines.append("|" + "---|" * (len(groups) + 1))
        for k, label in enumerate(part["labels"]):
            lines.append("| " + " | ".join([str(label), *(_number(v[k]) for v in groups.values())]) + " |")
    return lines + [""]


def to_markdown(record: dict[str, Any]) -> str:
    machine = record.get("machine", {})
    lines = [f"# {record['title']}", "",
             f"- lab: `{record['lab']}`, run `{record['id']}`",
             f"- started {record['started']}, {record['seconds']:.2f} s" + (f": {record['what']}" if record.get("what") else ""),
             f"- backend: {record.get('backend') or 'as the lab runs it'}"
             + (f", seed {record['seed']}" if record.get("seed") is not None else ""),
             "- machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
             "- parameters: " + ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in record["params"].items()),
             ""]
    for part in record["panel"]:
        if part["kind"] == "figure":
            lines += _figure_markdown(part)
        elif part["kind"] == "input":
            lines += [f"Input: `{part['value']}`", ""]
        else:
            lines += ["```text", part["plain"], "```", ""]
    if record.get("status"):
        lines += [f"_{record['status']}_", ""]
    return "\n".join(lines)


WRITERS = {"md": to_markdown, "json": to_json, "csv": to_csv}


def export(record: dict[str, Any], folder: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the record as ``<id>.<format>`` in folder for each format; a figure-less run gets no CSV."""
    texts = {fmt: WRITERS[fmt](record) for fmt in formats  # all made before any is written: none half-done
             if fmt != "csv" or any(part["kind"] == "figure" for part in record["panel"])}
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, text in texts.items():
        path = folder / f"{record['id']}.{fmt}"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
