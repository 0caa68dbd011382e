"""Command palette entries: open any lesson, lab or exercise by typing part of its name."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher
from textual.message import Message

from workbench.exercises.catalog import EXERCISES
from workbench.labs.registry import LABS
from workbench.messages import ExerciseChosen, LabChosen, LessonChosen

if TYPE_CHECKING:
    from workbench.app import WorkbenchApp


class LessonsAndLabs(Provider):
    """'Open lesson: …' for every lesson that loads, 'Open lab: …' for every lab, 'Open exercise: …'."""

    def _entries(self) -> list[tuple[str, str, Message]]:
        """(title, help text, the message choosing it posts to the app)."""
        app = cast("WorkbenchApp", self.app)
        entries: list[tuple[str, str, Message]] = [
            (f"Open lesson: {lesson.title}", lesson.id, LessonChosen(lesson.id))
            for lesson in app.curriculum.lessons if not lesson.broken
        ]
        entries += [(f"Open lab: {spec.title}", spec.summary, LabChosen(spec.id)) for spec in LABS.values()]
        entries += [(f"Open exercise: {exercise.title}", exercise.track, ExerciseChosen(exercise.id))
                    for exercise in EXERCISES.values()]
        return entries

    def _choose(self, message: Message):
        return lambda: self.app.post_message(message)

    async def discover(self) -> Hits:
        for title, help_text, message in self._entries():
            # A lesson's title is text, not markup: "a[/]" must show, not crash the palette.
            yield DiscoveryHit(Content(title), self._choose(message), text=title, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, message in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, highlighted(matcher, title), self._choose(message), text=title, help=help_text)


def highlighted(matcher: Matcher, title: str) -> Content:
    """title as plain text with the characters the query matched in matcher's style.

    ``Matcher.highlight`` reads its argument as markup and styles offsets into
    that string, so an escaped title ("a\\[i]") had its highlights shifted one
    character per bracket.
    """
    content = Content(title)
    score, offsets = matcher.fuzzy_search.match(matcher.query, title)
    for offset in offsets if score else ():
        if not title[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content
