"""The progress store: steps seen, quiz attempts and where to resume, in SQLite.

WAL mode with a busy timeout lets two sessions of the same learner write at
once; every write is one transaction, so a process killed mid-write loses at
most that write and never corrupts the file. Writes go through a writer thread
(:mod:`workbench.progress_writer`), so neither a lock held by another program
nor a full disk freezes or crashes the UI: a change that can't be written yet is
kept and retried, and the learner is told. Opening never crashes either
(:mod:`workbench.progress_db`): a damaged file is moved aside, and a file that
can't be used as it is (read-only, unreadable, from a newer workbench) is left
untouched while the session runs on a copy in memory, saying so. A file another
program holds locked when the session starts is read from a copy until the
writer gets in, and everything done meanwhile is saved then.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from workbench.logs import logger
from workbench.progress_db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    DatabaseLocked,
    ProgressError,
    connect,
    describe_failure,
    memory_database,
    open_or_set_aside,
    read_snapshot,
)
from workbench.progress_writer import (
    BackgroundWriter,
    Change,
    MemoryWriter,
    apply_change,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Attempt", "ExerciseState", "LessonProgress", "ProgressError",
           "ProgressStore"]

OPEN_WAIT = 1.0
"""The busy timeout when opening: short, because a lock held longer no longer costs the session its saving."""
WAIT_FOR_WRITE = 0.5
"""Seconds a read waits for the changes before it to land (so it sees them) before reading without them."""
WRITE_ATTEMPT = 2.0
"""The writer's busy timeout: how long one attempt waits on another program's lock before retrying."""
READ_WAIT = 1.0
"""The busy timeout of reads on the caller's thread; WAL reads wait only in rare recoveries."""
CLOSE_WAIT = 3.0
"""Seconds closing keeps trying to write what is still waiting without any of it landing."""

T = TypeVar("T")


def _to_json(answer: Any) -> str:
    """JSON for a quiz answer; NumPy scalars and arrays (a probe's answer) become plain numbers and lists."""
    return json.dumps(answer, default=lambda value: value.tolist() if hasattr(value, "tolist") else str(value))


@dataclass(frozen=True)
class Attempt:
    answer: Any
    correct: bool
    score: float
    answered_at: float
    expected: float | None = None
    """For a probe question: the engine's answer it was graded against, kept so a revisit doesn't re-grade."""


@dataclass(frozen=True)
class ExerciseState:
    attempts: int
    passes: int
    hints: int
    """Hints revealed so far."""
    solved_at: float | None

    @property
    def status(self) -> str:
        if self.solved_at is not None:
            return "solved"
        return "attempted" if self.attempts else "new"


@dataclass(frozen=True)
class LessonProgress:
    steps_seen: int
    total_steps: int
    last_step: int | None
    answered: int
    correct: int


