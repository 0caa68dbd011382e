"""Recorded lab runs on disk: one JSON file a run in DATA_DIR/runs, listed, read back and pruned.

Files are written whole and then renamed into place, so a crash or a full
disk leaves the old set intact rather than half a file; a file that cannot
be read back (truncated, edited, another program's) is reported by name and
skipped in a listing, never fatal. Only the newest :data:`KEEP` runs stay.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.paths import data_dir
from workbench.run_record import FORMAT, VERSION

KEEP = 300
"""Recorded runs kept; the oldest go first (a run is a few kB, a long curve a few hundred)."""


class RunFileError(Exception):
    """A run file is missing, unreadable or not a workbench run (the message names the file)."""


@dataclass(frozen=True)
class RunSummary:
    """One line of ``workbench runs list``."""

    id: str
    lab: str
    title: str
    started: str
    seconds: float
    what: str


def runs_dir(create: bool = True) -> Path:
    folder = data_dir(create) / "runs"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def save(record: dict[str, Any], folder: Path | None = None, keep: int = KEEP) -> Path:
    """Write record as ``<id>.json`` atomically, then drop all but the newest ``keep`` runs.

    Raises:
        OSError: the folder cannot be written (read-only, full); nothing is left half-written.
    """
    folder = folder or runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{record['id']}.json"
    fd, temp = tempfile.mkstemp(prefix=".run-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out, ensure_ascii=False, allow_nan=False)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    for old in sorted(folder.glob("*.json"))[:-keep]:
        old.unlink(missing_ok=True)
    return target


def read(path: Path) -> dict[str, Any]:
    """The record in path, checked to be a workbench run of a version this reader knows."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunFileError(f"{path}: no such run") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: unreadable ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise RunFileError(f"{path}: not a workbench run")
    if record.get("version") != VERSION:
        raise RunFileError(f"{path}: run format version {record.get('version')!r}; this workbench reads {VERSION}")
    missing = [key for key in ("id", "lab", "title", "started", "seconds", "params", "panel") if key not in record]
    if missing:
        raise RunFileError(f"{path}: a run without {', '.join(missing)}")
    if not isinstance(record["params"], dict) or not isinstance(record["seconds"], (int, float)):
        raise RunFileError(f"{path}: params must be an object and seconds a number")
    if not isinstance(record["panel"], list):
        raise RunFileError(f"{path}: panel must be a list")
    for k, part in enumerate(record["panel"]):
        problem = _part_problem(part)
        if problem:
            raise RunFileError(f"{path}: panel part {k}: {problem}")
    return record


def _numbers(values: Any, length: int | None = None) -> bool:
    """Whether values is a list of numbers or None (gaps), of the given length if one is given."""
    return (isinstance(values, list) and (length is None or len(values) == length)
            and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values))


def _part_problem(part: Any) -> str | None:
    """What is wrong with one recorded panel part, or None: replay and export read these fields unchecked."""
    if not isinstance(part, dict):
        return "not an object"
    kind = part.get("kind")
    if kind == "text":
        return None if isinstance(part.get("plain"), str) and isinstance(part.get("ansi"), str) else \
            "a text part needs plain and ansi strings"
    if kind == "input":
        return None if isinstance(part.get("value"), str) else "an input part needs a value string"
    if kind != "figure":
        return f"kind {kind!r} is not figure, text or input"
    if not isinstance(part.get("title"), str):
        return "a figure needs a title"
    plot = part.get("plot")
    if plot not in ("lines", "bars", "grouped_bars"):
        return f"plot {plot!r} is not lines, bars or grouped_bars"
    if plot == "lines":
        series = part.get("series")
        ok = isinstance(series, list) and all(
            isinstance(one, dict) and isinstance(one.get("label"), str) and _numbers(one.get("x"))
            and _numbers(one.get("y"), len(one["x"])) for one in series)
        return None if ok else "each series needs a label and x and y number lists of one length"
    labels = part.get("labels")
    if not isinstance(labels, list):
        return "a bar chart needs labels"
    if plot == "bars":
        return None if _numbers(part.get("values"), len(labels)) else "a bar chart needs a number per label"
    groups = part.get("groups")
    ok = isinstance(groups, dict) and all(_numbers(v, len(labels)) for v in groups.values())
    return None if ok else "each group needs a number per label"


def load(run: str, folder: Path | None = None) -> dict[str, Any]:
    """A run by id, by a unique prefix of its id, or by path to a run file (one copied from another machine)."""
    given = Path(run).expanduser()
    if given.suffix == ".json" and given.exists():
        return read(given)
    folder = folder or runs_dir(create=False)
    matches = sorted(folder.glob(f"{run}*.json")) if folder.is_dir() else []
    if not matches:
        raise RunFileError(f"no recorded run {run!r} in {folder} (workbench runs list shows them)")
    if len(matches) > 1 and not any(m.stem == run for m in matches):
        raise RunFileError(f"{run!r} names {len(matches)} runs; give more of the id")
    exact = [m for m in matches if m.stem == run]
    return read(exact[0] if exact else matches[0])


def summaries(folder: Path | None = None, lab: str | None = None) -> tuple[list[RunSummary], list[str]]:
    """Every readable run, newest first (only lab's, when given), and a message per file that is not."""
    folder = folder or runs_dir(create=False)
    rows, problems = [], []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            record = read(path)
        except RunFileError as exc:
            problems.append(str(exc))
            continue
        if lab is None or record["lab"] == lab:
            rows.append(RunSummary(record["id"], record["lab"], record["title"], record["started"],
                                   float(record["seconds"]), record.get("what", "")))
    return rows, problems
