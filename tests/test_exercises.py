"""Exercises: every reference passes its checks; wrong, crashing, endless and gaming solutions are caught."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from textual.widgets import OptionList, Static

from tests.conftest import plain_text
from workbench.app import WorkbenchApp
from workbench.exercises.catalog import EXERCISES
from workbench.exercises.run import CheckOutcome, RunReport, run_exercise
from workbench.exercises.workspace import (
    ensure_workspace,
    exercise_file,
    reset_exercise,
)
from workbench.progress import ProgressStore
from workbench.screens.exercises import ExercisesScreen

SIZE = (80, 24)
KERNELS = sorted(e.id for e in EXERCISES.values() if not e.package)
"""The single-file exercises; Build a GPT's packaged steps are tested in test_build_a_gpt.py."""

WRONG_SOFTMAX = """
import numpy as np

def softmax(x):
    e = np.exp(x)  # forgets to subtract the maximum
    return e / e.sum(axis=-1, keepdims=True)
"""
CRASHING = """
import faulthandler

def softmax(x):
    faulthandler._sigsegv()  # a real segfault (ctypes, the usual way to make one, is refused by the sandbox)
"""
ENDLESS = """
def softmax(x):
    while True:
        x = x + 1
"""
GREEDY = """
def softmax(x):
    return [0.0] * (10 ** 10)
"""
LAZY_WHEN_TIMED = """
import numpy as np

def softmax(x):
    if x.size > 100_000:  # the race input: skip the work
        return np.zeros_like(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
"""
STATEFUL = """
import numpy as np
calls = [0]

def softmax(x):
    calls[0] += 1
    if calls[0] > 12:  # correct while checked, wrong once the race has started
        return x
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
"""


@pytest.mark.parametrize("exercise_id", KERNELS)
def test_every_reference_solution_passes_its_checks(exercise_id):
    report = run_exercise(exercise_id, EXERCISES[exercise_id].solution, race=False)
    assert report.error is None, report.error
    assert report.passed, report.first_failure
    assert len(report.checks) >= 3


@pytest.mark.parametrize("exercise_id", KERNELS)
def test_every_starter_fails_clearly(exercise_id):
    report = run_exercise(exercise_id, EXERCISES[exercise_id].starter, race=False)
    assert not report.passed and report.first_failure is not None
    assert "ellipsis" in report.first_failure.detail.lower()


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "01_softmax.py"
    path.write_text(source)
    return path


def test_a_wrong_solution_reports_the_first_mismatch(tmp_path):
    report = run_exercise("softmax", write(tmp_path, WRONG_SOFTMAX), race=False)
    failed = [c.name for c in report.checks if not c.passed]
    assert "logits near +1000 (overflow)" in failed and not any(name.startswith("random 2×") for name in failed)
    assert "expected" in report.first_failure.detail and "index" in report.first_failure.detail


@pytest.mark.slow
def test_crash_endless_loop_and_huge_allocation_are_contained(tmp_path):
    crash = run_exercise("softmax", write(tmp_path, CRASHING), race=False)
    assert crash.error == "the process crashed (SIGSEGV)"
    started = time.perf_counter()
    endless = run_exercise("softmax", write(tmp_path, ENDLESS), race=False, timeout=2)
    assert "did not finish within 2 s" in endless.error and time.perf_counter() - started < 10
    greedy = run_exercise("softmax", write(tmp_path, GREEDY), race=False, memory_mb=1024)
    assert greedy.first_failure is not None and "MemoryError" in greedy.first_failure.detail
    syntax = run_exercise("softmax", write(tmp_path, "def softmax(x)\n"), race=False)
    assert "SyntaxError" in syntax.error
    missing = run_exercise("softmax", tmp_path / "nope.py", race=False)
    assert "does not exist" in missing.error


@pytest.mark.slow
def test_the_race_cannot_be_gamed(tmp_path):
    lazy = run_exercise("softmax", write(tmp_path, LAZY_WHEN_TIMED), seed=1)
    assert lazy.passed
    assert not lazy.race[0].matches and "all zeros" in lazy.race[0].mismatch
    stateful = run_exercise("softmax", write(tmp_path, STATEFUL), seed=1)
    assert stateful.passed
    assert not stateful.race[0].matches and "after the timed runs" in stateful.race[0].mismatch
    honest = run_exercise("softmax", EXERCISES["softmax"].solution, seed=1)
    assert [row.matches for row in honest.race] == [True] * len(honest.race)
    assert {"yours", "reference", "torch"} <= {row.name for row in honest.race}


