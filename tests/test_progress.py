"""The progress store: persistence, two processes at once, kills mid-write, corruption.

The tests named ``..._issue18`` guard issue 18: whatever the file, the folder,
the disk or another program does, opening and using the store never raises,
never loses or hides a record without saying so, and never blocks its caller
on SQLite's lock.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workbench.progress import SCHEMA_VERSION, ProgressStore

pytestmark = pytest.mark.no_c_path  # the SQLite store only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


def test_steps_answers_and_resume(tmp_path):
    path = tmp_path / "p.db"
    store = ProgressStore.open(path)
    store.mark_step("tour", 0, 4)
    store.mark_step("tour", 2, 4)
    store.record_answer("tour", "q1", 1, True, 1.0)
    store.record_answer("tour", "q2", [0, 2], False, 0.0)
    store.close()
    store = ProgressStore.open(path)
    assert store.notice is None
    assert store.last_step("tour") == 2 and store.last_lesson() == "tour"
    assert store.latest_answer("tour", "q2").answer == [0, 2]
    p = store.lesson_progress("tour", ["q1", "q2", "q3"])
    assert (p.steps_seen, p.total_steps, p.answered, p.correct) == (2, 4, 2, 1)
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _writer(path: str, who: int, count: int) -> None:
    from pathlib import Path

    store = ProgressStore.open(Path(path))
    for i in range(count):
        store.record_answer("race", f"{who}-{i}", i, True, 1.0)
        store.mark_step("race", i % 5, 5)
    store.close()


def test_two_processes_writing_at_once(tmp_path):
    path = str(tmp_path / "p.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, who, 150)) for who in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    store = ProgressStore.open(tmp_path / "p.db")
    assert store.attempt_count("race") == 300


KILLER = """
import sys
from pathlib import Path
from workbench.progress import ProgressStore
store = ProgressStore.open(Path(sys.argv[1]))
print("ready", flush=True)
i = 0
while True:
    store.record_answer("kill", f"q{i}", i, True, 1.0)
    i += 1
"""


def test_killed_mid_write_loses_nothing_committed(tmp_path):
    path = tmp_path / "p.db"
    store = ProgressStore.open(path)
    store.record_answer("kept", "q", 1, True, 1.0)
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    while store.attempt_count("kill") < 50:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store.close()
    store = ProgressStore.open(path)
    assert store.notice is None
    assert store.latest_answer("kept", "q").correct
    assert store.attempt_count("kill") >= 50


def test_corrupt_database_is_set_aside(tmp_path):
    path = tmp_path / "p.db"
    path.write_bytes(b"this is not an sqlite database" * 100)
    store = ProgressStore.open(path)
    assert store.notice and "moved to" in store.notice
    store.mark_step("tour", 1, 2)
    assert store.last_step("tour") == 1
    assert len(list(tmp_path.glob("p.db.corrupt-*"))) == 1


def _filled(path: Path) -> Path:
    store = ProgressStore.open(path)
    store.mark_step("tour", 3, 5)
    store.record_answer("tour", "q1", 42, True, 1.0)
    assert store.close() is None
    return path


def _wait_for(condition, what: str, limit: float = 30.0) -> None:
    """Poll condition; the limit only guards against a hang."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_newer_schema_is_left_untouched_and_the_session_runs_unsaved_issue18(tmp_path):
    path = tmp_path / "p.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    store = ProgressStore.open(path)
    assert not store.saved and "newer workbench" in store.notice
    store.mark_step("tour", 1, 2)
    assert store.last_step("tour") == 1
    assert "not saved" in store.close()
    assert path.read_bytes() == before and not list(tmp_path.glob("*.corrupt-*"))


@pytest.mark.parametrize("damage", [
    "DROP TABLE exercise_state",
    "DROP TABLE quiz_attempt; CREATE TABLE quiz_attempt (id INTEGER PRIMARY KEY, note TEXT)",
])
def test_missing_or_wrong_tables_at_the_current_version_are_set_aside_issue18(tmp_path, damage):
    path = _filled(tmp_path / "p.db")
    conn = sqlite3.connect(path)
    conn.executescript(damage)
    conn.close()
    store = ProgressStore.open(path)
    store.record_exercise_run("softmax", True)
    assert store.exercise_state("softmax").status == "solved"
    assert store.saved and "moved to" in store.notice
    assert store.close() is None
    [aside] = tmp_path.glob("p.db.corrupt-*")
    kept = sqlite3.connect(aside).execute("SELECT last_step FROM lesson_state").fetchall()
    assert kept == [(3,)]  # the learner's record is still there, set aside


