"""The lesson loader and `lessons check`: good lessons load, bad ones say file:line."""

from __future__ import annotations

import pytest

from tests.conftest import write_track
from workbench.curriculum import LabBlock, QuizBlock, TextBlock, load_curriculum
from workbench.curriculum.check import check_curriculum

GOOD = '''+++
id = "demo"
title = "Demo"
minutes = 3
+++

## First
Some *text*.

```python
## not a heading inside code
```

```lab softmax.stability
shift = 10.0
```

## Second
```quiz
id = "q1"
kind = "numeric"
prompt = "2 + 2?"
answer = 4
explanation = "four"
```
'''


def test_bundled_curriculum_is_clean():
    curriculum = load_curriculum()
    assert check_curriculum(curriculum) == []
    ids = [lesson.id for lesson in curriculum.lessons]
    assert {"tour", "logits-to-probabilities"} <= set(ids)
    lesson = curriculum.lesson("logits-to-probabilities")
    kinds = {q.kind for q in lesson.questions}
    assert "probe" in kinds and len(lesson.questions) >= 4


def test_parses_steps_blocks_and_code_fences(tmp_path):
    curriculum = load_curriculum(write_track(tmp_path, {"01-demo.md": GOOD}))
    lesson = curriculum.lesson("demo")
    assert not lesson.issues
    assert [s.title for s in lesson.steps] == ["First", "Second"]
    first = lesson.steps[0].blocks
    assert isinstance(first[0], TextBlock) and "## not a heading" in first[0].markdown
    assert isinstance(first[1], LabBlock) and first[1].params["shift"] == 10.0 and first[1].params["step"] == 25.0
    quiz = lesson.steps[1].blocks[0]
    assert isinstance(quiz, QuizBlock) and quiz.question.answer == 4.0


BROKEN = {
    "no front matter": ("## Step\n", 1, "front matter"),
    "unclosed front matter": ("+++\nid = \"x\"\n", 1, "never closed"),
    "bad toml": ('+++\nid = "x"\ntitle = \n+++\n## S\n', 3, "invalid TOML"),
    "text before step": ('+++\nid = "x"\ntitle = "X"\n+++\nhello\n## S\n', 5, "before the first"),
    "no steps": ('+++\nid = "x"\ntitle = "X"\n+++\n\n', 5, "at least one"),
    "unclosed lab": ('+++\nid = "x"\ntitle = "X"\n+++\n## S\n```lab softmax.stability\nshift = 1.0\n', 6, "never closed"),
    "bad id": ('+++\nid = "Bad Id"\ntitle = "X"\n+++\n## S\n', 1, "lowercase"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_malformed_lesson_reported_with_file_and_line_others_load(tmp_path, case):
    text, line, message = BROKEN[case]
    root = write_track(tmp_path, {"01-good.md": GOOD, "02-bad.md": text})
    curriculum = load_curriculum(root)
    bad = next(l for l in curriculum.lessons if l.file.endswith("02-bad.md"))
    assert bad.broken
    issue = bad.issues[0]
    assert issue.file == "lessons/t/02-bad.md" and issue.line == line and message in issue.message
    assert str(issue).startswith(f"lessons/t/02-bad.md:{line}: ")
    good = curriculum.lesson("demo")
    assert good is not None and not good.broken


BLOCK_ERRORS = {
    "unknown lab": ("```lab nope\n```\n", "unknown lab 'nope'"),
    "unknown param": ("```lab softmax.stability\nshfit = 1.0\n```\n", "unknown parameter(s) shfit"),
    "wrong type": ("```lab softmax.stability\nshift = \"big\"\n```\n", "shift must be a number"),
    "quiz kind": ('```quiz\nid = "a"\nkind = "essay"\nprompt = "p"\nexplanation = "e"\n```\n', "'kind' must be one of"),
    "quiz answer range": ('```quiz\nid = "a"\nkind = "single"\nprompt = "p"\nchoices = ["x", "y"]\nanswer = 2\nexplanation = "e"\n```\n', "outside the 2 choices"),
    "unknown probe": ('```quiz\nid = "a"\nkind = "probe"\nprobe = "nope"\nprompt = "p"\nexplanation = "e"\n```\n', "unknown probe"),
    "probe params": ('```quiz\nid = "a"\nkind = "probe"\nprobe = "softmax.logsumexp"\nparams = { values = "x" }\nprompt = "p"\nexplanation = "e"\n```\n', "values must be a list"),
}


@pytest.mark.parametrize("case", BLOCK_ERRORS)
def test_block_errors_show_in_their_step_and_in_check(tmp_path, case):
    block, message = BLOCK_ERRORS[case]
    text = '+++\nid = "x"\ntitle = "X"\n+++\n## S\nintro\n' + block
    curriculum = load_curriculum(write_track(tmp_path, {"01-x.md": text}))
    lesson = curriculum.lesson("x")
    assert not lesson.broken, "a bad block is shown in its step; the lesson still opens"
    errors = [b for b in lesson.steps[0].blocks if getattr(b, "error", None)]
    assert len(errors) == 1 and message in errors[0].error
    issues = check_curriculum(curriculum)
    assert len(issues) == 1 and issues[0].line == 7 and message in issues[0].message


def test_duplicates_strays_and_failing_probes(tmp_path):
    root = write_track(tmp_path, {"01-demo.md": GOOD, "02-again.md": GOOD, "notes.txt": "x"})
    probe = ('+++\nid = "p"\ntitle = "P"\n+++\n## S\n```quiz\nid = "a"\nkind = "probe"\nprobe = "positional.alibi_slope"\n'
             'params = { heads = 8, head = 9 }\nprompt = "p"\nexplanation = "e"\n```\n')
    write_track(root, {"01-p.md": probe}, track="u")
    (root / "stray.md").write_text("x")
    messages = [str(i) for i in check_curriculum(load_curriculum(root))]
    assert any("02-again.md:1: lesson id 'demo' is also used" in m for m in messages)
    assert any("notes.txt:1: stray file" in m for m in messages)
    assert any(m.startswith("lessons/stray.md:1: stray file") for m in messages)
    assert any("01-p.md:6: probe positional.alibi_slope failed" in m for m in messages)


def test_invalid_utf8_lesson(tmp_path):
    root = write_track(tmp_path, {})
    (root / "t" / "01-bin.md").write_bytes(b'+++\nid = "b"\n\xff\xfe\n+++\n')
    lesson = load_curriculum(root).lessons[0]
    assert lesson.broken and lesson.issues[0].line == 3 and "UTF-8" in lesson.issues[0].message


def test_missing_track_toml(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "01-demo.md").write_text(GOOD)
    curriculum = load_curriculum(tmp_path)
    assert curriculum.lesson("demo") is not None
    assert "missing track.toml" in str(curriculum.issues[0])