def test_workspace_copies_once_and_reset_keeps_the_learners_version(tmp_path):
    created = ensure_workspace(tmp_path)
    assert len(created) == len(EXERCISES)
    path = exercise_file(tmp_path, EXERCISES["softmax"])
    path.write_text(WRONG_SOFTMAX)
    assert ensure_workspace(tmp_path) == []
    assert path.read_text() == WRONG_SOFTMAX
    backup = reset_exercise(tmp_path, EXERCISES["softmax"])
    assert backup is not None and backup.read_text() == WRONG_SOFTMAX
    assert path.read_text() == EXERCISES["softmax"].starter.read_text()


def test_exercise_progress_and_migration_from_version_1(tmp_path):
    db = tmp_path / "p.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE lesson_state (lesson_id TEXT PRIMARY KEY, last_step INTEGER NOT NULL, total_steps INTEGER NOT NULL, updated_at REAL NOT NULL);"
        "CREATE TABLE step_seen (lesson_id TEXT NOT NULL, step INTEGER NOT NULL, seen_at REAL NOT NULL, PRIMARY KEY (lesson_id, step));"
        "CREATE TABLE quiz_attempt (id INTEGER PRIMARY KEY AUTOINCREMENT, lesson_id TEXT NOT NULL, question_id TEXT NOT NULL, answer TEXT NOT NULL, correct INTEGER NOT NULL, score REAL NOT NULL, answered_at REAL NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); PRAGMA user_version=1;"
    )
    conn.close()
    store = ProgressStore.open(db)
    assert store.exercise_state("softmax").status == "new"
    assert store.record_exercise_run("softmax", False).status == "attempted"
    assert store.record_exercise_run("softmax", True).status == "solved"
    assert store.record_exercise_run("softmax", False).status == "solved"  # solved stays solved
    assert [store.reveal_hint("softmax", 2) for _ in range(3)] == [1, 2, 2]
    store.set_setting("exercise_workspace", "/somewhere")
    assert store.get_setting("exercise_workspace") == "/somewhere"
    store.close()


async def show_exercises(app, pilot, workspace: Path, **options) -> ExercisesScreen:
    """Open the exercises view on softmax over workspace, once the app has settled; returns the screen."""
    await pilot.pause()
    screen = ExercisesScreen(app.store, workspace, "softmax", **options)
    app.push_screen(screen)
    await pilot.pause()
    assert app.screen is screen
    return screen


async def wait_for_report(pilot, screen, exercise_id: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while exercise_id not in screen.reports or screen.checking:
        assert time.monotonic() < deadline, "no report arrived"
        await pilot.pause(0.1)
    return screen.reports.pop(exercise_id)


@pytest.mark.slow
async def test_watch_view_checks_on_save_and_survives_bad_code(tmp_path):
    workspace = tmp_path / "ws"
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, workspace, timeout=3)
        path = exercise_file(workspace, EXERCISES["softmax"])

        path.write_text(WRONG_SOFTMAX)
        report = await wait_for_report(pilot, screen, "softmax")
        assert not report.passed
        await pilot.pause()
        assert "First mismatch" in str(screen.query_one("#result", Static).render())

        path.write_text(CRASHING + "\n# crash\n")
        report = await wait_for_report(pilot, screen, "softmax")
        assert report.error == "the process crashed (SIGSEGV)"

        path.write_text(ENDLESS)
        report = await wait_for_report(pilot, screen, "softmax")
        assert "did not finish" in report.error

        await pilot.press("s")  # the reference is locked until solved
        assert not screen.showing_reference
        await pilot.press("h")
        assert app.store.exercise_state("softmax").hints == 1
        assert "Hint 1" in str(screen.query_one("#hints", Static).render())

        path.write_text(EXERCISES["softmax"].solution.read_text())
        report = await wait_for_report(pilot, screen, "softmax", 40)
        assert report.passed and report.race
        assert app.store.exercise_state("softmax").status == "solved"
        await pilot.press("s")
        assert screen.showing_reference
        assert screen.status_of("softmax") == "solved"
        assert "✓" in plain_text(screen.query_one(OptionList).get_option("softmax").prompt)

        # A save in another exercise's file moves the view there and checks it.
        other = exercise_file(workspace, EXERCISES["causal_mask"])
        other.write_text(EXERCISES["causal_mask"].solution.read_text())
        report = await wait_for_report(pilot, screen, "causal_mask", 40)
        assert screen.selected.id == "causal_mask" and report.passed

        await pilot.press("ctrl+r")
        await pilot.pause()
        assert other.read_text() == EXERCISES["causal_mask"].starter.read_text()
        assert list(workspace.glob("07_causal_mask.py.*.bak"))


