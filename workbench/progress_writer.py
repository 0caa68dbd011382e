"""Where progress writes go: a thread of their own, so the UI never waits on SQLite's lock or a slow disk.

A :class:`BackgroundWriter` applies each :class:`Change` in order, one
transaction each, on its own connection. The caller waits a moment for the
change to land (so what it reads next includes it) and then moves on. A change
that can't be written yet (another program holds the lock, the disk is full,
the file turned read-only) stays queued, with every change behind it, and is
retried until it lands or the store closes; the learner is told when saving
stops and when it resumes, and :meth:`BackgroundWriter.close` returns what was
never written. A :class:`MemoryWriter` serves a session that can't be saved.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.logs import logger
from workbench.progress_db import ProgressError

RETRY_EVERY = 2.0
"""Seconds between attempts at a change that failed (sooner when another change arrives)."""


@dataclass
class Change:
    """One learner action's statements, written in one transaction."""

    what: str
    """For messages and the log, e.g. ``answer tour/q1``."""
    statements: list[tuple[str, tuple[Any, ...]]]
    done: bool = field(default=False, compare=False)


def _apply(conn: sqlite3.Connection, change: Change) -> None:
    with conn:  # one transaction: committed whole or not at all
        for sql, args in change.statements:
            conn.execute(sql, args)


def _retryable(exc: BaseException) -> bool:
    """A failure of the file or its surroundings, not of the change itself (a constraint or a bug)."""
    return isinstance(exc, (sqlite3.OperationalError, ProgressError)) or type(exc) is sqlite3.DatabaseError


class BackgroundWriter:
    """Writes changes to the database on a daemon thread, in order, retrying failures."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], report: Callable[[str], None],
                 retry_every: float = RETRY_EVERY) -> None:
        """
        Args:
            connect: opens a connection to the database (called on the writer thread, again after a failure).
            report: told, from the writer thread, when saving stops, resumes, or drops a change.
            retry_every: seconds between attempts at a failing change.
        """
        self._connect = connect
        self._report = report
        self._retry_every = retry_every
        self._cond = threading.Condition()
        self._queue: deque[Change] = deque()
        self._failure: str | None = None
        """Why the change at the head of the queue failed last, while it keeps failing."""
        self._closing = False
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="progress-writer", daemon=True)
        self._thread.start()

    @property
    def failure(self) -> str | None:
        """Why saving is stuck, or None while changes land."""
        return self._failure

    def submit(self, change: Change, wait: float) -> bool:
        """Queue change; wait up to wait seconds for it to land (not at all while saving is stuck). True if it did."""
        with self._cond:
            if self._closing:  # e.g. a worker finishing after the app closed
                logger.error("progress change %s after closing, not saved: %r", change.what, change.statements)
                return False
            self._queue.append(change)
            self._cond.notify_all()
            if self._failure is None:
                self._cond.wait_for(lambda: change.done, wait)
            return change.done

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to timeout for the queue to empty (not at all while saving is stuck); True if it is empty."""
        with self._cond:
            if self._failure is not None:
                return not self._queue
            return self._cond.wait_for(lambda: not self._queue, timeout)

    def close(self, timeout: float) -> tuple[list[Change], str | None]:
        """Keep trying for up to timeout seconds, then stop. Returns the changes never written, and why."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            self._abandoned = True
            self._cond.notify_all()
            return list(self._queue), self._failure

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if not self._queue or self._abandoned:
                    break
                change = self._queue[0]
            try:
                if conn is None:
                    conn = self._connect()
                _apply(conn, change)
            # Anything, so that the thread never dies: a dead writer would stop all saving without a word.
            except Exception as exc:  # noqa: BLE001
                if conn is not None:
                    conn.close()
                    conn = None
                if _retryable(exc):
                    self._stuck(change, exc)
                    continue
                self._finish(change)
                logger.error("progress change %s dropped: %s (%r)", change.what, exc, change.statements)
                self._report(f"A change to your progress ({change.what}) could not be saved: {exc}. "
                             f"It is written in the log.")
                continue
            self._finish(change)
        if conn is not None:
            conn.close()

    def _stuck(self, change: Change, exc: BaseException) -> None:
        with self._cond:
            first = self._failure is None
            self._failure = str(exc)
            waiting = len(self._queue)
        if first:
            logger.warning("progress change %s not saved yet: %s", change.what, exc)
            self._report(f"Your progress can't be saved right now ({exc}). {waiting} change(s) are kept and "
                         f"will be saved as soon as it works again; please keep the workbench open until then.")
        with self._cond:
            # While closing, keep trying until close() gives up, without spinning.
            self._cond.wait(0.1 if self._closing else self._retry_every)

    def _finish(self, change: Change) -> None:
        with self._cond:
            self._queue.popleft()
            change.done = True
            recovered = self._failure is not None and not self._queue
            if recovered:
                self._failure = None
            self._cond.notify_all()
        if recovered:
            logger.info("progress saving resumed")
            self._report("Your progress is being saved again; every waiting change was written.")


class MemoryWriter:
    """Applies changes at once to an in-memory database: a session whose progress can't be saved."""

    failure: str | None = None

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock, report: Callable[[str], None]) -> None:
        self._conn = conn
        self._lock = lock
        self._report = report
        self.count = 0
        """Changes made this session (all lost when it ends)."""

    def submit(self, change: Change, wait: float) -> bool:
        with self._lock:
            try:
                _apply(self._conn, change)
            except sqlite3.Error as exc:
                logger.error("progress change %s failed in memory: %s", change.what, exc)
                self._report(f"A change to your progress ({change.what}) failed: {exc}.")
                return False
        change.done = True
        self.count += 1
        return True

    def wait_idle(self, timeout: float) -> bool:
        return True

    def close(self, timeout: float) -> tuple[list[Change], str | None]:
        return [], None
