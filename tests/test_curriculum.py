"""The lesson loader and `lessons check`: good lessons load, bad ones say file:line."""

from __future__ import annotations

import pytest

from tests.conftest import write_track
from workbench.curriculum import LabBlock, QuizBlock, TextBlock, load_curriculum
from workbench.curriculum.check import check_curriculum
from workbench.curriculum.model import Curriculum

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


TRACKS_WITHOUT_C = {"interpretability", "finetuning"}
"""Tracks whose labs and probes call no C kernel: their check would repeat unchanged in the no-native run."""
TRACKS_NEEDING_C = {"embeddings"}
"""Tracks whose check the no-native run skips, saying so: its vector-search probes need the C build (HNSW has no
reference path; their ``needs`` leave them out there) and the rest computes on NumPy in the main run already."""


def _bundled_tracks() -> list:
    marks = {**{track: [pytest.mark.no_c_path] for track in TRACKS_WITHOUT_C},
             **{track: [pytest.mark.native] for track in TRACKS_NEEDING_C}}
    return [pytest.param(t.id, marks=marks.get(t.id, [])) for t in load_curriculum().tracks]


@pytest.mark.parametrize("track", _bundled_tracks())
def test_bundled_track_is_clean(track):
    """Every lesson of the track loads, every lab resolves and every probe computes a finite number."""
    curriculum = load_curriculum()
    assert check_curriculum(Curriculum([t for t in curriculum.tracks if t.id == track])) == []


def test_bundled_curriculum_is_clean():
    curriculum = load_curriculum()
    assert curriculum.issues == [] and len(curriculum.tracks) >= 12
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
    assert issue.file == f"{root}/t/02-bad.md" and issue.line == line and message in issue.message
    assert str(issue).startswith(f"{root}/t/02-bad.md:{line}: ")
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
    assert any(m.startswith(f"{root}/stray.md:1: stray file") for m in messages)
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


# ---- issue 18: no malformed lesson crashes the loader ------------------------------------------

