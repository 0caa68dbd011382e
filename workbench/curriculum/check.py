"""``workbench lessons check``: every problem in the curriculum, with file and line.

Beyond what loading finds (structure, TOML, lab and probe ids, parameters,
duplicate ids, stray files), every lab a lesson names is imported (its
``module:Class`` must resolve to a Lab) and every probe question is computed
once, so a probe that raises fails the check instead of a learner's quiz.

A lesson that needs an optional part this install lacks (see
``workbench.extras``) is not broken: its probes are not computed, and
:func:`missing_extras` names it as needing that part, for ``lessons check``
and ``doctor`` alike.
"""

from __future__ import annotations

import math

from functools import cache

from workbench.curriculum.model import Curriculum, LabBlock, Lesson, LessonIssue, QuizBlock
from workbench.extras import TRACK_NEEDS, missing
from workbench.labs.registry import LABS
from workbench.probes import PROBES


@cache
def lab_target_problem(lab_id: str) -> str | None:
    """None when lab_id's ``module:Class`` imports and is a Lab, else what is wrong."""
    from workbench.labs.base import Lab

    spec = LABS[lab_id]
    try:
        widget = spec.widget_class()
    except (ImportError, AttributeError, ValueError) as exc:
        return f"lab {lab_id}: its target {spec.target} does not resolve: {exc}"
    if not (isinstance(widget, type) and issubclass(widget, Lab)):
        return f"lab {lab_id}: its target {spec.target} is not a Lab"
    return None


def lesson_needs(lesson: Lesson) -> list[str]:
    """The optional parts lesson needs: its track's, those of the labs it shows and of the probes it asks."""
    needs = {TRACK_NEEDS[lesson.track]} if lesson.track in TRACK_NEEDS else set()
    for step in lesson.steps:
        for block in step.blocks:
            if isinstance(block, LabBlock) and block.lab_id in LABS:
                needs.update(LABS[block.lab_id].needs)
    for question in lesson.questions:
        if question.kind == "probe" and question.probe in PROBES:
            needs.update(PROBES[question.probe].needs)
    return sorted(needs)


def missing_extras(curriculum: Curriculum) -> list[LessonIssue]:
    """One note per lesson that needs an optional part this install lacks, saying which and how to add it."""
    notes = []
    for lesson in curriculum.lessons:
        for name in lesson_needs(lesson):
            reason = missing(name)
            if reason:
                notes.append(LessonIssue(lesson.file, 1, reason, fatal=False))
    return notes


def check_curriculum(curriculum: Curriculum) -> list[LessonIssue]:
    """All issues: the loader's, then labs whose widget does not resolve and probes that fail to compute."""
    issues = list(curriculum.all_issues())
    for lesson in curriculum.lessons:
        for step in lesson.steps:
            for block in step.blocks:
                if isinstance(block, LabBlock) and block.error is None:
                    problem = lab_target_problem(block.lab_id)
                    if problem:
                        issues.append(LessonIssue(lesson.file, block.line, problem))
                if isinstance(block, QuizBlock) and block.question and block.question.kind == "probe":
                    q = block.question
                    if PROBES[q.probe].unavailable():
                        continue  # reported by missing_extras, not a fault of the lesson
                    try:
                        value = float(PROBES[q.probe].compute(**q.params))
                    except Exception as exc:  # any failure is the author's to see
                        issues.append(LessonIssue(lesson.file, block.line, f"probe {q.probe} failed: {exc}"))
                        continue
                    if not math.isfinite(value):
                        issues.append(LessonIssue(lesson.file, block.line, f"probe {q.probe} computed {value}"))
    return sorted(issues, key=lambda i: (i.file, i.line))