@pytest.mark.slow
async def test_cancel_stops_a_check(tmp_path):
    workspace = tmp_path / "ws"
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, workspace, timeout=30)
        exercise_file(workspace, EXERCISES["softmax"]).write_text(ENDLESS)
        await pilot.press("r")
        await pilot.pause(1.0)
        assert screen.checking
        await pilot.press("x")
        started = time.monotonic()
        while screen.checking:
            assert time.monotonic() - started < 5
            await pilot.pause(0.1)
        assert app.store.exercise_state("softmax").attempts == 0  # a cancelled check is not an attempt


async def step_to_exercise_card(app, pilot) -> None:
    """Press n through the open lesson until a step shows its exercise card (at most six steps)."""
    from workbench.widgets.exercise_card import ExerciseCard

    for _ in range(6):
        if app.screen.query(ExerciseCard):
            return
        await pilot.press("n")
        await pilot.pause()


async def test_lesson_links_to_its_exercise(tmp_path):
    app = WorkbenchApp(open_lesson="logits-to-probabilities", store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        from workbench.widgets.exercise_card import ExerciseCard

        await step_to_exercise_card(app, pilot)
        card = app.screen.query_one(ExerciseCard)
        assert card.exercise.id == "softmax"
        card.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExercisesScreen) and app.screen.selected.id == "softmax"


@pytest.mark.parametrize("exercise_id", KERNELS)
def test_inputs_are_fresh_for_every_seed(exercise_id):
    import numpy as np

    from workbench.exercises.run import SPECS

    def fingerprint(seed: int) -> str:
        return repr([repr(args)[:20_000] for _, args in SPECS[exercise_id].cases(np.random.default_rng(seed))])

    assert fingerprint(1) != fingerprint(2)  # so an answer hard-coded for one run fails the next


REPORTS_ITS_LIMITS = """
import resource, signal
import numpy as np

for name in ("RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_CPU", "RLIMIT_CORE", "RLIMIT_FSIZE"):
    print(name, *resource.getrlimit(getattr(resource, name)))
print("ALARM", signal.getitimer(signal.ITIMER_REAL)[0] > 0)

def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
"""


def test_the_child_runs_under_limits_in_a_scratch_folder(tmp_path):
    """Issue 18: address space (mmap included), no new processes, CPU, no core files, and an alarm."""
    report = run_exercise("softmax", write(tmp_path, REPORTS_ITS_LIMITS), race=False, memory_mb=1024)
    assert report.passed, report.error
    limits = {line.split()[0]: line.split()[1:] for line in report.output.splitlines() if line.strip()}
    assert limits["RLIMIT_NPROC"] == ["0", "0"] and limits["RLIMIT_CORE"] == ["0", "0"]
    assert 0 < int(limits["RLIMIT_AS"][0]) < 2**40 and 0 < int(limits["RLIMIT_CPU"][0]) < 3600
    assert limits["ALARM"] == ["True"]


async def test_exercise_view_says_what_the_sandbox_does_and_does_not_isolate(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, tmp_path / "ws")
        text = str(screen.query_one("#sandbox", Static).render())
        assert text.count("How your code is checked") == 1  # a heading, said once
        assert "cannot import the workbench's own packages" in text
        assert "What this does not isolate" in text and "runs as you" in text


async def test_a_workspace_that_cannot_be_made_is_reported_not_a_crash(tmp_path):
    blocked = tmp_path / "ws"
    blocked.write_text("a file where the workspace should be")
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, blocked)
        assert any("Can't prepare the workspace" in str(n.message) for n in app._notifications)
        screen.action_reset()  # reset has nowhere to write either
        await pilot.pause()
        assert any("Can't restore the starter" in str(n.message) for n in app._notifications)
        assert blocked.read_text() == "a file where the workspace should be"


KV_WITH_ITS_OWN_ERROR = """
class CacheFull(ValueError):
    pass


def kv_cache_append(cache_k, cache_v, length, k_new, v_new):
    n = k_new.shape[0]
    if length + n > cache_k.shape[0]:
        raise CacheFull("no room")
    cache_k[length : length + n] = k_new
    cache_v[length : length + n] = v_new
    return length + n
"""


