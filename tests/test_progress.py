"""The progress store: persistence, two processes at once, kills mid-write, corruption."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from workbench.progress import SCHEMA_VERSION, ProgressError, ProgressStore


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


def test_newer_schema_is_refused_not_destroyed(tmp_path):
    path = tmp_path / "p.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ProgressError, match="newer"):
        ProgressStore.open(path)
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))
