"""Starting the sandboxed child and outliving whatever it does: bounded reads, a deadline, cancel, no survivors.

The child (:mod:`workbench.exercises.runner`) starts isolated from the
learner's environment (``python -I``, which implies ``-P``: no script or
current folder on ``sys.path``, no ``PYTHON*`` variables, no user site), in a
scratch folder outside the workspace, with an environment that does not name
the workbench's data folder, in a session of its own. It gets its request on
one pipe and answers on another; its stdout and stderr are read as they come,
keeping only the last :data:`OUTPUT_TAIL` bytes, and its reply is refused
past ``reply_limit`` bytes, so what the parent holds of the child's output is
bounded: the tails, the reply (at most :data:`REPLY_LIMIT`), and then what
:func:`workbench.exercises.wire.decode` builds from it, whose JSON part has
limits of its own. After the run, however it ended, every process in the
child's session is killed.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

OUTPUT_TAIL = 64 * 1024
REPLY_LIMIT = 64 * 2**20
"""The largest reply read: the largest real one (kv_cache_append's race, its cache before and after) is 16 MiB."""
CHUNK = 1 << 16
PROGRESS_LINE_LIMIT = 64 * 1024
"""The longest progress line passed on (a line of figures and a sample of text is under 2 KiB)."""
DRAIN_SECONDS = 2.0
"""How long pipes are read after the child exits (something it started may still hold them), and how long
it may linger after closing its reply."""
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "WB_DISABLE_NATIVE")
# Every contender races on one thread: NumPy's BLAS and torch would otherwise
# take all cores, and their spinning idle threads slow whoever runs next.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


@dataclass
class ChildRun:
    returncode: int
    """The exit status; negative for the signal that ended it."""
    reply: bytes
    """Everything it wrote on the reply pipe (empty if nothing)."""
    stdout: str
    """The last OUTPUT_TAIL bytes of its stdout."""
    stderr: str
    stopped: str | None
    """Why the parent stopped it (deadline, cancel, too much output); None if it ended by itself."""
    seconds: float


class Tail:
    """The last ``limit`` bytes of a stream, however long it runs."""

    def __init__(self, limit: int = OUTPUT_TAIL) -> None:
        self.limit = limit
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > 2 * self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        return bytes(self.data[-self.limit :]).decode("utf-8", "replace")


SCRATCH_PREFIX = "workbench-exercise-"


def make_scratch() -> Path:
    """A fresh scratch folder named after this process, after removing ours left by workbenches that
    died without cleaning up (killed along with their runner, say by an SSH drop)."""
    for stale in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        owner = stale.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        try:
            mine = stale.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and owner.isdigit() and Path("/proc/self").exists() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))


def child_env(scratch: Path) -> dict[str, str]:
    """A minimal environment: no $WORKBENCH_HOME or XDG folders, home and temp in the scratch folder."""
    kept = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    return {**kept, **THREAD_ENV, "HOME": str(scratch), "TMPDIR": str(scratch)}


