"""Lessons as data: tracks of Markdown lessons with TOML front matter, labs and quizzes."""

from workbench.curriculum.loader import load_curriculum
from workbench.curriculum.model import (
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

__all__ = [
    "Curriculum",
    "ExerciseBlock",
    "LabBlock",
    "Lesson",
    "LessonIssue",
    "QuizBlock",
    "Step",
    "TextBlock",
    "Track",
    "load_curriculum",
]
