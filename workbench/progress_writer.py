"""Where progress writes go: a thread of their own, so the UI never waits on SQLite's lock or a slow disk.

A :class:`BackgroundWriter` applies each :class:`Change` in order, one
transaction each, on its own connection; the caller never waits for it (a read
waits for the queue to empty first, so it sees what was just submitted). A
change that can't be written yet (another program holds the lock, the disk is
full, the file turned read-only) stays queued, with every change behind it, and
is retried until it lands or the store closes; the learner is told when saving
stops and when it resumes, and :meth:`BackgroundWriter.close` returns what was
never written. A file found damaged is not retried: nothing can land there
until a new session sets it aside. A :class:`MemoryWriter` serves a session
that can't be saved.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from workbench.logs import logger
from workbench.progress_db import DamagedDatabase, ProgressError

RETRY_EVERY = 2.0
"""Seconds between attempts at a change that failed (sooner when another change arrives)."""


@dataclass
class Change:
    """One learner action's statements, written in one transaction."""

    what: str
    """For messages and the log, e.g. ``answer tour/q1``."""
    statements: list[tuple[str, tuple[Any, ...]]]
    done: bool = field(default=False, compare=False)


def apply_change(conn: sqlite3.Connection, change: Change) -> None:
    """Run change's statements in one transaction: committed whole or not at all."""
    with conn:
        for sql, args in change.statements:
            conn.execute(sql, args)


def _retryable(exc: BaseException) -> bool:
    """A failure of the file or its surroundings that may pass, not of the change itself (a constraint or a bug).

    A plain DatabaseError (say "malformed" mid-write) is retried: the reconnect
    that follows checks the file and raises DamagedDatabase if that is what it
    is, which stops the writer instead (a damaged file doesn't mend itself).
    """
    return isinstance(exc, (sqlite3.OperationalError, ProgressError)) or type(exc) is sqlite3.DatabaseError


class BackgroundWriter:
    """Writes changes to the database on a daemon thread, in order, retrying failures."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], report: Callable[[str], None],
                 retry_every: float = RETRY_EVERY, stuck: str | None = None) -> None:
        """
        Args:
            connect: opens a connection to the database (called on the writer thread, again after a failure).
            report: told, from the writer thread, when saving stops, resumes, or drops a change.
            retry_every: seconds between attempts at a failing change.
            stuck: why the file can't be written yet (the caller has told the learner): the writer
                keeps trying to connect from the start, and says so once it can.
        """
        self._connect = connect
        self._report = report
        self._retry_every = retry_every
        self._cond = threading.Condition()
        self._queue: deque[Change] = deque()
        self._failure: str | None = stuck
        """Why the change at the head of the queue (or connecting) failed last, while it keeps failing."""
        self.connected = False
        """Whether the writer holds a connection that has passed the file's checks."""
        self._landed = 0
        """Changes written (or dropped) so far: closing waits while this grows."""
        self._closing = False
        self._abandoned = False
        self._commit_lock = threading.Lock()
        """Held across each commit and by close() when it gives up, so nothing commits after close reported it lost."""
        self._thread = threading.Thread(target=self._run, name="progress-writer", daemon=True)
        self._thread.start()

    @property
    def failure(self) -> str | None:
        """Why saving is stuck, or None while changes land."""
        return self._failure

    def submit(self, change: Change) -> None:
        """Queue change; it lands in the background (wait_idle waits for it)."""
        with self._cond:
            if self._closing:  # e.g. a worker finishing after the app closed
                logger.error("progress change %s after closing, not saved: %r", change.what, change.statements)
                return
            self._queue.append(change)
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to timeout for the queue to empty (not at all while saving is stuck); True if it is empty."""
        with self._cond:
            if self._failure is not None:
                return not self._queue
            return self._cond.wait_for(lambda: not self._queue, timeout)

    def close(self, timeout: float) -> tuple[list[Change], str | None]:
        """Write what is queued while changes keep landing; stop after timeout seconds in which none did.

        Returns the changes never written, and why.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        landed = -1
        while self._thread.is_alive() and landed != self._landed:  # a long queue is still moving
            landed = self._landed
            self._thread.join(timeout)
        # A change still being written either commits before this or is rolled back, never after.
        with self._commit_lock:
            self._abandoned = True
        with self._cond:
            self._cond.notify_all()
            return [change for change in self._queue if not change.done], self._failure

    def _wanted(self, connected: bool) -> bool:
        """Whether there is work: a change, closing, or (stuck from the start) a connection to make."""
        return bool(self._queue) or self._closing or (not connected and self._failure is not None)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            with self._cond:
                self._cond.wait_for(partial(self._wanted, conn is not None))
                if self._abandoned or (self._closing and not self._queue):
                    break
                change = self._queue[0] if self._queue else None
            try:
                if conn is None:
                    conn = self._connect()
                    self.connected = True
                if change is not None and not self._commit(conn, change):
                    break  # close() gave up on it
            # Anything, so that the thread never dies: a dead writer would stop all saving without a word.
            except Exception as exc:  # noqa: BLE001
                if conn is not None:
                    conn.close()
                    conn = None
                    self.connected = False
                if isinstance(exc, DamagedDatabase):
                    self._give_up(exc)  # what is queued, or comes, is returned by close()
                    break
                if change is None or _retryable(exc):
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
            self.connected = False

    def _commit(self, conn: sqlite3.Connection, change: Change) -> bool:
        """Write change in one transaction; False (rolled back) when close() has already given up on it."""
        try:
            for sql, args in change.statements:
                conn.execute(sql, args)
            with self._commit_lock:
                if self._abandoned:
                    conn.rollback()
                    return False
                conn.commit()
                change.done = True
            return True
        except BaseException:
            with suppress(sqlite3.Error):  # a connection too broken to roll back is closed next anyway
                conn.rollback()
            raise

    def _give_up(self, exc: DamagedDatabase) -> None:
        with self._cond:
            self._failure = f"the file is damaged: {exc}"
            waiting = len(self._queue)
        logger.error("progress database damaged, saving stopped: %s", exc)
        self._report(f"Your progress can't be saved: the file is damaged ({exc}). {waiting} change(s), and what "
                     f"you do from now on, will be listed in the log when you quit; the next start moves the "
                     f"damaged file aside.")

    def _stuck(self, change: Change | None, exc: BaseException) -> None:
        with self._cond:
            first = self._failure is None
            self._failure = str(exc)
            waiting = len(self._queue)
        if first:
            logger.warning("progress change %s not saved yet: %s", change.what if change else "(connecting)", exc)
            self._report(f"Your progress can't be saved right now ({exc}). {waiting} change(s) are kept and "
                         f"will be saved as soon as it works again; please keep the workbench open until then.")
        with self._cond:
            # While closing, keep trying until close() gives up, without spinning.
            self._cond.wait(0.1 if self._closing else self._retry_every)

    def _finish(self, change: Change | None) -> None:
        """change landed (or was dropped); None: connecting, which was stuck, worked."""
        with self._cond:
            if change is not None:
                self._queue.popleft()
                change.done = True
                self._landed += 1
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

    def submit(self, change: Change) -> None:
        with self._lock:
            try:
                apply_change(self._conn, change)
            except sqlite3.Error as exc:
                logger.error("progress change %s failed in memory: %s", change.what, exc)
                self._report(f"A change to your progress ({change.what}) failed: {exc}.")
                return
        change.done = True
        self.count += 1

    def wait_idle(self, timeout: float) -> bool:
        return True

    def close(self, timeout: float) -> tuple[list[Change], str | None]:
        return [], None
