"""Command palette entries: open any lesson or any lab by typing part of its name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from workbench.exercises.catalog import EXERCISES
from workbench.labs.registry import LABS


class LessonsAndLabs(Provider):
    """'Open lesson: …' for every lesson that loads, 'Open lab: …' for every lab."""

    def _entries(self) -> list[tuple[str, str, object]]:
        app = self.app
        entries = []
        for lesson in app.curriculum.lessons:  # type: ignore[attr-defined]
            if not lesson.broken:
                entries.append((f"Open lesson: {lesson.title}", lesson.id, partial(app.open_lesson, lesson.id)))  # type: ignore[attr-defined]
        for spec in LABS.values():
            entries.append((f"Open lab: {spec.title}", spec.summary, partial(app.open_lab, spec.id)))  # type: ignore[attr-defined]
        for exercise in EXERCISES.values():
            entries.append((f"Open exercise: {exercise.title}", exercise.track,
                            partial(app.open_exercises, exercise.id)))  # type: ignore[attr-defined]
        return entries

    async def discover(self) -> Hits:
        for title, help_text, callback in self._entries():
            yield DiscoveryHit(title, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)  # type: ignore[arg-type]