def _session_members(sid: int) -> list[int]:
    """Processes whose session is sid (Linux /proc; fields after the command name: state ppid pgrp session)."""
    members = []
    if not Path("/proc/self/stat").exists():
        return members  # no /proc: the process group is all that can be reached
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def kill_session(sid: int) -> None:
    """SIGKILL the process group and every process left in session sid (which the group may not cover)."""
    for _ in range(3):
        with suppress(ProcessLookupError, PermissionError):  # already gone
            os.killpg(sid, signal.SIGKILL)
        alive = [pid for pid in _session_members(sid) if _state(pid) not in ("Z", "X", None)]
        if not alive:
            return
        for pid in alive:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the child has exited, without reaping it where the OS allows (its pid stays ours until wait())."""
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class ProgressLines:
    """Lines the child writes on its progress pipe, handed on one at a time; a line past the limit is dropped."""

    def __init__(self, on_line: Callable[[bytes], None], limit: int = PROGRESS_LINE_LIMIT) -> None:
        self.on_line, self.limit = on_line, limit
        self.pending = bytearray()
        self.dropping = False

    def add(self, chunk: bytes) -> None:
        self.pending += chunk
        while (end := self.pending.find(b"\n")) >= 0:
            line = bytes(self.pending[:end])
            del self.pending[: end + 1]
            if not self.dropping and len(line) <= self.limit:
                self.on_line(line)
            self.dropping = False
        if len(self.pending) > self.limit:  # an endless line: its rest is skipped up to the next newline
            self.pending.clear()
            self.dropping = True


def run_child(args: list[str], request: bytes, *, timeout: float, should_stop: Callable[[], bool] | None = None,
              reply_limit: int | None = None, on_progress: Callable[[bytes], None] | None = None) -> ChildRun:
    """Run ``python -I -m workbench.exercises.runner *args``, feed it request, and collect what it says.

    reply_limit defaults to :data:`REPLY_LIMIT`, read when called. With on_progress, the child gets a third
    pipe (``--progress-fd``) and each line it writes there is passed to on_progress as it arrives (on this
    thread), at most :data:`PROGRESS_LINE_LIMIT` bytes a line; what a line says is for the caller to check.
    """
    reply_limit = REPLY_LIMIT if reply_limit is None else reply_limit
    scratch = make_scratch()
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    progress_r, progress_w = os.pipe() if on_progress is not None else (-1, -1)
    cmd = [sys.executable, "-I", "-B", "-m", "workbench.exercises.runner", *args, "--parent-pid", str(os.getpid()),
           "--request-fd", str(request_r), "--reply-fd", str(reply_w)]
    if on_progress is not None:
        cmd += ["--progress-fd", str(progress_w)]
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=tuple(fd for fd in (request_r, reply_w, progress_w) if fd >= 0),
                                start_new_session=True, cwd=scratch, env=child_env(scratch))
    except BaseException:
        for fd in (request_r, request_w, reply_r, reply_w, progress_r, progress_w):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    os.close(request_r)
    os.close(reply_w)
    if progress_w >= 0:
        os.close(progress_w)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = Tail(), Tail()
    tails = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    if on_progress is not None:
        tails[progress_r] = ProgressLines(on_progress)
    reply = bytearray()
    pending = memoryview(request)
    selector = selectors.DefaultSelector()
    for fd in (request_w, reply_r, *tails):
        os.set_blocking(fd, False)
    selector.register(request_w, selectors.EVENT_WRITE)
    for fd in (reply_r, *tails):
        selector.register(fd, selectors.EVENT_READ)
    stopped, exited_at, replied_at = None, None, None
    try:
        while len(selector.get_map()) and stopped is None:
            now = time.perf_counter()
            if now - started > timeout:
                stopped = f"did not finish within {timeout:g} s (an endless loop?); it was stopped"
            elif should_stop is not None and should_stop():
                stopped = "cancelled"
            elif exited_at is None and _exited(proc):
                exited_at = now
                kill_session(proc.pid)  # anything it left behind would hold the pipes open
            elif exited_at is not None and now - exited_at > DRAIN_SECONDS:
                break
            elif replied_at is not None and now - replied_at > DRAIN_SECONDS:
                break  # it answered but lingers (an atexit handler, a thread): the answer stands, it is killed
            for key, _ in selector.select(timeout=0.05):
                fd = key.fd
                if fd == request_w:
                    try:
                        pending = pending[os.write(fd, pending[:CHUNK]):]
                    except BlockingIOError:
                        continue
                    except OSError:  # the child closed its end early (it crashed, or never read the request)
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(fd)
                        os.close(request_w)
                        request_w = -1
                    continue
                try:
                    chunk = os.read(fd, CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(fd)
                    replied_at = now if fd == reply_r else replied_at
                elif fd == reply_r:
                    reply += chunk
                    if len(reply) > reply_limit:
                        stopped = f"sent more than {reply_limit // 2**20} MiB of output; it was stopped"
                elif fd in tails:
                    tails[fd].add(chunk)
        settle = time.perf_counter() + 0.5
        while stopped is None and not _exited(proc) and time.perf_counter() < settle:
            time.sleep(0.01)  # every pipe is closed: it is exiting, or it closed them to hide
    finally:
        selector.close()
        kill_session(proc.pid)
        proc.wait()
        for fd in (request_w, reply_r, progress_r):
            if fd >= 0:
                os.close(fd)
        proc.stdout.close()
        proc.stderr.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return ChildRun(proc.returncode, bytes(reply), out.text(), err.text(), stopped, time.perf_counter() - started)