def test_a_second_set_aside_in_the_same_second_keeps_the_first_issue18(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda *args: "20260101-000000")
    path = tmp_path / "p.db"
    for text in (b"first damaged file " * 100, b"second damaged file " * 100):
        path.unlink(missing_ok=True)
        path.write_bytes(text)
        ProgressStore.open(path).close()
    kept = sorted(p.read_bytes()[:6] for p in tmp_path.glob("p.db.corrupt-*") if not p.name.endswith(("-wal", "-shm")))
    assert kept == [b"first ", b"second"]


def _open_together(path: str, who: int, barrier) -> None:
    barrier.wait(30)
    store = ProgressStore.open(Path(path))
    store.record_answer("race", f"q{who}", who, True, 1.0)
    assert store.close() is None


def test_sessions_opening_a_damaged_file_together_set_it_aside_once_issue18(tmp_path):
    ctx = multiprocessing.get_context("fork")
    sessions = 6
    for trial in range(4):
        path = tmp_path / f"p{trial}.db"
        path.write_bytes(b"this is not an sqlite database" * 100)
        barrier = ctx.Barrier(sessions)
        procs = [ctx.Process(target=_open_together, args=(str(path), who, barrier)) for who in range(sessions)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [proc.exitcode for proc in procs] == [0] * sessions
        assert len(list(tmp_path.glob(f"p{trial}.db.corrupt-*"))) == 1
        store = ProgressStore.open(path)
        assert store.attempt_count("race") == sessions  # no session wrote into a file another moved aside
        store.close()


def test_a_dangling_symlink_is_reported_not_replaced_issue18(tmp_path):
    link = tmp_path / "p.db"
    link.symlink_to(tmp_path / "unmounted" / "progress.db")
    store = ProgressStore.open(link)
    assert not store.saved and "does not exist" in store.notice
    store.mark_step("tour", 0, 1)
    assert store.last_step("tour") == 0
    store.close()
    assert link.is_symlink() and not list(tmp_path.glob("p.db.corrupt-*"))


def test_a_symlink_to_a_new_file_in_an_existing_folder_is_followed(tmp_path):
    (tmp_path / "synced").mkdir()
    link = tmp_path / "p.db"
    link.symlink_to(tmp_path / "synced" / "progress.db")
    store = ProgressStore.open(link)
    store.mark_step("tour", 2, 3)
    assert store.close() is None
    assert store.saved and store.notice is None
    assert link.is_symlink()
    assert sqlite3.connect(tmp_path / "synced" / "progress.db").execute("SELECT last_step FROM lesson_state").fetchall() == [(2,)]


def test_a_lock_held_past_the_busy_timeout_neither_blocks_nor_crashes_issue18(tmp_path):
    path = _filled(tmp_path / "p.db")
    store = ProgressStore.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO meta VALUES ('other', 'program')")
    store.mark_step("tour", 4, 5)  # returns while the lock is still held
    store.record_answer("tour", "q2", 7, False, 0.0)
    assert store.last_step("tour") == 3  # reads still work; the change is waiting, not lost
    _wait_for(lambda: store.told, "the learner to be told saving is stuck")
    assert "can't be saved right now" in store.told[0] and store.failure
    other.execute("COMMIT")
    other.close()
    _wait_for(lambda: store.failure is None, "the waiting changes to be written")
    assert "saved again" in store.told[-1]
    assert store.last_step("tour") == 4 and store.latest_answer("tour", "q2").answer == 7
    assert store.close() is None


def _disk_full(monkeypatch) -> None:
    """Every new connection may not grow its file: SQLite's own SQLITE_FULL, as on a full disk."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={max(pages, 1)}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_a_full_disk_keeps_the_changes_and_says_so_issue18(tmp_path, monkeypatch):
    path = _filled(tmp_path / "p.db")
    _disk_full(monkeypatch)
    store = ProgressStore.open(path)
    big = "x" * 20_000  # needs new pages
    store.record_answer("tour", "essay", big, True, 1.0)
    _wait_for(lambda: store.told, "the learner to be told")
    assert "full" in store.told[0] and "full" in store.failure
    monkeypatch.undo()  # space freed
    _wait_for(lambda: store.failure is None, "the kept change to be written")
    assert store.latest_answer("tour", "essay").answer == big
    assert store.close() is None


@pytest.fixture
def log_text(caplog):
    """What the workbench logger wrote during the test (it doesn't propagate once the app has started logging)."""
    from workbench.logs import logger

    logger.addHandler(caplog.handler)
    yield lambda: caplog.text
    logger.removeHandler(caplog.handler)


def test_changes_that_never_fit_are_named_when_closing_issue18(tmp_path, monkeypatch, log_text):
    path = _filled(tmp_path / "p.db")
    _disk_full(monkeypatch)
    store = ProgressStore.open(path)
    store.record_answer("tour", "essay", "x" * 20_000, True, 1.0)
    store.mark_step("tour", 4, 5)
    message = store.close()
    assert message and message.startswith("2 change(s)") and "full" in message
    assert "answer tour/essay" in log_text()  # the log keeps what was lost


def test_a_table_dropped_under_an_open_store_reads_as_empty_issue18(tmp_path):
    path = _filled(tmp_path / "p.db")
    store = ProgressStore.open(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE exercise_state")
    conn.commit()
    conn.close()
    assert store.exercise_state("softmax").status == "new"
    assert store.told and "could not be read" in store.told[0]
    store.close()


def _permissions_enforced() -> bool:
    """False for root (or any process holding CAP_DAC_OVERRIDE), which reads and writes whatever the mode says."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder, "probe")
        probe.touch(mode=0o000)
        try:
            probe.open("rb").close()
        except PermissionError:
            return True
        return False


needs_permissions = pytest.mark.skipif(not _permissions_enforced(), reason="this user ignores file permissions")


@needs_permissions
def test_a_read_only_folder_shows_the_progress_and_runs_unsaved_issue18(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    path = _filled(folder / "p.db")
    folder.chmod(0o555)
    try:
        store = ProgressStore.open(path)
        assert not store.saved and "read-only" in store.notice
        assert store.last_step("tour") == 3  # earlier progress still shown
        store.mark_step("tour", 4, 5)
        assert store.last_step("tour") == 4
        assert "not saved" in store.close()
        fresh = ProgressStore.open(folder / "new.db")  # nothing there yet, nothing can be created
        assert not fresh.saved and "read-only" in fresh.notice
        fresh.close()
    finally:
        folder.chmod(0o755)
    assert sorted(p.name for p in folder.iterdir()) == ["p.db"]


@needs_permissions
@pytest.mark.parametrize("mode", [0o444, 0o000])
def test_a_read_only_or_unreadable_file_is_not_set_aside_issue18(tmp_path, mode):
    path = _filled(tmp_path / "p.db")
    before = path.read_bytes()
    path.chmod(mode)
    try:
        store = ProgressStore.open(path)
        shown = store.last_step("tour")
        store.record_exercise_run("softmax", False)
        store.close()
    finally:
        path.chmod(0o644)
    assert path.read_bytes() == before and not list(tmp_path.glob("p.db.corrupt-*"))
    assert shown == (3 if mode else None)
    assert not store.saved and "permissions" in store.notice


@needs_permissions
def test_a_data_folder_that_cannot_be_created_is_reported_issue18(tmp_path, monkeypatch):
    from workbench.paths import progress_db_path

    tmp_path.joinpath("ro").mkdir(mode=0o555)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "ro" / "home"))
    store = ProgressStore.open(progress_db_path())
    assert not store.saved and "does not exist" in store.notice
    store.close()


def test_the_exercises_cli_says_what_happened_to_the_database_issue18(tmp_path, capsys):
    from workbench.cli import main
    from workbench.paths import progress_db_path

    path = progress_db_path()
    path.write_bytes(b"this is not an sqlite database" * 100)
    assert main(["exercises", "list"]) == 0
    assert "moved to" in capsys.readouterr().err

    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    assert main(["exercises", "list"]) == 0  # no ProgressError traceback
    err = capsys.readouterr().err
    assert "newer workbench" in err and "Traceback" not in err


LESSON = '''+++
id = "steps"
title = "Steps"
+++

## One
First.

## Two
Second.
'''


async def test_the_app_tells_the_learner_when_another_program_holds_the_lock_issue18(tmp_path):
    from tests.conftest import write_track
    from workbench.app import WorkbenchApp

    lessons = write_track(tmp_path / "lessons", {"01-steps.md": LESSON})
    db = _filled(tmp_path / "p.db")
    app = WorkbenchApp(open_lesson="steps", lessons_root=lessons, store_path=db)
    shown: list[str] = []
    app.notify = lambda message, **options: shown.append(message)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        other.execute("INSERT INTO meta VALUES ('other', 'program')")
        deadline = time.monotonic() + 30
        while getattr(app.screen, "step", None) != 1:  # the step is recorded while the lock is held
            assert time.monotonic() < deadline, f"the lesson did not move on: {app.screen}"
            await pilot.press("n")
            await pilot.pause(0.1)
        while not any("can't be saved right now" in text for text in shown):
            assert time.monotonic() < deadline, f"no notification: {shown} {app.store.told}"
            await pilot.pause(0.05)
        other.execute("COMMIT")
        other.close()
    store = ProgressStore.open(db)
    assert store.last_step("steps") == 1  # written once the lock was released
    store.close()


def test_values_edited_by_hand_read_as_nothing_recorded_and_say_so(tmp_path):
    path = _filled(tmp_path / "p.db")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE lesson_state SET last_step = 'three'")
    conn.execute("UPDATE quiz_attempt SET answer = '{not json'")
    conn.commit()
    conn.close()
    store = ProgressStore.open(path)
    assert store.last_step("tour") is None and store.latest_answer("tour", "q1") is None
    assert store.lesson_progress("tour", ["q1"]).answered == 0
    assert len(store.told) >= 2 and all("could not be read" in text for text in store.told)
    store.close()


def test_numpy_answers_are_recorded_as_plain_numbers(tmp_path):
    import numpy as np

    store = ProgressStore.open(tmp_path / "p.db")
    store.record_answer("tour", "q", np.float32(2.5), True, 1.0, expected=float(np.int64(3)))
    store.record_answer("tour", "v", np.array([1, 2]), True, 1.0)
    assert store.latest_answer("tour", "q").answer == 2.5
    assert store.latest_answer("tour", "v").answer == [1, 2]
    assert store.close() is None


def test_a_write_after_closing_is_logged_not_raised(tmp_path, log_text):
    store = ProgressStore.open(tmp_path / "p.db")
    store.close()
    store.record_exercise_run("softmax", True)  # e.g. a check finishing after the app quit
    assert "after closing" in log_text() and "softmax" in log_text()


def test_a_data_folder_that_is_a_file_is_reported(tmp_path):
    (tmp_path / "afile").write_text("")
    store = ProgressStore.open(tmp_path / "afile" / "progress.db")
    assert not store.saved and "is not a folder" in store.notice
    store.close()


def test_an_older_version_with_tables_missing_is_set_aside(tmp_path):
    path = _filled(tmp_path / "p.db")
    conn = sqlite3.connect(path)
    conn.executescript(f"DROP TABLE quiz_attempt; PRAGMA user_version={SCHEMA_VERSION - 1}")
    conn.close()
    store = ProgressStore.open(path)  # the next migration alters quiz_attempt, which isn't there
    assert store.saved and "moved to" in store.notice
    store.close()
    assert len(list(tmp_path.glob("p.db.corrupt-*"))) == 1


@pytest.mark.parametrize("make", ["directory", "loop"])
def test_a_path_that_is_no_file_runs_unsaved_and_is_left_alone(tmp_path, make):
    path = tmp_path / "p.db"
    if make == "directory":
        path.mkdir()
    else:
        path.symlink_to(path)
    store = ProgressStore.open(path)
    assert not store.saved and store.notice
    store.mark_step("tour", 0, 1)
    assert store.last_step("tour") == 0
    store.close()
    assert (path.is_dir() if make == "directory" else path.is_symlink())
    assert not list(tmp_path.glob("p.db.corrupt-*"))


def test_a_file_locked_when_opening_is_saved_once_it_is_free_issue18(tmp_path):
    path = _filled(tmp_path / "p.db")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")  # holds the lock from its first write until it closes
    other.execute("INSERT INTO meta VALUES ('other', 'program')")
    try:
        store = ProgressStore.open(path, timeout=0.5)
        assert store.saved and "another program holds its lock" in store.notice and store.failure
        assert store.last_step("tour") == 3  # what the file holds, from a copy
        store.mark_step("tour", 4, 5)
        assert store.record_exercise_run("softmax", True).status == "solved"
        assert store.last_step("tour") == 4  # the session's own changes show while they wait
    finally:
        other.close()
    _wait_for(lambda: store.failure is None, "the changes kept while the file was locked to be written")
    assert "saved again" in store.told[-1]
    outside = sqlite3.connect(path)
    outside.execute("INSERT INTO lesson_state VALUES ('elsewhere', 1, 2, 0)")
    outside.commit()
    outside.close()
    assert store.last_step("elsewhere") == 1  # reads have moved from the copy to the file
    assert store.close() is None
    again = ProgressStore.open(path)
    assert again.last_step("tour") == 4 and again.exercise_state("softmax").status == "solved"
    again.close()


def test_a_write_returns_without_waiting_for_the_writer_issue18(tmp_path, monkeypatch):
    from workbench import progress

    path = _filled(tmp_path / "p.db")
    store = ProgressStore.open(path)
    writer_may_go = threading.Event()
    real_connect = progress.connect
    monkeypatch.setattr(progress, "connect", lambda *args: writer_may_go.wait(60) and real_connect(*args))
    monkeypatch.setattr(progress, "WAIT_FOR_WRITE", 60.0)  # a write that waited for its change would hang
    writing = threading.Thread(target=lambda: store.mark_step("tour", 4, 5), daemon=True)
    writing.start()
    writing.join(30)  # guards against the hang only; says nothing about speed
    assert not writing.is_alive(), "mark_step waited for the writer"
    writer_may_go.set()
    assert store.last_step("tour") == 4  # a read waits for the changes before it
    assert store.close() is None


def test_a_change_still_being_written_when_close_gives_up_is_rolled_back_issue18(tmp_path):
    from workbench.progress_db import connect
    from workbench.progress_writer import BackgroundWriter, Change

    path = _filled(tmp_path / "p.db")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the writer's INSERT waits for this lock
    statements: list[str] = []

    def connecting() -> sqlite3.Connection:
        conn = connect(path, 60.0)
        conn.set_trace_callback(statements.append)
        return conn

    writer = BackgroundWriter(connecting, lambda text: None)
    writer.submit(Change("setting late", [("INSERT INTO meta VALUES ('late', 'x')", ())]))
    _wait_for(lambda: any("INSERT" in text for text in statements), "the writer to start its change")
    unsaved, _ = writer.close(0.2)
    assert [change.what for change in unsaved] == ["setting late"]
    other.execute("COMMIT")  # the writer gets the lock after close() reported its change lost
    other.close()
    _wait_for(lambda: any(text in ("COMMIT", "ROLLBACK") for text in statements), "the writer to end its change")
    kept = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'late'").fetchall()
    assert kept == [] and "ROLLBACK" in statements


def test_a_file_the_writer_finds_damaged_is_not_retried_issue18():
    from workbench.progress_db import DamagedDatabase
    from workbench.progress_writer import BackgroundWriter, Change

    attempts: list[int] = []

    def connecting() -> sqlite3.Connection:
        attempts.append(1)
        raise DamagedDatabase("integrity check failed: page 3 is never used")

    told: list[str] = []
    writer = BackgroundWriter(connecting, told.append, retry_every=0.01)
    writer.submit(Change("step tour/1", [("SELECT 1", ())]))
    _wait_for(lambda: told, "the learner to be told")
    writer.submit(Change("step tour/2", [("SELECT 2", ())]))  # a new change used to prompt another attempt
    unsaved, reason = writer.close(0.5)
    assert [change.what for change in unsaved] == ["step tour/1", "step tour/2"]
    assert "damaged" in reason and "damaged" in told[0] and len(told) == 1
    assert len(attempts) == 1


def test_a_damaged_file_behind_a_symlink_is_set_aside_beside_it_and_the_link_kept(tmp_path):
    (tmp_path / "synced").mkdir()
    target = tmp_path / "synced" / "progress.db"
    target.write_bytes(b"this is not an sqlite database" * 100)
    link = tmp_path / "p.db"
    link.symlink_to(target)
    store = ProgressStore.open(link)
    store.mark_step("tour", 1, 2)
    assert store.close() is None
    assert link.is_symlink() and link.resolve() == target
    assert len(list((tmp_path / "synced").glob("progress.db.corrupt-*"))) == 1
    again = ProgressStore.open(link)
    assert again.last_step("tour") == 1
    again.close()


DROP_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.skipif(_permissions_enforced(), reason="the permission cases run directly for this user")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is needed to drop root's override")
def test_the_permission_cases_run_for_root_too():
    """As root (CI runs as root) the cases above skip; rerun them where root obeys file modes."""
    done = subprocess.run([*DROP_OVERRIDE, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", __file__, "-k", "issue18 and (read_only or unreadable or cannot_be_created)"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " skipped" not in done.stdout and " passed" in done.stdout, done.stdout[-1000:]
