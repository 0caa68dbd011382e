"""``workbench lessons check``: every problem in the curriculum, with file and line.

Beyond what loading finds (structure, TOML, lab and probe ids, parameters,
duplicate ids, stray files), every lab a lesson names is imported (its
``module:Class`` must resolve to a Lab) and every probe question is computed
once, so a probe that raises fails the check instead of a learner's quiz.
"""

from __future__ import annotations

import math

from functools import cache

from workbench.curriculum.model import Curriculum, LabBlock, LessonIssue, QuizBlock
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
                    try:
                        value = float(PROBES[q.probe].compute(**q.params))
                    except Exception as exc:  # any failure is the author's to see
                        issues.append(LessonIssue(lesson.file, block.line, f"probe {q.probe} failed: {exc}"))
                        continue
                    if not math.isfinite(value):
                        issues.append(LessonIssue(lesson.file, block.line, f"probe {q.probe} computed {value}"))
    return sorted(issues, key=lambda i: (i.file, i.line))
