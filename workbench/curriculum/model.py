"""The parsed shape of the curriculum: tracks, lessons, steps and their blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.quiz import Question


@dataclass(frozen=True)
class LessonIssue:
    """A problem in a lesson file, reported as ``file:line: message``."""

    file: str
    line: int
    message: str
    fatal: bool = True
    """Fatal issues stop the lesson from opening; others show inside its step."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class TextBlock:
    markdown: str


@dataclass(frozen=True)
class LabBlock:
    lab_id: str
    params: dict[str, Any]
    line: int
    error: str | None = None
    """Why the lab can't run (unknown id, bad params); shown in the step instead."""


@dataclass(frozen=True)
class QuizBlock:
    question: Question | None
    line: int
    error: str | None = None


@dataclass(frozen=True)
class ExerciseBlock:
    exercise_id: str
    line: int
    error: str | None = None


Block = TextBlock | LabBlock | QuizBlock | ExerciseBlock


@dataclass(frozen=True)
class Step:
    title: str
    line: int
    blocks: tuple[Block, ...]

    @property
    def questions(self) -> list[Question]:
        return [b.question for b in self.blocks if isinstance(b, QuizBlock) and b.question]


@dataclass
class Lesson:
    id: str
    title: str
    track: str
    file: str
    minutes: int = 0
    objectives: tuple[str, ...] = ()
    prerequisites: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    issues: list[LessonIssue] = field(default_factory=list)
    """Problems found while loading, fatal or shown in their step."""

    @property
    def broken(self) -> bool:
        """True when the lesson can't be opened; its first fatal issue says why."""
        return any(issue.fatal for issue in self.issues)

    @property
    def questions(self) -> list[Question]:
        return [q for step in self.steps for q in step.questions]


@dataclass
class Track:
    id: str
    title: str
    order: int
    summary: str
    lessons: list[Lesson] = field(default_factory=list)


@dataclass
class Curriculum:
    tracks: list[Track]
    issues: list[LessonIssue] = field(default_factory=list)
    """Problems not tied to one loadable lesson (a bad track.toml, a stray file)."""

    @property
    def lessons(self) -> list[Lesson]:
        return [lesson for track in self.tracks for lesson in track.lessons]

    def lesson(self, lesson_id: str) -> Lesson | None:
        return next((l for l in self.lessons if l.id == lesson_id), None)

    def all_issues(self) -> list[LessonIssue]:
        return self.issues + [i for lesson in self.lessons for i in lesson.issues]
