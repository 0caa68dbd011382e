"""App-wide messages, named in the past tense for what happened."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class QuizAnswered(Message):
    """The learner answered a quiz question; the lesson screen records it."""

    def __init__(self, question_id: str, answer: Any, correct: bool, score: float) -> None:
        super().__init__()
        self.question_id = question_id
        self.answer = answer
        self.correct = correct
        self.score = score


class LessonChosen(Message):
    """A lesson was picked (catalog, palette or CLI) and should open."""

    def __init__(self, lesson_id: str) -> None:
        super().__init__()
        self.lesson_id = lesson_id
