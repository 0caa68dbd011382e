"""Reads the curriculum: ``<root>/<track>/track.toml`` and ``<root>/<track>/NN-slug.md``.

``<root>/exercises`` holds exercise starters and solutions, not a track.

Every problem becomes a LessonIssue with file and line; a broken lesson is
kept (and shown as broken) while the others load normally.
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
from workbench.params import ParamError
from workbench.probes import PROBES
from workbench.quiz import QuizError, parse_question

LESSON_NAME = re.compile(r"^\d{2}-[a-z0-9]+(?:-[a-z0-9]+)*\.md$")
LESSON_ID = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_IGNORED = {"__init__.py", "__pycache__", "README.md"}
# Top-level folders that hold other content than tracks.
_NOT_TRACKS = {"exercises"}
_FRONT_MATTER = {"id": str, "title": str, "minutes": int, "objectives": list, "prerequisites": list}


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
    root = root or default_root()
    curriculum = Curriculum(tracks=[])
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name in _IGNORED or entry.name.startswith("."):
            continue
        if entry.name in _NOT_TRACKS and entry.is_dir():
            continue
        if not entry.is_dir():
            curriculum.issues.append(LessonIssue(f"lessons/{entry.name}", 1, "stray file: lessons live in track folders"))
            continue
        curriculum.tracks.append(_load_track(entry, curriculum.issues))
    curriculum.tracks.sort(key=lambda t: (t.order, t.id))
    _check_ids(curriculum)
    return curriculum


def _load_track(folder: Traversable, issues: list[LessonIssue]) -> Track:
    track = Track(id=folder.name, title=folder.name, order=1000, summary="")
    meta_name = f"lessons/{folder.name}/track.toml"
    meta = folder / "track.toml"
    if not meta.is_file():
        issues.append(LessonIssue(meta_name, 1, "missing track.toml (title, order, summary)"))
    else:
        try:
            data = tomllib.loads(meta.read_text(encoding="utf-8"))
            track.title = _typed(data, "title", str, 1)
            track.order = _typed(data, "order", int, 1)
            track.summary = _typed(data, "summary", str, 1)
            extra = set(data) - {"title", "order", "summary"}
            if extra:
                raise _Problem(1, f"unknown key(s) {', '.join(sorted(extra))}")
        except tomllib.TOMLDecodeError as exc:
            issues.append(LessonIssue(meta_name, _toml_line(exc, 0), f"invalid TOML: {exc}"))
        except _Problem as exc:
            issues.append(LessonIssue(meta_name, exc.line, exc.message))
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        name = f"lessons/{folder.name}/{entry.name}"
        if entry.name in ("track.toml", *_IGNORED):
            continue
        if not LESSON_NAME.match(entry.name) or not entry.is_file():
            issues.append(LessonIssue(name, 1, "stray file: lesson files are named NN-slug.md"))
            continue
        track.lessons.append(parse_lesson(entry.read_bytes(), name, folder.name))
    return track


def parse_lesson(raw: bytes, file: str, track: str) -> Lesson:
    """Parse one lesson file; problems are recorded on the lesson, never raised."""
    lesson = Lesson(id=file, title=file.rsplit("/", 1)[-1], track=track, file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        lesson.issues.append(LessonIssue(file, line, f"not valid UTF-8: {exc.reason}"))
        return lesson
    lines = text.splitlines()
    try:
        body_start = _front_matter(lines, lesson)
        lesson.steps = tuple(_steps(lines, body_start, lesson))
    except _Problem as exc:
        lesson.issues.append(LessonIssue(file, exc.line, exc.message))
    return lesson


def _front_matter(lines: list[str], lesson: Lesson) -> int:
    if not lines or lines[0].strip() != "+++":
        raise _Problem(1, "a lesson starts with TOML front matter between '+++' lines")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "+++")
    except StopIteration:
        raise _Problem(1, "front matter opened with '+++' is never closed") from None
    try:
        data = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise _Problem(_toml_line(exc, 1, end - 1), f"invalid TOML in front matter: {exc}") from None
    unknown = set(data) - set(_FRONT_MATTER)
    if unknown:
        raise _Problem(1, f"unknown front matter key(s): {', '.join(sorted(unknown))}")
    lesson.id = _typed(data, "id", str, 1)
    if not LESSON_ID.match(lesson.id):
        raise _Problem(1, f"lesson id {lesson.id!r} must be lowercase letters, digits, '-' and '.'")
    lesson.title = _typed(data, "title", str, 1)
    lesson.minutes = data.get("minutes", 0)
    if not isinstance(lesson.minutes, int) or isinstance(lesson.minutes, bool) or lesson.minutes < 0:
        raise _Problem(1, "'minutes' must be a non-negative integer")
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
            title, title_line = line[3:].strip(), number
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
            message = f"unknown exercise {lab_id!r} (known: {', '.join(sorted(EXERCISES))})"
            lesson.issues.append(LessonIssue(lesson.file, line, message, fatal=False))
            return ExerciseBlock(lab_id, line, error=message)
        return ExerciseBlock(lab_id, line)
    try:
        data = tomllib.loads("\n".join(body))
    except tomllib.TOMLDecodeError as exc:
        return _block_issue(kind, lab_id, line, _toml_line(exc, line, len(body)), f"invalid TOML: {exc}", lesson)
    if kind == "lab":
        if not lab_id:
            return _block_issue(kind, lab_id, line, line, "a lab block names its lab: ```lab <lab-id>", lesson)
        if lab_id not in LABS:
            known = ", ".join(sorted(LABS))
            return _block_issue(kind, lab_id, line, line, f"unknown lab {lab_id!r} (known: {known})", lesson, data)
        try:
            return LabBlock(lab_id, LABS[lab_id].validate(data), line)
        except ParamError as exc:
            return _block_issue(kind, lab_id, line, line, str(exc), lesson, data)
    try:
        question = parse_question(data)
        if question.kind == "probe":
            if question.probe not in PROBES:
                raise QuizError(f"unknown probe {question.probe!r} (known: {', '.join(sorted(PROBES))})")
            # Validated once here; the Question keeps the full parameters for every later computation.
            question = replace(question, params=PROBES[question.probe].validate(question.params))
    except (QuizError, ParamError) as exc:
        return _block_issue(kind, lab_id, line, line, f"quiz: {exc}", lesson)
    if question.id in question_ids:
        return _block_issue(kind, lab_id, line, line, f"quiz id {question.id!r} is used twice in this lesson", lesson)
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
            lesson.issues.append(LessonIssue(lesson.file, 1, f"lesson id {lesson.id!r} is also used by {seen[lesson.id].file}"))
        else:
            seen[lesson.id] = lesson
    for lesson in curriculum.lessons:
        for prereq in lesson.prerequisites:
            if prereq not in seen:
                lesson.issues.append(LessonIssue(lesson.file, 1, f"prerequisite {prereq!r} is not a lesson id", fatal=False))


def _typed(data: dict[str, Any], key: str, typ: type, line: int) -> Any:
    if key not in data:
        raise _Problem(line, f"missing '{key}'")
    value = data[key]
    if not isinstance(value, typ) or isinstance(value, bool):
        raise _Problem(line, f"'{key}' must be a {typ.__name__}, got {value!r}")
    return value


def _toml_line(exc: tomllib.TOMLDecodeError, offset: int, length: int = 1) -> int:
    """File line of a TOML error in a block of ``length`` lines starting after line ``offset``."""
    match = _TOML_LINE.search(str(exc))
    return offset + (int(match.group(1)) if match else max(1, length))
