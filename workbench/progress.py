"""The progress store: steps seen, quiz attempts and where to resume, in SQLite.

WAL mode with a busy timeout lets two sessions of the same learner write at
once; every write is one transaction, so a process killed mid-write loses at
most that write and never corrupts the file. A database that can't be read
is moved aside (and reported), never a crash.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Each entry moves the schema from version i to i + 1; never edit a shipped one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE lesson_state (
        lesson_id TEXT PRIMARY KEY,
        last_step INTEGER NOT NULL,
        total_steps INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE step_seen (
        lesson_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (lesson_id, step)
    );
    CREATE TABLE quiz_attempt (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        lesson_id TEXT NOT NULL,
        question_id TEXT NOT NULL,
        answer TEXT NOT NULL,
        correct INTEGER NOT NULL,
        score REAL NOT NULL,
        answered_at REAL NOT NULL
    );
    CREATE INDEX quiz_attempt_by_question ON quiz_attempt (lesson_id, question_id, id);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    CREATE TABLE exercise_state (
        exercise_id TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        passes INTEGER NOT NULL,
        hints INTEGER NOT NULL,
        solved_at REAL,
        updated_at REAL NOT NULL
    );
    """,
    # The engine-computed answer a probe question was graded against, so a revisit shows that value.
    """
    ALTER TABLE quiz_attempt ADD COLUMN expected REAL;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class ProgressError(Exception):
    """The progress database can't be used (e.g. it comes from a newer workbench)."""


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
    """One learner's progress. Open with :meth:`open`; close when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path, notice: str | None) -> None:
        self._conn = conn
        self.path = path
        self.notice = notice
        """Something the learner should be told (e.g. a corrupt file was set aside)."""

    @classmethod
    def open(cls, path: Path, timeout: float = 10.0) -> "ProgressStore":
        """Open (creating or migrating) the database at path; set aside a corrupt one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        notice = None
        try:
            conn = _connect(path, timeout)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise ProgressError(f"progress database {path} is locked: {exc}") from exc
            moved = _set_aside(path)
            notice = f"The progress database could not be read ({exc}); it was moved to {moved} and a new one started."
            conn = _connect(path, timeout)
        return cls(conn, path, notice)

    def close(self) -> None:
        self._conn.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._conn:  # one transaction: committed whole or not at all
            self._conn.execute(sql, args)

    # --- steps -----------------------------------------------------------

    def mark_step(self, lesson_id: str, step: int, total_steps: int) -> None:
        """Record that step (0-based) of lesson was shown, and resume there next time."""
        now = time.time()
        with self._conn:
            self._conn.execute(
                "INSERT INTO lesson_state VALUES (?, ?, ?, ?) ON CONFLICT(lesson_id) DO UPDATE "
                "SET last_step = excluded.last_step, total_steps = excluded.total_steps, updated_at = excluded.updated_at",
                (lesson_id, step, total_steps, now),
            )
            self._conn.execute("INSERT OR IGNORE INTO step_seen VALUES (?, ?, ?)", (lesson_id, step, now))
            self._conn.execute(
                "INSERT INTO meta VALUES ('last_lesson', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (lesson_id,),
            )

    def last_step(self, lesson_id: str) -> int | None:
        row = self._conn.execute("SELECT last_step FROM lesson_state WHERE lesson_id = ?", (lesson_id,)).fetchone()
        return None if row is None else int(row[0])

    def last_lesson(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'last_lesson'").fetchone()
        return None if row is None else str(row[0])

    # --- quizzes ---------------------------------------------------------

    def record_answer(self, lesson_id: str, question_id: str, answer: Any, correct: bool, score: float,
                      expected: float | None = None) -> None:
        """Record an attempt; ``expected`` is the engine's answer a probe question was graded against."""
        self._write(
            "INSERT INTO quiz_attempt (lesson_id, question_id, answer, correct, score, answered_at, expected) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (lesson_id, question_id, json.dumps(answer), int(correct), float(score), time.time(), expected),
        )

    def latest_answer(self, lesson_id: str, question_id: str) -> Attempt | None:
        row = self._conn.execute(
            "SELECT answer, correct, score, answered_at, expected FROM quiz_attempt WHERE lesson_id = ? AND "
            "question_id = ? ORDER BY id DESC LIMIT 1",
            (lesson_id, question_id),
        ).fetchone()
        if row is None:
            return None
        return Attempt(json.loads(row[0]), bool(row[1]), float(row[2]), float(row[3]),
                       None if row[4] is None else float(row[4]))

    def attempt_count(self, lesson_id: str, question_id: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM quiz_attempt WHERE lesson_id = ?", (lesson_id,)
        if question_id is not None:
            sql, args = sql + " AND question_id = ?", (lesson_id, question_id)
        return int(self._conn.execute(sql, args).fetchone()[0])

    def forget_answer(self, lesson_id: str, question_id: str) -> None:
        """Unlock a question by recording that the learner chose to try again."""
        self.record_answer(lesson_id, question_id, None, False, 0.0)

    # --- exercises -------------------------------------------------------

    def exercise_state(self, exercise_id: str) -> ExerciseState:
        row = self._conn.execute(
            "SELECT attempts, passes, hints, solved_at FROM exercise_state WHERE exercise_id = ?", (exercise_id,)
        ).fetchone()
        if row is None:
            return ExerciseState(0, 0, 0, None)
        return ExerciseState(int(row[0]), int(row[1]), int(row[2]), row[3])

    def record_exercise_run(self, exercise_id: str, passed: bool) -> ExerciseState:
        """Count one checked save; the first pass marks the exercise solved (for good)."""
        now = time.time()
        self._write(
            "INSERT INTO exercise_state VALUES (?, 1, ?, 0, ?, ?) ON CONFLICT(exercise_id) DO UPDATE SET "
            "attempts = attempts + 1, passes = passes + excluded.passes, "
            "solved_at = COALESCE(solved_at, excluded.solved_at), updated_at = excluded.updated_at",
            (exercise_id, int(passed), now if passed else None, now),
        )
        return self.exercise_state(exercise_id)

    def reveal_hint(self, exercise_id: str, available: int) -> int:
        """Reveal one more hint (at most available); returns how many are now shown."""
        self._write(
            "INSERT INTO exercise_state VALUES (?, 0, 0, MIN(1, ?), NULL, ?) ON CONFLICT(exercise_id) DO UPDATE SET "
            "hints = MIN(hints + 1, ?), updated_at = excluded.updated_at",
            (exercise_id, available, time.time(), available),
        )
        return self.exercise_state(exercise_id).hints

    def get_setting(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (f"setting:{key}",)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        self._write(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (f"setting:{key}", value),
        )

    # --- summaries -------------------------------------------------------

    def lesson_progress(self, lesson_id: str, question_ids: list[str]) -> LessonProgress:
        """Steps seen and the latest answer per question, for the catalog and score lines."""
        state = self._conn.execute(
            "SELECT last_step, total_steps FROM lesson_state WHERE lesson_id = ?", (lesson_id,)
        ).fetchone()
        seen = self._conn.execute("SELECT COUNT(*) FROM step_seen WHERE lesson_id = ?", (lesson_id,)).fetchone()[0]
        answered = correct = 0
        for qid in question_ids:
            attempt = self.latest_answer(lesson_id, qid)
            if attempt is not None and attempt.answer is not None:
                answered += 1
                correct += attempt.correct
        return LessonProgress(
            steps_seen=int(seen),
            total_steps=int(state[1]) if state else 0,
            last_step=int(state[0]) if state else None,
            answered=answered,
            correct=correct,
        )


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level="DEFERRED")
    try:
        _enable_wal(conn, timeout)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL, retrying while another session holds the file.

    Changing the journal mode can report "database is locked" at once, without
    waiting on the busy timeout, when a second session is opening (and itself
    switching) the same new file; seen when two sessions start together.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _migrate(conn: sqlite3.Connection) -> None:
    # BEGIN IMMEDIATE takes the write lock first, so two sessions starting at
    # once can't both apply the same migration.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ProgressError(f"progress database has schema {version}, newer than this workbench ({SCHEMA_VERSION})")
        for index in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[index].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={index + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _set_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(path) + suffix)
        if source.exists():
            source.rename(Path(str(target) + suffix))
    return target
