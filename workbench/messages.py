"""App-wide messages, named in the past tense for what happened; the app routes each to a screen."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class QuizAnswered(Message):
    """The learner answered a quiz question; the lesson screen records it."""

    def __init__(self, question_id: str, answer: Any, correct: bool, score: float,
                 expected: float | None = None) -> None:
        super().__init__()
        self.question_id = question_id
        self.answer = answer
        self.correct = correct
        self.score = score
        self.expected = expected
        """The engine-computed answer a probe question was graded against (None for other kinds)."""


class LessonChosen(Message):
    """A lesson was picked (catalog, palette or CLI) and should open."""

    def __init__(self, lesson_id: str) -> None:
        super().__init__()
        self.lesson_id = lesson_id


class LabChosen(Message):
    """A lab was picked (palette) and should open on its own, with its default parameters."""

    def __init__(self, lab_id: str) -> None:
        super().__init__()
        self.lab_id = lab_id


class ExerciseChosen(Message):
    """An exercise was picked (a lesson's exercise card, the palette) and the exercise view should open on it."""

    def __init__(self, exercise_id: str | None = None) -> None:
        super().__init__()
        self.exercise_id = exercise_id


class ProgressNoticed(Message):
    """The progress store has something to tell the learner (saving stopped or resumed); posted from its writer thread."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
