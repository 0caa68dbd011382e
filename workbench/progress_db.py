"""The progress database file: connect, migrate, check the tables, set a damaged file aside.

Only a file SQLite itself calls damaged ("file is not a database", "malformed"),
or whose tables are not the ones this workbench makes, is moved aside: under a
lock, so that two sessions starting together move it once and never move the
fresh file the other just made, and to a name no earlier set-aside holds. A file
that is merely unreadable or unwritable (permissions, a read-only folder, a full
disk, a lock held by another program, a newer workbench) is never touched: the
caller gets a :class:`ProgressError` saying why, and can still take a read-only
copy of what the file holds with :func:`read_snapshot`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from urllib.parse import quote

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a set-aside race there stays possible
    fcntl = None  # type: ignore[assignment]

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
    """The progress database can't be used as it is (unreadable, unwritable, locked, or from a newer workbench)."""


class DamagedDatabase(ProgressError):
    """SQLite calls the file damaged, or its tables are not this workbench's: the one case it is set aside."""


class DatabaseLocked(ProgressError):
    """Another program held the file's lock past the busy timeout: the file is fine, and may be free soon."""


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open path read-write (creating it), in WAL mode, checked and migrated to :data:`SCHEMA_VERSION`.

    Raises:
        DamagedDatabase: the file is damaged or holds tables that aren't ours.
        DatabaseLocked: another program held its lock for longer than busy_timeout.
        ProgressError: anything else that stops it being used; the file is left as it is.
    """
    # Another session setting the file aside may rename it (and start a new one) at any moment: a file that
    # vanished is not a read-only one, so the refusal needs it there and unwritable, then unwritable again.
    if not os.access(path, os.W_OK) and path.exists() and not os.access(path, os.W_OK):
        # SQLite would open it read-only without a word, and fail at the first write.
        raise ProgressError(describe_failure(path, PermissionError("the file is read-only")))
    conn = None
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level="DEFERRED", check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        # Read-only checks first: a file that is refused or set aside must leave here as it came.
        _refuse_newer(_version(conn))
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise DamagedDatabase(f"integrity check failed: {check}")
        _enable_wal(conn, busy_timeout)
        conn.execute("PRAGMA synchronous=FULL")
        migrate(conn)
        check_tables(conn)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _classify(exc, path) from exc
        raise
    return conn


# What a migration meets in a file whose tables don't match its schema version.
SCHEMA_MISMATCH = ("no such table", "no such column", "duplicate column", "already exists")


def _classify(exc: sqlite3.Error, path: Path) -> ProgressError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(text in str(exc) for text in SCHEMA_MISMATCH):
        return DamagedDatabase(str(exc))
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc):
        return DatabaseLocked(describe_failure(path, exc))
    return ProgressError(describe_failure(path, exc))


def describe_failure(path: Path, exc: BaseException) -> str:
    """Why path can't be used, in the learner's terms where the file system can tell."""
    folder = path.parent
    if "locked" in str(exc):
        return f"another program holds its lock ({exc})"
    if folder.exists() and not folder.is_dir():
        return f"{folder} is not a folder ({exc})"
    if not folder.is_dir():
        return f"the folder {folder} does not exist ({exc})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is read-only ({exc})"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"{path} can't be read and written by you (permissions {oct(path.stat().st_mode & 0o777)}; {exc})"
    return str(exc)


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL, retrying while another session holds the file.

    Changing the journal mode can report "database is locked" at once, without
    waiting on the busy timeout, when a second session is opening (and itself
    switching) the same new file; seen when two sessions start together. A file
    already in WAL mode is left alone, so opening never needs the write lock.
    """
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations conn's file lacks; one that is up to date needs no write lock."""
    if _version(conn) == SCHEMA_VERSION:
        return
    # BEGIN IMMEDIATE takes the write lock first, so two sessions starting at
    # once can't both apply the same migration.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)
        _refuse_newer(version)
        for index in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[index].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={index + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise ProgressError(f"it was written by a newer workbench (schema {version}; this one knows "
                            f"{SCHEMA_VERSION}), so it is left untouched: update workbench to use it")


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


@cache
def _expected_tables() -> dict[str, list[tuple]]:
    reference = sqlite3.connect(":memory:")
    migrate(reference)
    tables = _tables(reference)
    reference.close()
    return tables


def _tables(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    # (name, declared type, not null, primary key) per column, in order.
    return {name: [(c[1], c[2].upper(), c[3], c[5]) for c in conn.execute("SELECT * FROM pragma_table_info(?)", (name,))]
            for name in names if not name.startswith("sqlite_")}


def check_tables(conn: sqlite3.Connection) -> None:
    """Raise :class:`DamagedDatabase` unless every table of the current schema is there, column for column."""
    found = _tables(conn)
    for name, columns in _expected_tables().items():
        if name not in found:
            raise DamagedDatabase(f"its schema version is {_version(conn)} but table {name} is missing")
        if found[name] != columns:
            raise DamagedDatabase(f"table {name} has columns {[c[0] for c in found[name]]}, "
                                  f"not {[c[0] for c in columns]}")


def memory_database() -> sqlite3.Connection:
    """A fresh database in memory, for a session whose progress can't be saved."""
    conn = sqlite3.connect(":memory:", isolation_level="DEFERRED", check_same_thread=False)
    migrate(conn)
    return conn


def read_snapshot(path: Path) -> sqlite3.Connection | None:
    """An in-memory copy of what path holds, read without writing anything; None if it can't be read.

    ``mode=ro`` sees the write-ahead log too; ``immutable=1`` (tried second)
    works in a read-only folder whose log SQLite can't open, and reads the
    main file only.
    """
    for query in ("mode=ro", "immutable=1"):
        source = None
        try:
            source = sqlite3.connect(f"file:{quote(str(path))}?{query}", uri=True, timeout=1.0)
            if _version(source) > SCHEMA_VERSION:
                return None
            copy = sqlite3.connect(":memory:", isolation_level="DEFERRED", check_same_thread=False)
            source.backup(copy)
            migrate(copy)
            check_tables(copy)
            return copy
        except (sqlite3.Error, ProgressError):
            continue
        finally:
            if source is not None:
                source.close()
    return None


def open_or_set_aside(path: Path, busy_timeout: float) -> tuple[sqlite3.Connection, str | None]:
    """Connect to path; a damaged file is moved aside and a new one started. Returns (connection, notice).

    Raises:
        ProgressError: the file can't be used, and wasn't touched.
    """
    with suppress(DamagedDatabase):  # damaged: set it aside below, under the lock
        return connect(path, busy_timeout), None
    with _set_aside_lock(path):
        # Another session may have set it aside (and started a new one) while we waited.
        try:
            return connect(path, busy_timeout), None
        except DamagedDatabase as exc:
            reason = str(exc)
            moved = _move_aside(path)
    conn = connect(path, busy_timeout)
    return conn, (f"The progress database could not be read ({reason}); it was moved to {moved} (unchanged) "
                  f"and a new one started.")


@contextmanager
def _set_aside_lock(path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    try:
        handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - closed below, after the yield
    except OSError as exc:
        raise ProgressError(f"it is damaged, and can't be moved aside: {describe_failure(path, exc)}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _move_aside(path: Path) -> Path:
    """Rename path (and its -wal and -shm) to a name no earlier set-aside holds; only under the lock."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    count = 1
    while any(Path(str(target) + suffix).exists() for suffix in ("", "-wal", "-shm")):
        count += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{count}")
    try:
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(path) + suffix)
            if source.exists() or source.is_symlink():
                source.rename(Path(str(target) + suffix))
    except OSError as exc:
        raise ProgressError(f"it is damaged, and can't be moved aside: {describe_failure(path, exc)}") from exc
    return target