def test_in_place_results_and_raised_subclasses_cross_the_sandbox(tmp_path):
    """The KV append is judged on the caches the child sends back; a ValueError subclass is a ValueError."""
    path = tmp_path / "12_kv_cache_append.py"
    path.write_text(KV_WITH_ITS_OWN_ERROR)
    assert run_exercise("kv_cache_append", path, race=False).passed
    path.write_text(KV_WITH_ITS_OWN_ERROR.replace("cache_v[length : length + n] = v_new", "pass"))
    report = run_exercise("kv_cache_append", path, race=False)
    assert not report.passed and "cache_v position" in report.first_failure.detail


# ---- issue 20: readouts that say what ran, and a view that fits 80×24 -------------------------------------------


@pytest.mark.parametrize("exercise_id", KERNELS)
def test_check_labels_describe_the_inputs_actually_drawn(exercise_id):
    """Issue 20: a check labelled 'random 2×5' reported a (2, 6) shape; the race was 'on a larger input'."""
    import re

    import numpy as np

    from workbench.exercises.checks import SPECS, race_label

    spec = SPECS[exercise_id]
    for seed in range(12):
        for name, args in spec.cases(np.random.default_rng(seed)):
            arrays = [a for a in args if isinstance(a, np.ndarray)]
            if m := re.search(r"(\d+)×(\d+)", name):
                assert arrays and arrays[0].shape == (int(m[1]), int(m[2])), (name, arrays[0].shape)
            if m := re.fullmatch(r"n = (\d+)", name):
                assert args == (int(m[1]),), (name, args)
    race_args = spec.race_args(np.random.default_rng(0))
    label = race_label(spec, race_args)
    first = race_args[0]
    if isinstance(first, np.ndarray):
        assert "×".join(map(str, first.shape)) in label
    elif isinstance(first, list):
        assert f"{len(first):,} items" in label


def race_rows(case: str = "race on x = float32 512×4096"):
    from workbench_engines.profiling import Profile

    rows = [("yours", "python", 3.161, True), ("reference", "reference", 3.167, True),
            ("engines NumPy", "reference", 2.2, True), ("torch", "torch", 1.464, True),
            ("native C flash", "native", 1.273, True)]
    return [Profile(backend=b, wall_s=ms / 1e3, name=n, case=case, matches=ok, repeats=5,
                    ratios={"yours": 3.161 / ms}) for n, b, ms, ok in rows]


async def test_the_race_table_and_the_footer_fit_80_columns(tmp_path):
    """Issue 20: at 80×24 the race table lost its matches column and cut its case and backends, and the footer
    cut the Escape binding; every key stays listed in the help screen."""
    from dataclasses import replace

    from textual.widgets import Footer

    from workbench.exercises.run import CheckOutcome, RunReport
    from workbench.screens.help import HelpScreen
    from workbench.widgets.profile_panel import ProfilePanel

    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, tmp_path / "ws")
        rows = race_rows()
        rows[0] = replace(rows[0], matches=False, mismatch="the output is all zeros")
        screen.reports["softmax"] = RunReport("softmax", checks=[CheckOutcome("random 2×6", True)], race=rows,
                                              race_note="one thread each")
        screen.show()
        await pilot.pause()
        panel = screen.query_one("#race", ProfilePanel)
        width = panel.content_region.width
        assert 30 <= width < 50
        text = plain_text(panel.content, width)
        assert all(len(line.rstrip()) <= width for line in text.splitlines())
        assert "race on x = float32 512×4096" in " ".join(text.split())
        assert "matches" in text and "yours (python)" in text and "engines NumPy" in text and "(reference)" in text
        assert "yours does not match: the output is all zeros" in " ".join(text.split())
        assert "yours' median" in text

        footer = screen.query_one(Footer)
        assert footer.max_scroll_x == 0, "the footer is wider than the screen"
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {what for _, _, what in app.screen.rows()}
        for binding in ExercisesScreen.BINDINGS:
            assert binding.description in listed


async def test_the_exercise_list_wraps_a_long_title_under_itself(tmp_path):
    """Issue 20: 'Scaled dot-product attention' wrapped its last word to column 0, where it read as a track."""
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, tmp_path / "ws")
        options = screen.query_one(OptionList)
        prompt = options.get_option("attention").prompt
        lines = plain_text(prompt, options.scrollable_content_region.width).splitlines()
        assert len(lines) >= 2 and all(line.startswith("   ") for line in lines[1:]), lines


