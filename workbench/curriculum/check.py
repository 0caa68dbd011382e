"""``workbench lessons check``: every problem in the curriculum, with file and line.

Beyond what loading finds (structure, TOML, lab and probe ids, parameters,
duplicate ids, stray files), every probe question is computed once, so a
probe that raises fails the check instead of a learner's quiz.
"""

from __future__ import annotations

from workbench.curriculum.model import Curriculum, LessonIssue, QuizBlock
from workbench.probes import compute_probe


def check_curriculum(curriculum: Curriculum) -> list[LessonIssue]:
    """All issues, loader's first, then probes that fail to compute."""
    issues = list(curriculum.all_issues())
    for lesson in curriculum.lessons:
        for step in lesson.steps:
            for block in step.blocks:
                if isinstance(block, QuizBlock) and block.question and block.question.kind == "probe":
                    q = block.question
                    try:
                        value = compute_probe(q.probe, q.params)
                    except Exception as exc:  # any failure is the author's to see
                        issues.append(LessonIssue(lesson.file, block.line, f"probe {q.probe} failed: {exc}"))
                        continue
                    if value != value:
                        issues.append(LessonIssue(lesson.file, block.line, f"probe {q.probe} computed NaN"))
    return sorted(issues, key=lambda i: (i.file, i.line))