HEAD = '+++\nid = "x"\ntitle = "X"\n+++\n## S\n'
QUIZ = 'id = "a"\nkind = "single"\nprompt = "p"\nchoices = ["x", "y"]\nanswer = 0\nexplanation = "e"\n'
DEEP = "v = " + "[" * 3000 + "]" * 3000 + "\n"
MALFORMED = {
    "quiz why = 5": (HEAD + "```quiz\n" + QUIZ + "why = 5\n```\n", 6, "'why' must be a list of strings"),
    "why of numbers": (HEAD + "```quiz\n" + QUIZ + "why = [1, 2]\n```\n", 6, "'why' must be a list of strings"),
    "deep front matter": ('+++\nid = "x"\ntitle = "X"\n' + DEEP + "+++\n## S\n", 2, "nested too deeply"),
    "deep lab body": (HEAD + "```lab softmax.stability\n" + DEEP + "```\n", 7, "nested too deeply"),
    "deep dotted key": (HEAD + "```lab softmax.stability\n" + "a" + ".b" * 3000 + " = 1\n```\n", 7, "nested more than"),
    "5000 digits": (HEAD + "```lab softmax.stability\nshift = 1.0\nstep = " + "9" * 5000 + "\n```\n", 8, "too many digits"),
    "nan shift": (HEAD + "```lab softmax.stability\nshift = nan\n```\n", 6, "shift must be a finite number"),
    "inf shift": (HEAD + "```lab softmax.stability\nshift = inf\n```\n", 6, "shift must be a finite number"),
    "escape in a title": ('+++\nid = "x"\ntitle = "a\\u001b]0;owned\\u0007"\n+++\n## S\n', 1, "control character"),
    "escape in a heading": ('+++\nid = "x"\ntitle = "X"\n+++\n## S\x1b[2J\n', 5, "control character"),
    "minutes": ('+++\nid = "x"\ntitle = "X"\nminutes = 100000000000\n+++\n## S\n', 1, "'minutes' must be"),
    "long value in message": (HEAD + "```lab softmax.stability\nshift = \"" + "x" * 100_000 + "\"\n```\n", 6,
                              "shift must be a number"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_lesson_data_is_a_file_line_issue_not_a_crash(tmp_path, case):
    """Issue 18: each of these used to raise out of load_curriculum (no catalog at all)."""
    text, line, message = MALFORMED[case]
    root = write_track(tmp_path, {"01-demo.md": GOOD, "02-bad.md": text})
    curriculum = load_curriculum(root)
    assert curriculum.lesson("demo") is not None and not curriculum.lesson("demo").broken
    bad = next(l for l in curriculum.lessons if l.file.endswith("02-bad.md"))
    issue = next(i for i in bad.issues)
    assert issue.line == line and message in issue.message, str(issue)
    assert len(str(issue)) < 400, "a value the lesson wrote is shown cut to a line"
    assert all(str(i).startswith(f"{root}/t/02-bad.md:") for i in check_curriculum(curriculum))


@pytest.mark.parametrize("meta", [DEEP, "order = " + "1" * 5000 + "\n", b'title = "\xff"\n', "order = 10000000000\n"],
                         ids=["deep", "5000 digits", "not UTF-8", "order out of range"])
def test_a_broken_track_toml_is_an_issue_and_its_lessons_load(tmp_path, meta):
    """Issue 18: a deep, huge-integer or non-UTF-8 track.toml crashed the loader."""
    root = write_track(tmp_path, {"01-demo.md": GOOD})
    path = root / "t" / "track.toml"
    path.write_bytes(meta if isinstance(meta, bytes) else meta.encode())
    curriculum = load_curriculum(root)
    assert curriculum.lesson("demo") is not None
    assert [str(i).split(":")[0] for i in curriculum.issues] == [str(path)]


@pytest.mark.parametrize("separator", ["\x0c", "\x85", "\u2028", "\u2029", "\x1c", "\r"])
def test_line_numbers_count_newlines_only(tmp_path, separator):
    """Issue 18: str.splitlines also breaks at these, so every later line number drifted."""
    text = '+++\nid = "x"\ntitle = "X"\n+++\n## S\nprose with a' + separator + 'character\n```lab nope\n```\n'
    lesson = load_curriculum(write_track(tmp_path, {"01-x.md": text})).lesson("x")
    assert [i.line for i in lesson.issues] == [7]


def test_a_byte_order_mark_and_crlf_are_allowed(tmp_path):
    """Issue 18: a UTF-8 BOM was rejected as "no front matter"."""
    root = write_track(tmp_path, {})
    (root / "t" / "01-demo.md").write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    (root / "t" / "track.toml").write_bytes(b'\xef\xbb\xbftitle = "T"\norder = 1\nsummary = "s"\n')
    curriculum = load_curriculum(root)
    lesson = curriculum.lesson("demo")
    assert lesson is not None and not lesson.issues and not curriculum.issues
    assert [s.line for s in lesson.steps] == [7, 18]


def test_an_oversized_lesson_costs_only_itself(tmp_path):
    root = write_track(tmp_path, {"01-demo.md": GOOD, "02-big.md": GOOD + "x" * 1_000_001})
    curriculum = load_curriculum(root)
    big = next(l for l in curriculum.lessons if l.file.endswith("02-big.md"))
    assert big.broken and "larger than" in big.issues[0].message
    assert not curriculum.lesson("demo").broken


def test_a_loader_bug_costs_one_lesson_not_the_catalog(tmp_path, monkeypatch):
    """Issue 18: any exception while parsing one lesson is its issue, with the file; the others load."""
    from workbench.curriculum import loader

    real = loader._steps

    def failing(lines, start, lesson):
        if lesson.id == "x":
            raise KeyError("boom")
        return real(lines, start, lesson)

    monkeypatch.setattr(loader, "_steps", failing)
    curriculum = load_curriculum(write_track(tmp_path, {"01-demo.md": GOOD, "02-x.md": HEAD}))
    bad = next(l for l in curriculum.lessons if l.file.endswith("02-x.md"))
    assert bad.broken and "KeyError" in bad.issues[0].message
    assert not curriculum.lesson("demo").broken


def test_a_file_name_that_is_not_utf8_is_shown_printable(tmp_path):
    """Found attacking issue 18: such a name reached messages as lone surrogates, which no terminal write takes."""
    root = write_track(tmp_path, {"01-demo.md": GOOD})
    (root / "t" / b"\xff\xfe.md".decode("utf-8", "surrogateescape")).write_text("x")
    issues = check_curriculum(load_curriculum(root))
    assert len(issues) == 1 and "stray file" in issues[0].message
    str(issues[0]).encode("utf-8")  # strict: raises on a lone surrogate


def test_check_reports_a_question_that_passes_a_blank_zero(tmp_path):
    """Issue 20: decoding/01 asked for 0.0065 at ±0.01, so typing 0 was marked right. The check now finds any
    numeric or probe question whose tolerance is wider than its non-zero answer (the bundled tracks' checks
    above run it on every lesson)."""
    quiz = ('```quiz\nid = "{id}"\nkind = "{kind}"\nprompt = "p"\nexplanation = "e"\n{body}\n```\n')
    loose_number = quiz.format(id="n", kind="numeric", body="answer = 0.0065\ntolerance = 0.01")
    tight_number = quiz.format(id="m", kind="numeric", body="answer = 0.0065\ntolerance = 0.001")
    loose_probe = quiz.format(id="q", kind="probe", body='probe = "positional.alibi_slope"\n'
                              "params = { heads = 8, head = 7 }\ntolerance = 1")
    text = '+++\nid = "x"\ntitle = "X"\n+++\n## S\nintro\n' + loose_number + tight_number + loose_probe
    messages = [i.message for i in check_curriculum(load_curriculum(write_track(tmp_path, {"01-x.md": text})))]
    assert len(messages) == 2, messages
    assert "question n accepts 0 for its answer 0.0065" in messages[0]
    assert messages[1].startswith("question q accepts 0 for its answer 0.0039")


def test_check_reports_a_formula_too_wide_for_80_columns(tmp_path):
    """Found touring issue 16's lessons at 80×24: a 91-character formula was cut, not wrapped."""
    wide = "    L = " + "x + " * 20 + "x"
    text = ('+++\nid = "x"\ntitle = "X"\n+++\n## S\nintro\n\n' + wide + "\n\n    short = 1\n\n```\n"
            + wide.strip() * 2 + '\n```\n```quiz\nid = "a"\nkind = "single"\nprompt = "' + "p" * 90
            + '"\nchoices = ["x", "y"]\nanswer = 0\nexplanation = "e"\n```\n')
    issues = check_curriculum(load_curriculum(write_track(tmp_path, {"01-x.md": text})))
    assert [(i.line, "is cut at 80 columns" in i.message) for i in issues] == [(8, True), (13, True)]


def test_why_subwords_probe_grades_what_its_lab_shows():
    """Issue 20: "Why subwords" must accept the bytes per token its own lab prints at 4,000 tokens.

    The lab's figure is recomputed the way the lab computes it (its corpus
    source and its whole list of sizes, from the lesson's own lab block), and
    the probe question of the same step must compute the same value and grade
    it, as printed to two decimals, correct.
    """
    from workbench.labs.tokenizer_labs import _corpus_source
    from workbench.labs.registry import LABS
    from workbench.probes import compute_probe
    from workbench_engines.tokenizers.explain import vocab_sweep

    lesson = load_curriculum().lesson("why-subwords")
    step = next(s for s in lesson.steps if any(isinstance(b, LabBlock) and b.lab_id == "tokenize.vocab_sweep"
                                                for b in s.blocks))
    lab = next(b for b in step.blocks if isinstance(b, LabBlock))
    question = next(b.question for b in step.blocks
                    if isinstance(b, QuizBlock) and b.question and b.question.probe == "bpe.bytes_per_token")
    params = LABS[lab.lab_id].validate(lab.params)
    shown = vocab_sweep(_corpus_source(params), [int(v) for v in params["sizes"]])
    size = question.params["vocab_size"]
    in_lab = next(p.bytes_per_token for p in shown.points if p.vocab_size == size)
    expected = compute_probe(question.probe, question.params)
    assert expected == pytest.approx(in_lab, rel=1e-9)  # the same split of the same text, not merely close
    assert question.grade(round(in_lab, 2), expected).correct


def test_a_step_that_points_at_the_lab_has_one():
    """Issue 20: "Press ctrl+n in the lab" stood in tokenization/01's third step, which had no lab.

    A step without a lab may send the learner to another step's lab by name
    ("the first step's lab"), but must not speak of "the lab" as if it were on
    screen.
    """
    import re

    on_screen = re.compile(r"\b(?:in|into) the lab\b|\bthe lab (?:below|above)\b", re.I)
    stray = []
    for lesson in load_curriculum().lessons:
        for number, step in enumerate(lesson.steps, start=1):
            if any(isinstance(block, LabBlock) for block in step.blocks):
                continue
            for block in step.blocks:
                if isinstance(block, TextBlock):
                    stray += [f"{lesson.id} step {number}: {m.group(0)!r}"
                              for m in on_screen.finditer(" ".join(block.markdown.split()))]
    assert stray == []


def test_every_multiple_choice_question_says_why_for_each_choice():
    """Issue 20: after answering, a learner sees why each choice is right or wrong, including a right one
    they missed; the view can only show that when the question gives a why per choice."""
    silent = [f"{lesson.id}/{question.id}" for lesson in load_curriculum().lessons for question in lesson.questions
              if question.kind == "multiple" and len(question.why) != len(question.choices)]
    assert silent == []