def test_a_task_reflows_its_prose_and_wraps_a_formula_under_its_indent():
    """Issue 20: at 44 columns the softmax formula's second half wrapped to column 0, and hard-wrapped docstring
    lines left ragged half lines."""
    from workbench.screens.exercises import task_renderable, task_text

    text = plain_text(task_renderable(task_text(EXERCISES["softmax"].starter)), 44)
    lines = [line.rstrip() for line in text.splitlines()]
    start = next(i for i, line in enumerate(lines) if "softmax(x)_i" in line)
    assert lines[start].startswith("    ") and lines[start + 1].startswith("    ") and "max_j" in lines[start + 1]
    rope = plain_text(task_renderable(task_text(EXERCISES["rope"].starter)), 44).splitlines()
    assert not any(0 < len(line.rstrip()) < 30 for line in rope[4:-2])  # no ragged half lines inside a paragraph


async def test_the_exercise_card_says_solved_after_solving(tmp_path):
    """Issue 20: the lesson's exercise card said '(new)' after the exercise was solved in the exercise view."""
    from workbench.widgets.exercise_card import ExerciseCard

    app = WorkbenchApp(open_lesson="logits-to-probabilities", store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await step_to_exercise_card(app, pilot)
        card = app.screen.query(ExerciseCard).first()
        assert "new" in plain_text(card.content)
        unfocused = card.styles.border_top[0]
        card.focus()
        await pilot.pause()
        assert card.styles.border_top[0] != unfocused  # focus shows without colour (NO_COLOR)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExercisesScreen)
        app.store.record_exercise_run(card.exercise.id, True)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ExercisesScreen)
        text = plain_text(card.content)
        assert "solved" in text and "new" not in text


WRONG_LOGSUMEXP = """
def logsumexp(x):
    return x
"""


@pytest.mark.slow
async def test_every_saved_file_is_checked_one_at_a_time(tmp_path):
    """Issue 20: a save elsewhere replaced the check in progress (an endless loop then showed 'Not checked');
    now every save joins a queue, checks run one at a time, and the list shows each state."""
    workspace = tmp_path / "ws"
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, workspace, timeout=2)
        exercise_file(workspace, EXERCISES["softmax"]).write_text(ENDLESS)
        await pilot.pause(1.0)
        assert screen.current == "softmax" and screen.checking
        exercise_file(workspace, EXERCISES["logsumexp"]).write_text(WRONG_LOGSUMEXP)
        await pilot.pause(1.0)
        assert screen.current == "softmax" and screen.queue == ["logsumexp"]
        assert screen.status_of("logsumexp") == "queued"
        assert "…" in plain_text(screen.query_one(OptionList).get_option("logsumexp").prompt)
        deadline = time.monotonic() + 30
        while screen.checking or screen.queue:
            assert time.monotonic() < deadline, "the queue did not drain"
            assert len([w for w in app.workers if w.group == "exercise-check" and w.is_running]) <= 1
            await pilot.pause(0.1)
        assert "did not finish" in screen.reports["softmax"].error
        assert not screen.reports["logsumexp"].passed and screen.reports["logsumexp"].error is None
        assert app.store.exercise_state("softmax").status == "attempted"
        assert app.store.exercise_state("logsumexp").status == "attempted"
        assert screen.selected.id == "logsumexp"  # the view followed the latest save


def test_each_exercise_is_filed_under_the_track_of_the_lesson_that_links_it():
    """Issue 20: the KV-cache append exercise sat under "Decoding" (and rope under "Attention") in the exercise
    view and the palette, away from the lesson that sets it."""
    from workbench.curriculum import load_curriculum
    from workbench.curriculum.model import ExerciseBlock
    from workbench.exercises.catalog import TRACK_ORDER, by_track

    curriculum = load_curriculum()
    linked: dict[str, set[str]] = {}
    for track in curriculum.tracks:
        for lesson in track.lessons:
            for step in lesson.steps:
                for block in step.blocks:
                    if isinstance(block, ExerciseBlock):
                        linked.setdefault(block.exercise_id, set()).add(track.title)
    assert set(linked) == set(EXERCISES)
    assert {eid: {e.track} for eid, e in EXERCISES.items()} == linked
    course = [t.title for t in curriculum.tracks]
    assert list(TRACK_ORDER) == sorted(TRACK_ORDER, key=course.index)
    assert sum(len(exercises) for _, exercises in by_track()) == len(EXERCISES)
    assert EXERCISES["kv_cache_append"].track == "KV cache and serving"


