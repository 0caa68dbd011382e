"""``workbench lessons check``: every problem in the curriculum, with file and line.

Beyond what loading finds (structure, TOML, lab and probe ids, parameters,
duplicate ids, stray files), every lab a lesson names is imported (its
``module:Class`` must resolve to a Lab) and every probe question is computed
once, so a probe that raises fails the check instead of a learner's quiz.
A numeric or probe question whose tolerance would accept a blank guess of 0
for a non-zero answer is reported too (issue 20: one asked for 0.0065 at
±0.01), and so is a preformatted line (a formula, code) too wide for an
80-column terminal, where it would be cut rather than wrapped.

A lesson that needs an optional part this install lacks (see
``workbench.extras``) is not broken: its probes are not computed, and
:func:`missing_extras` names it as needing that part, for ``lessons check``
and ``doctor`` alike.
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path

from workbench.curriculum.model import Curriculum, LabBlock, Lesson, LessonIssue, QuizBlock
from workbench.extras import TRACK_NEEDS, missing
from workbench.labs.registry import LABS
from workbench.probes import PROBES
from workbench.quiz import within


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
    """All issues: the loader's, then labs whose widget does not resolve, probes that fail to compute, and
    questions that would grade a 0 correct for a non-zero answer."""
    issues = list(curriculum.all_issues())
    for lesson in curriculum.lessons:
        for step in lesson.steps:
            for block in step.blocks:
                if isinstance(block, LabBlock) and block.error is None:
                    problem = lab_target_problem(block.lab_id)
                    if problem:
                        issues.append(LessonIssue(lesson.file, block.line, problem))
                if isinstance(block, QuizBlock) and block.question:
                    issues.extend(_question_issues(lesson, block))
        issues.extend(wide_preformatted_lines(lesson.file))
    return sorted(issues, key=lambda i: (i.file, i.line))


PREFORMATTED_WIDTH = 76
"""The widest preformatted line an 80-column lesson screen shows whole (its margins and scroll bar take the rest)."""
_FENCE = re.compile(r"^```(\S*)")


def wide_preformatted_lines(file: str) -> list[LessonIssue]:
    """Lines of indented or fenced code (not lab or quiz blocks, which are TOML) wider than PREFORMATTED_WIDTH.

    Characters, not terminal cells, are counted (a wide CJK character would slip through), and any line indented
    by four spaces counts as code, as Markdown reads it outside a list; the lessons indent nothing else that far.
    """
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # the loader reports an unreadable file
    issues, fence = [], None
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if match := _FENCE.match(line):
            fence = None if fence is not None else match.group(1)
            continue
        shown = fence not in ("lab", "quiz") if fence is not None else line.startswith("    ")
        if shown and len(line) > PREFORMATTED_WIDTH:
            issues.append(LessonIssue(file, number, f"a preformatted line of {len(line)} characters is cut at 80 "
                                                    f"columns: break it to {PREFORMATTED_WIDTH} or fewer"))
    return issues


def _question_issues(lesson: Lesson, block: QuizBlock) -> list[LessonIssue]:
    """A probe question's answer computed (finite), and any numeric answer checked against a blank 0."""
    q = block.question
    if q.kind == "numeric":
        target = q.answer
    elif q.kind == "probe":
        if PROBES[q.probe].unavailable():
            return []  # reported by missing_extras, not a fault of the lesson
        try:
            target = float(PROBES[q.probe].compute(**q.params))
        except Exception as exc:  # any failure is the author's to see
            return [LessonIssue(lesson.file, block.line, f"probe {q.probe} failed: {exc}")]
        if not math.isfinite(target):
            return [LessonIssue(lesson.file, block.line, f"probe {q.probe} computed {target}")]
    else:
        return []  # choices and orders never accept a blank
    if target != 0 and within(0.0, target, q.tolerance, q.rel_tolerance):
        return [LessonIssue(lesson.file, block.line, f"question {q.id} accepts 0 for its answer {target} "
                            f"(tolerance ±{q.tolerance}, relative {q.rel_tolerance}): narrow it")]
    return []
