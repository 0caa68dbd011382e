"""Reads the curriculum: ``<root>/<track>/track.toml`` and ``<root>/<track>/NN-slug.md``.

``<root>/exercises`` holds exercise starters and solutions, not a track.

Every problem becomes a LessonIssue with file and line; a broken lesson is
kept (and shown as broken) while the others load normally. Files are named
``lessons/<track>/<file>`` for the bundled lessons and by their real path for
a folder given with ``--lessons``. Lines are counted at ``\n`` only, as
editors and TOML do (``str.splitlines`` also breaks at ``\x0c``, ``\x85``,
U+2028, ...), and a UTF-8 byte-order mark is allowed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from importlib.abc import Traversable
from importlib.resources import files
from typing import Any

from workbench.curriculum.model import (
    Block,
    Curriculum,
    ExerciseBlock,
    LabBlock,
    Lesson,
    LessonIssue,
    QuizBlock,
    Step,
    TextBlock,
    Track,
)
from workbench.labs.registry import LABS
from workbench.logs import logger
from workbench.params import ParamError, short_repr
from workbench.probes import PROBES
from workbench.quiz import QuizError, parse_question

LESSON_NAME = re.compile(r"^\d{2}-[a-z0-9]+(?:-[a-z0-9]+)*\.md$")
LESSON_ID = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_IGNORED = {"__init__.py", "__pycache__", "README.md"}
# Top-level folders that hold other content than tracks.
_NOT_TRACKS = {"exercises"}
_FRONT_MATTER = {"id": str, "title": str, "minutes": int, "objectives": list, "prerequisites": list}
_MAX_DEPTH = 8
"""Tables and arrays nested deeper than this are refused: no lesson needs them, and Python recursion does."""
MAX_FILE_BYTES = 1_000_000
"""A lesson or track.toml larger than this is refused unread."""
_LONG_NUMBER = re.compile(r"[0-9_]{1000,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _Problem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def default_root() -> Traversable:
    """The lessons shipped inside the installed ``lessons`` package."""
    return files("workbench_lessons")


def load_curriculum(root: Traversable | None = None) -> Curriculum:
    """Load every track under root (the bundled lessons by default)."""
    label = "lessons" if root is None else str(root)
    root = root or default_root()
    curriculum = Curriculum(tracks=[])
    try:
        entries = sorted(root.iterdir(), key=lambda e: e.name)
    except OSError as exc:
        curriculum.issues.append(LessonIssue(label, 1, f"cannot list the lessons folder: {exc}"))
        return curriculum
    for entry in entries:
        if entry.name in _IGNORED or entry.name.startswith("."):
            continue
        if entry.name in _NOT_TRACKS and entry.is_dir():
            continue
        if not entry.is_dir():
            curriculum.issues.append(LessonIssue(f"{label}/{_shown(entry.name)}", 1,
                                                 "stray file: lessons live in track folders"))
            continue
        curriculum.tracks.append(_load_track(entry, f"{label}/{_shown(entry.name)}", curriculum.issues))
    curriculum.tracks.sort(key=lambda t: (t.order, t.id))
    _check_ids(curriculum)
    return curriculum


def _load_track(folder: Traversable, label: str, issues: list[LessonIssue]) -> Track:
    """The track in folder (files named under label); its problems are appended to issues."""
    track = Track(id=folder.name, title=folder.name, order=1000, summary="")
    meta_name = f"{label}/track.toml"
    try:
        meta = folder / "track.toml"
        if not meta.is_file():
            raise _Problem(1, "missing track.toml (title, order, summary)")
        data = _toml(_text(_read(meta)), 0, "")
        track.title = _line_of_text(_typed(data, "title", str, 1), "title", 1)
        order = _typed(data, "order", int, 1)
        if not -1_000_000 <= order <= 1_000_000:
            raise _Problem(1, f"'order' must be between -1000000 and 1000000, got {short_repr(order)}")
        track.order = order
        track.summary = _line_of_text(_typed(data, "summary", str, 1), "summary", 1)
        extra = set(data) - {"title", "order", "summary"}
        if extra:
            raise _Problem(1, f"unknown key(s) {short_repr(', '.join(sorted(extra)))}")
    except _Problem as exc:
        issues.append(LessonIssue(meta_name, exc.line, exc.message))
    try:
        entries = sorted(folder.iterdir(), key=lambda e: e.name)
    except OSError as exc:
        issues.append(LessonIssue(label, 1, f"cannot list the track folder: {exc}"))
        return track
    for entry in entries:
        name = f"{label}/{_shown(entry.name)}"
        if entry.name in ("track.toml", *_IGNORED):
            continue
        if not LESSON_NAME.match(entry.name) or not entry.is_file():
            issues.append(LessonIssue(name, 1, "stray file: lesson files are named NN-slug.md"))
            continue
        try:
            raw = _read(entry)
        except _Problem as exc:
            lesson = Lesson(id=name, title=entry.name, track=folder.name, file=name)
            lesson.issues.append(LessonIssue(name, exc.line, exc.message))
            track.lessons.append(lesson)
            continue
        track.lessons.append(parse_lesson(raw, name, folder.name))
    return track


def _shown(name: str) -> str:
    """A file name as it can be printed: bytes that are not UTF-8 (kept by Python as lone surrogates, which no
    terminal write accepts) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _read(entry: Traversable) -> bytes:
    """entry's bytes, or a _Problem when it can't be read or is too large to be a lesson."""
    try:
        with entry.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _Problem(1, f"cannot read the file: {exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _Problem(1, f"larger than {MAX_FILE_BYTES:,} bytes")
    return raw


def _text(raw: bytes) -> str:
    """raw decoded as UTF-8 (a byte-order mark allowed), or a _Problem at the line of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _Problem(line, f"not valid UTF-8: {exc.reason}") from None


def _lines(text: str) -> list[str]:
    """text's lines as editors and TOML number them: broken at \\n (a \\r before it dropped) and nowhere else."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _toml(text: str, offset: int, where: str) -> dict[str, Any]:
    """text parsed as TOML, or a _Problem at its file line; the text starts after file line offset.

    Beyond tomllib's own errors, refuses what it raises other exceptions for
    (nesting past the recursion limit, integers too long for ``int``) and
    nesting deeper than any lesson needs.
    """
    first = offset + 1
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _Problem(_toml_line(exc, offset, text.count("\n") + 1), f"invalid TOML{where}: {exc}") from None
    except RecursionError:
        raise _Problem(first, f"TOML{where} is nested too deeply") from None
    except ValueError as exc:  # an integer with more digits than int() converts
        long = _LONG_NUMBER.search(text)
        line = offset + text.count("\n", 0, long.start()) + 1 if long else first
        raise _Problem(line, f"invalid TOML{where}: a number with too many digits ({short_repr(str(exc))})") from None
    if _depth(data) > _MAX_DEPTH:
        raise _Problem(first, f"TOML{where} is nested more than {_MAX_DEPTH} levels deep")
    return data


def _depth(value: Any) -> int:
    """How deep tables and arrays nest in value (0 for a scalar); stops counting past _MAX_DEPTH."""
    deepest, stack = 0, [(value, 0)]
    while stack and deepest <= _MAX_DEPTH:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_lesson(raw: bytes, file: str, track: str) -> Lesson:
    """Parse one lesson file; problems are recorded on the lesson, never raised."""
    lesson = Lesson(id=file, title=file.rsplit("/", 1)[-1], track=track, file=file)
    try:
        lines = _lines(_text(raw))
        body_start = _front_matter(lines, lesson)
        lesson.steps = tuple(_steps(lines, body_start, lesson))
    except _Problem as exc:
        lesson.issues.append(LessonIssue(file, exc.line, exc.message))
    except Exception as exc:  # noqa: BLE001 - a loader bug must cost one lesson, never the catalog
        logger.exception("loading %s failed", file)
        lesson.issues.append(LessonIssue(file, 1, f"the loader failed on this lesson ({type(exc).__name__}: "
                                                  f"{short_repr(str(exc))}); the traceback is in the log"))
    return lesson


def _front_matter(lines: list[str], lesson: Lesson) -> int:
    if not lines or lines[0].strip() != "+++":
        raise _Problem(1, "a lesson starts with TOML front matter between '+++' lines")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "+++")
    except StopIteration:
        raise _Problem(1, "front matter opened with '+++' is never closed") from None
    data = _toml("\n".join(lines[1:end]), 1, " in front matter")
    unknown = set(data) - set(_FRONT_MATTER)
    if unknown:
        raise _Problem(1, f"unknown front matter key(s): {short_repr(', '.join(sorted(unknown)))}")
    lesson.id = _typed(data, "id", str, 1)
    if not LESSON_ID.match(lesson.id):
        raise _Problem(1, f"lesson id {short_repr(lesson.id)} must be lowercase letters, digits, '-' and '.'")
    lesson.title = _line_of_text(_typed(data, "title", str, 1), "title", 1)
    lesson.minutes = data.get("minutes", 0)
    if not isinstance(lesson.minutes, int) or isinstance(lesson.minutes, bool) or not 0 <= lesson.minutes <= 1000:
        raise _Problem(1, "'minutes' must be an integer from 0 to 1000")
    for key in ("objectives", "prerequisites"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _Problem(1, f"'{key}' must be a list of strings")
        setattr(lesson, key, tuple(value))
    return end + 1


def _steps(lines: list[str], start: int, lesson: Lesson) -> list[Step]:
    steps: list[Step] = []
    title, title_line = "", 0
    blocks: list[Block] = []
    text: list[str] = []
    fence: tuple[str, int, list[str]] | None = None  # (info, line, body) of a lab/quiz block
    in_code = False  # inside an ordinary Markdown code fence
    question_ids: set[str] = set()

    def flush_text() -> None:
        if "".join(text).strip():
            blocks.append(TextBlock("\n".join(text).strip("\n")))
        text.clear()

    def close_step() -> None:
        flush_text()
        if title_line:
            steps.append(Step(title, title_line, tuple(blocks)))
        blocks.clear()

    for index in range(start, len(lines)):
        line, number = lines[index], index + 1
        stripped = line.strip()
        if fence is not None:
            if stripped == "```":
                blocks.append(_special_block(*fence, lesson, question_ids))
                fence = None
            else:
                fence[2].append(line)
            continue
        if in_code:
            in_code = not stripped.startswith("```")
            text.append(line)
            continue
        if stripped.startswith("```"):
            info = stripped[3:].strip().split()
            if info and info[0] in ("lab", "quiz", "exercise"):
                if not title_line:
                    raise _Problem(number, f"a {info[0]} block before the first '## ' step")
                flush_text()
                fence = (" ".join(info), number, [])
            else:
                in_code = True
                text.append(line)
            continue
        if line.startswith("## "):
            close_step()
            title, title_line = _line_of_text(line[3:].strip(), "a step heading", number), number
            if not title:
                raise _Problem(number, "a step heading needs a title")
            continue
        if not title_line and stripped:
            raise _Problem(number, "text before the first '## ' step heading")
        text.append(line)
    if fence is not None:
        raise _Problem(fence[1], f"```{fence[0]} block is never closed")
    if in_code:
        raise _Problem(len(lines), "a code fence is never closed")
    close_step()
    if not steps:
        raise _Problem(max(1, min(start + 1, len(lines))), "a lesson needs at least one '## ' step")
    return steps


def _special_block(info: str, line: int, body: list[str], lesson: Lesson, question_ids: set[str]) -> Block:
    kind, _, lab_id = info.partition(" ")
    if kind == "exercise":
        from workbench.exercises.catalog import EXERCISES

        if lab_id not in EXERCISES:
            message = f"unknown exercise {short_repr(lab_id)} (known: {', '.join(sorted(EXERCISES))})"
            lesson.issues.append(LessonIssue(lesson.file, line, message, fatal=False))
            return ExerciseBlock(lab_id, line, error=message)
        return ExerciseBlock(lab_id, line)
    try:
        data = _toml("\n".join(body), line, "")
    except _Problem as exc:
        return _block_issue(kind, lab_id, line, exc.line, exc.message, lesson)
    if kind == "lab":
        if not lab_id:
            return _block_issue(kind, lab_id, line, line, "a lab block names its lab: ```lab <lab-id>", lesson)
        if lab_id not in LABS:
            known = ", ".join(sorted(LABS))
            return _block_issue(kind, lab_id, line, line, f"unknown lab {short_repr(lab_id)} (known: {known})", lesson,
                                data)
        try:
            return LabBlock(lab_id, LABS[lab_id].validate(data), line)
        except ParamError as exc:
            return _block_issue(kind, lab_id, line, line, str(exc), lesson, data)
    try:
        question = parse_question(data)
        if question.kind == "probe":
            if question.probe not in PROBES:
                raise QuizError(f"unknown probe {short_repr(question.probe)} (known: {', '.join(sorted(PROBES))})")
            # Validated once here; the Question keeps the full parameters for every later computation.
            question = replace(question, params=PROBES[question.probe].validate(question.params))
    except (QuizError, ParamError) as exc:
        return _block_issue(kind, lab_id, line, line, f"quiz: {exc}", lesson)
    if question.id in question_ids:
        return _block_issue(kind, lab_id, line, line,
                            f"quiz id {short_repr(question.id)} is used twice in this lesson", lesson)
    question_ids.add(question.id)
    return QuizBlock(question, line)


def _block_issue(kind: str, lab_id: str, block_line: int, line: int, message: str,
                 lesson: Lesson, params: dict[str, Any] | None = None) -> Block:
    lesson.issues.append(LessonIssue(lesson.file, line, message, fatal=False))
    if kind == "lab":
        return LabBlock(lab_id, params or {}, block_line, error=message)
    return QuizBlock(None, block_line, error=message)


def _check_ids(curriculum: Curriculum) -> None:
    seen: dict[str, Lesson] = {}
    for lesson in curriculum.lessons:
        if lesson.broken:
            continue
        if lesson.id in seen:
            lesson.issues.append(LessonIssue(lesson.file, 1, f"lesson id {short_repr(lesson.id)} is also used by "
                                                             f"{seen[lesson.id].file}"))
        else:
            seen[lesson.id] = lesson
    for lesson in curriculum.lessons:
        for prereq in lesson.prerequisites:
            if prereq not in seen:
                problem = f"prerequisite {short_repr(prereq)} is not a lesson id"
                lesson.issues.append(LessonIssue(lesson.file, 1, problem, fatal=False))


def _line_of_text(value: str, what: str, line: int) -> str:
    """value, when it is one line without control characters (a title shown in the catalog, the step bar and
    the terminal of `workbench lessons list`, where an escape sequence would act instead of showing)."""
    bad = _CONTROL.search(value)
    if bad:
        raise _Problem(line, f"{what} holds the control character {bad.group()!r}")
    return value


def _typed(data: dict[str, Any], key: str, typ: type, line: int) -> Any:
    if key not in data:
        raise _Problem(line, f"missing '{key}'")
    value = data[key]
    if not isinstance(value, typ) or isinstance(value, bool):
        raise _Problem(line, f"'{key}' must be a {typ.__name__}, got {short_repr(value)}")
    return value


def _toml_line(exc: tomllib.TOMLDecodeError, offset: int, length: int = 1) -> int:
    """File line of a TOML error in a block of ``length`` lines starting after line ``offset``."""
    match = _TOML_LINE.search(str(exc))
    return offset + (int(match.group(1)) if match else max(1, length))