class HeldCheck:
    """A check worker whose end the test decides: its state flips when the test says, and its StateChanged
    message arrives only when the test posts it, in whatever order a busy event loop would deliver it."""

    def __init__(self, exercise_id: str) -> None:
        from textual.worker import WorkerState

        self.exercise_id = exercise_id
        self.state = WorkerState.RUNNING
        self.result: RunReport | None = None
        self.error: BaseException | None = None
        self.is_cancelled = False

    @property
    def is_running(self) -> bool:
        from textual.worker import WorkerState

        return self.state == WorkerState.RUNNING

    def cancel(self) -> None:
        self.is_cancelled = True  # as Textual's: a finished worker keeps its state and its result

    def finish(self, passed: bool) -> None:
        from textual.worker import WorkerState

        self.result = RunReport(self.exercise_id, checks=[CheckOutcome("matches the reference", passed)])
        self.state = WorkerState.SUCCESS


async def test_a_check_that_ends_before_its_message_arrives_is_never_dropped(tmp_path, monkeypatch):
    """Issue 20: a check worker's state flips to SUCCESS before its StateChanged message is handled; a save
    polled in between started the next check at once, and the first result, from a worker no longer the
    current one, was dropped. Driven in that order, deterministically, every result is recorded once."""
    from textual.worker import Worker, WorkerState

    workspace = tmp_path / "ws"
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, workspace)
        started: list[HeldCheck] = []

        def run_worker(work, **options):
            started.append(HeldCheck(options["description"].removeprefix("check ")))
            return started[-1]

        monkeypatch.setattr(screen, "run_worker", run_worker)

        def arrive(worker: HeldCheck, state: WorkerState) -> None:
            screen.post_message(Worker.StateChanged(worker, state))

        await pilot.press("r")
        await pilot.pause()
        assert [w.exercise_id for w in started] == ["softmax"] and screen.status_of("softmax") == "checking"
        first = started[0]
        first.finish(passed=True)  # the state flips; its message is not handled yet
        other = exercise_file(workspace, EXERCISES["causal_mask"])
        other.write_text(other.read_text() + "\n# saved\n")
        screen._poll()
        assert len(started) == 1 and screen.queue == ["causal_mask"]  # waits for the first result
        arrive(first, WorkerState.RUNNING)  # a late RUNNING, after the state already flipped
        await pilot.pause()
        assert len(started) == 1 and "softmax" not in screen.reports
        arrive(first, WorkerState.SUCCESS)
        await pilot.pause()
        assert screen.reports["softmax"].passed and app.store.exercise_state("softmax").status == "solved"
        assert [w.exercise_id for w in started] == ["softmax", "causal_mask"]
        second = started[1]
        await pilot.press("x")  # cancels the second check, which has already ended with a result
        second.finish(passed=False)
        arrive(first, WorkerState.CANCELLED)  # a stray message of the first, handled already: ignored
        arrive(second, WorkerState.SUCCESS)
        await pilot.pause()
        assert not screen.checking and not screen.queue
        assert screen.reports["causal_mask"].checks and not screen.reports["causal_mask"].passed
        assert app.store.exercise_state("softmax").attempts == 1
        assert app.store.exercise_state("causal_mask").attempts == 1


async def test_a_check_keeps_a_wrapped_title_whole_and_counts_one_save_in_the_singular(tmp_path):
    """Issue 20 tour: after a check the list was rebuilt while empty, so without its scrollbar, and
    "Encode a piece with / ranks" came back as one line without "ranks"; the heading said "1 checked saves"."""
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_exercises(app, pilot, tmp_path / "ws")
        options = screen.query_one(OptionList)

        def shown() -> list[str]:
            return [options.render_line(y).text.strip() for y in range(options.size.height)]

        before = shown()
        assert "ranks" in before and options.show_vertical_scrollbar, before
        await pilot.press("r")
        report = await wait_for_report(pilot, screen, "softmax")
        await pilot.pause()
        assert not report.passed
        after = shown()
        assert after[after.index("· Encode a piece with") + 1] == "ranks", after
        assert [line.lstrip("·✗ ") for line in after] == [line.lstrip("·✗ ") for line in before]
        heading = str(screen.query_one("#heading", Static).render())
        assert "1 checked save\n" in heading, heading