class ProgressStore:
    """One learner's progress. Open with :meth:`open`; close when done.

    No method raises for a problem of the file or the disk: reads fall back to
    "nothing recorded" and writes are kept and retried; what happened goes to
    :attr:`notice` (when opening) or to the :meth:`listen` callback (later).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, notice: str | None, saved: bool = True,
                 timeout: float = OPEN_WAIT, locked: str | None = None) -> None:
        """Use :meth:`open`; conn is the connection reads use (in memory when saved is False, or while locked).

        locked: why the file couldn't be opened (another program's lock); conn is then a copy of what it
        held, which changes are applied to as well until the writer gets in and reads move to the file.
        """
        self._conn = conn
        self._lock = threading.RLock()  # MemoryWriter takes it too, inside _write
        self._on_copy = locked is not None
        self._listener: Callable[[str], None] | None = None
        self._told: list[str] = []
        self.path = path
        self.notice = notice
        """Something the learner should be told on opening (e.g. a corrupt file was set aside)."""
        self.saved = saved
        """False when this session's progress lives only in memory (the file can't be used)."""
        self._writer: BackgroundWriter | MemoryWriter
        if saved:
            self._writer = BackgroundWriter(lambda: connect(path, min(timeout, WRITE_ATTEMPT)), self._tell,
                                            stuck=locked)
        else:
            self._writer = MemoryWriter(conn, self._lock, self._tell)

    @classmethod
    def open(cls, path: Path, timeout: float = OPEN_WAIT) -> ProgressStore:
        """Open (creating or migrating) the database at path; never raises for what the file or disk does.

        A damaged file is moved aside and a new one started. A file another
        program holds locked is shown from a copy while the writer keeps trying,
        as it does for a lock met later. A file that can't be used as it is
        stays untouched: the session runs on an in-memory copy of what it holds
        (or an empty one), and :attr:`notice` says so.
        """
        try:
            if path.is_symlink():
                if not path.parent.joinpath(path.readlink()).parent.is_dir():
                    raise ProgressError(f"it is a link to {path.readlink()}, whose folder does not exist")
                # Work beside the file the link names, so a set-aside keeps the learner's link.
                path = path.resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            conn, notice = open_or_set_aside(path, timeout)
        except (ProgressError, OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            reason = str(exc) if isinstance(exc, ProgressError) else describe_failure(path, exc)
            snapshot = read_snapshot(path) if path.exists() else None
            if isinstance(exc, DatabaseLocked) and (snapshot is not None or not path.exists()):
                return cls._open_while_locked(path, reason, snapshot or memory_database(), timeout)
            shown = ("Your earlier progress is shown, read-only" if snapshot is not None
                     else "Earlier progress can't be shown")
            notice = (f"Progress can't be saved to {path}: {reason}. {shown}; what you do in this session "
                      f"will be lost when you quit. The file was not changed.")
            logger.warning("progress database %s unusable: %s", path, reason)
            return cls(snapshot or memory_database(), path, notice, saved=False)
        conn.execute(f"PRAGMA busy_timeout={int(READ_WAIT * 1000)}")
        if notice:
            logger.warning(notice)
        return cls(conn, path, notice, saved=True, timeout=timeout)

    @classmethod
    def _open_while_locked(cls, path: Path, reason: str, copy: sqlite3.Connection, timeout: float) -> ProgressStore:
        """A saved session that reads copy (what the file held) until its writer gets past the lock."""
        notice = (f"Progress can't be saved to {path} yet: {reason}. Your earlier progress is shown; what you do "
                  f"is kept and saved as soon as the other program lets go, so please keep the workbench open "
                  f"until you are told.")
        logger.warning("progress database %s locked when opening: %s", path, reason)
        return cls(copy, path, notice, saved=True, timeout=timeout, locked=reason)

    def listen(self, callback: Callable[[str], None] | None) -> None:
        """Tell callback (from any thread) each later problem or recovery; it must not block."""
        self._listener = callback

    @property
    def told(self) -> list[str]:
        """Every problem or recovery reported since opening, oldest first."""
        return list(self._told)

    @property
    def failure(self) -> str | None:
        """Why saving is stuck right now (changes are waiting), or None."""
        return self._writer.failure

    def _tell(self, text: str) -> None:
        self._told.append(text)
        listener = self._listener
        if listener is not None:
            try:
                listener(text)
            except Exception:  # noqa: BLE001 - the UI may be closing; the log still has it
                logger.exception("progress notice not delivered: %s", text)

    def close(self) -> str | None:
        """Write what is waiting (giving up after a few seconds in which nothing lands), then close.

        Returns a message if anything is lost.
        """
        unsaved, reason = self._writer.close(CLOSE_WAIT)
        with self._lock:
            self._conn.close()
        if unsaved:
            logger.error("progress changes not saved to %s (%s): %s", self.path, reason,
                         [(change.what, change.statements) for change in unsaved])
            return (f"{len(unsaved)} change(s) to your progress could not be saved to {self.path} ({reason}); "
                    f"they are listed in the log.")
        if isinstance(self._writer, MemoryWriter) and self._writer.count:
            return (f"{self._writer.count} change(s) to your progress in this session were not saved: "
                    f"{self.path} could not be used (see the warning when it opened).")
        return None

    def _one(self, sql: str, args: tuple[Any, ...], convert: Callable[[tuple], T], default: T) -> T:
        """The first row of a query, converted; default when there is none or it can't be read."""
        self._writer.wait_idle(WAIT_FOR_WRITE)
        with self._lock:
            if self._on_copy:
                self._read_the_file_once_written()
            try:
                row = self._conn.execute(sql, args).fetchone()
                return default if row is None else convert(row)
            # A value of the wrong type (the file edited by hand) is as unreadable as a missing table.
            except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
                logger.warning("progress read failed: %s (%s %r)", exc, sql, args)
                text = f"Your progress could not be read ({exc}); what is shown may be incomplete."
                if text not in self._told:  # a catalog reads per lesson: say it once
                    self._tell(text)
                return default

    def _read_the_file_once_written(self) -> None:
        """Leave the copy read while the file was locked, once the writer is in and has written every change."""
        if not (self._writer.connected and self._writer.wait_idle(0)):
            return
        try:
            conn = sqlite3.connect(self.path, timeout=READ_WAIT, isolation_level="DEFERRED", check_same_thread=False)
        except sqlite3.Error as exc:
            logger.warning("progress database %s still read from a copy: %s", self.path, exc)
            return
        self._conn.close()
        self._conn = conn
        self._on_copy = False

    def _write(self, what: str, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Queue one transaction; the UI never waits for it (reads do, briefly)."""
        change = Change(what, list(statements))
        with self._lock:  # so the copy and the queue never disagree when reads move to the file
            if self._on_copy:
                try:
                    apply_change(self._conn, change)
                except sqlite3.Error as exc:  # the file may still take it; the writer reports if it doesn't
                    logger.warning("progress change %s not shown from the copy: %s", what, exc)
            self._writer.submit(change)

    # --- steps -----------------------------------------------------------

    def mark_step(self, lesson_id: str, step: int, total_steps: int) -> None:
        """Record that step (0-based) of lesson was shown, and resume there next time."""
        now = time.time()
        self._write(
            f"step {lesson_id}/{step}",
            (("INSERT INTO lesson_state VALUES (?, ?, ?, ?) ON CONFLICT(lesson_id) DO UPDATE SET last_step = "
              "excluded.last_step, total_steps = excluded.total_steps, updated_at = excluded.updated_at"),
             (lesson_id, step, total_steps, now)),
            ("INSERT OR IGNORE INTO step_seen VALUES (?, ?, ?)", (lesson_id, step, now)),
            ("INSERT INTO meta VALUES ('last_lesson', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
             (lesson_id,)),
        )

    def last_step(self, lesson_id: str) -> int | None:
        return self._one("SELECT last_step FROM lesson_state WHERE lesson_id = ?", (lesson_id,),
                         lambda row: int(row[0]), None)

    def last_lesson(self) -> str | None:
        return self._one("SELECT value FROM meta WHERE key = 'last_lesson'", (), lambda row: str(row[0]), None)

    # --- quizzes ---------------------------------------------------------

    def record_answer(self, lesson_id: str, question_id: str, answer: Any, correct: bool, score: float,
                      expected: float | None = None) -> None:
        """Record an attempt; ``expected`` is the engine's answer a probe question was graded against."""
        self._write(
            f"answer {lesson_id}/{question_id}",
            (("INSERT INTO quiz_attempt (lesson_id, question_id, answer, correct, score, answered_at, expected) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)"),
             (lesson_id, question_id, _to_json(answer), int(correct), float(score), time.time(), expected)),
        )

    def latest_answer(self, lesson_id: str, question_id: str) -> Attempt | None:
        return self._one(
            "SELECT answer, correct, score, answered_at, expected FROM quiz_attempt WHERE lesson_id = ? AND "
            "question_id = ? ORDER BY id DESC LIMIT 1",
            (lesson_id, question_id),
            lambda row: Attempt(json.loads(row[0]), bool(row[1]), float(row[2]), float(row[3]),
                                None if row[4] is None else float(row[4])),
            None,
        )

    def attempt_count(self, lesson_id: str, question_id: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM quiz_attempt WHERE lesson_id = ?", (lesson_id,)
        if question_id is not None:
            sql, args = sql + " AND question_id = ?", (lesson_id, question_id)
        return self._one(sql, args, lambda row: int(row[0]), 0)

    def forget_answer(self, lesson_id: str, question_id: str) -> None:
        """Unlock a question by recording that the learner chose to try again."""
        self.record_answer(lesson_id, question_id, None, False, 0.0)

    # --- exercises -------------------------------------------------------

    def exercise_state(self, exercise_id: str) -> ExerciseState:
        return self._one(
            "SELECT attempts, passes, hints, solved_at FROM exercise_state WHERE exercise_id = ?", (exercise_id,),
            lambda row: ExerciseState(int(row[0]), int(row[1]), int(row[2]), None if row[3] is None else float(row[3])),
            ExerciseState(0, 0, 0, None),
        )

    def record_exercise_run(self, exercise_id: str, passed: bool) -> ExerciseState:
        """Count one checked save; the first pass marks the exercise solved (for good).

        Returns the new state; while saving is stuck, the state this run leads to once it is written.
        """
        now = time.time()
        before = self.exercise_state(exercise_id)
        self._write(
            f"exercise run {exercise_id} ({'pass' if passed else 'fail'})",
            (("INSERT INTO exercise_state VALUES (?, 1, ?, 0, ?, ?) ON CONFLICT(exercise_id) DO UPDATE SET "
              "attempts = attempts + 1, passes = passes + excluded.passes, "
              "solved_at = COALESCE(solved_at, excluded.solved_at), updated_at = excluded.updated_at"),
             (exercise_id, int(passed), now if passed else None, now)),
        )
        if self._writer.wait_idle(WAIT_FOR_WRITE):  # landed: read it back, as stored
            return self.exercise_state(exercise_id)
        solved_at = before.solved_at if before.solved_at is not None else (now if passed else None)
        return ExerciseState(before.attempts + 1, before.passes + int(passed), before.hints, solved_at)

    def reveal_hint(self, exercise_id: str, available: int) -> int:
        """Reveal one more hint (at most available); returns how many are now shown."""
        before = self.exercise_state(exercise_id).hints
        self._write(
            f"hint {exercise_id}",
            (("INSERT INTO exercise_state VALUES (?, 0, 0, MIN(1, ?), NULL, ?) ON CONFLICT(exercise_id) DO UPDATE "
              "SET hints = MIN(hints + 1, ?), updated_at = excluded.updated_at"),
             (exercise_id, available, time.time(), available)),
        )
        if self._writer.wait_idle(WAIT_FOR_WRITE):  # landed: read it back, as stored
            return self.exercise_state(exercise_id).hints
        return min(before + 1, available)

    def get_setting(self, key: str) -> str | None:
        return self._one("SELECT value FROM meta WHERE key = ?", (f"setting:{key}",), lambda row: str(row[0]), None)

    def set_setting(self, key: str, value: str) -> None:
        self._write(
            f"setting {key}",
            ("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
             (f"setting:{key}", value)),
        )

    # --- summaries -------------------------------------------------------

    def lesson_progress(self, lesson_id: str, question_ids: list[str]) -> LessonProgress:
        """Steps seen and the latest answer per question, for the catalog and score lines."""
        state = self._one("SELECT last_step, total_steps FROM lesson_state WHERE lesson_id = ?", (lesson_id,),
                          lambda row: (int(row[0]), int(row[1])), None)
        seen = self._one("SELECT COUNT(*) FROM step_seen WHERE lesson_id = ?", (lesson_id,), lambda row: int(row[0]), 0)
        answered = correct = 0
        for qid in question_ids:
            attempt = self.latest_answer(lesson_id, qid)
            if attempt is not None and attempt.answer is not None:
                answered += 1
                correct += attempt.correct
        return LessonProgress(
            steps_seen=seen,
            total_steps=state[1] if state else 0,
            last_step=state[0] if state else None,
            answered=answered,
            correct=correct,
        )
