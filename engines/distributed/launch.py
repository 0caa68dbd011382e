"""Start N local rank processes the torchrun way, carry their reports back, and never leave one behind.

``launch("pkg.module:function", kwargs, procs=2)`` starts ``procs`` processes
of ``python -m workbench_engines.distributed.rank`` (see that module for the
rank's side), each calling ``function(ctx, **kwargs)`` inside a gloo process
group, and returns their results in rank order.

The rendezvous is torchrun's (torch.distributed.run): environment variables
MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, and a
TCP store at MASTER_ADDR:MASTER_PORT served by rank 0. Bounded and local:
MASTER_ADDR is always 127.0.0.1; the port is chosen by binding port 0 on
127.0.0.1 here, in the parent, and the bound socket itself is handed to rank 0
(so no other program can take the port in between, and the store listens on
loopback only); gloo is kept on the loopback device (GLOO_SOCKET_IFNAME=lo).

Each rank runs single-threaded (OMP_NUM_THREADS=1 and torch.set_num_threads(1)):
two ranks on a 2-core machine then use one core each.

Cleanup, case by case:

- ``cancel`` (a threading.Event) set: the parent terminates every rank
  (SIGTERM, then SIGKILL after a grace period) and raises Cancelled.
- ``stop`` set: a gentle request, forwarded to every rank's stdin; a rank that
  polls ``ctx.stop_requested()`` finishes its step and returns.
- A rank raises: it sends its traceback and exits; the parent kills the others
  at once (one may be waiting in a collective for the rank that died) and
  raises RankFailed with the traceback. A rank that dies without a word (killed,
  a crash in C) is reported with its exit status and the end of its log.
- Ctrl+C or any exception in the parent while it waits: the ``finally`` kills
  every rank before the exception goes on. Ranks sit in their own process group,
  so the terminal's Ctrl+C reaches only the parent, which decides.
- The parent is killed outright (SIGKILL, or SIGTERM's default action): each
  rank has asked Linux for PR_SET_PDEATHSIG=SIGKILL, so the kernel kills it;
  as a fallback the rank's watchdog sees its stdin end or ``getppid()`` change
  and exits. PR_SET_PDEATHSIG follows the *thread* that started the rank, so
  ``launch`` must be called from a thread that lives until it returns (it does
  not return before the ranks end, so any caller's thread qualifies).

Example::

    >>> results = launch("workbench_engines.distributed.ddp:gradient_check_rank", {...}, procs=2)
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from workbench_engines.distributed.wire import FrameBuffer, write_frame
from workbench_engines.errors import Cancelled, EngineError

MASTER_ADDR = "127.0.0.1"
"""Where the ranks meet: loopback only, always."""

GRACE_S = 2.0
"""How long a rank gets after SIGTERM before SIGKILL."""


class RankFailed(EngineError):
    """A rank raised or died; the others were stopped. ``traceback`` holds the rank's own traceback text."""

    def __init__(self, rank: int, message: str, traceback_text: str) -> None:
        super().__init__(f"rank {rank} {message}" + (f":\n{traceback_text.rstrip()}" if traceback_text else ""))
        self.rank = rank
        self.traceback = traceback_text


@dataclass
class _Rank:
    """The parent's handle on one rank."""

    rank: int
    process: subprocess.Popen
    channel: int
    """Read end of the rank's report pipe."""
    log: Path
    buffer: FrameBuffer
    result: Any = None
    done: bool = False
    """A result arrived."""
    error: str | None = None
    """The traceback it sent."""
    closed: bool = False
    """Its report pipe reached end of file."""


def free_listening_socket() -> socket.socket:
    """A TCP socket bound to 127.0.0.1 on a free port (port 0 lets the kernel pick), already listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((MASTER_ADDR, 0))
    sock.listen(64)
    return sock


def rank_environment(rank: int, procs: int, port: int, parent: int) -> dict[str, str]:
    """The environment one rank starts with: torchrun's variables plus this package's own (WB_DIST_*)."""
    env = dict(os.environ)
    env.update({
        "MASTER_ADDR": MASTER_ADDR, "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(procs),
        "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(procs), "OMP_NUM_THREADS": "1",
        "WB_DIST_PARENT_PID": str(parent), "PYTHONUNBUFFERED": "1",
    })
    env["GLOO_SOCKET_IFNAME"] = loopback_interface()
    return env


def loopback_interface() -> str:
    """The loopback interface's name ("lo" on Linux, "lo0" on macOS and the BSDs), for gloo's own sockets.

    Raises:
        EngineError: no loopback interface is found, so gloo could not be kept on 127.0.0.1.
    """
    names = [name for _, name in socket.if_nameindex()]
    for name in ("lo", "lo0"):
        if name in names:
            return name
    raise EngineError(f"no loopback interface (lo or lo0) among {names}: the ranks would not stay on 127.0.0.1")


def launch(
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    procs: int = 2,
    on_report: Callable[[int, Any], None] | None = None,
    on_start: Callable[[list[int]], None] | None = None,
    cancel: threading.Event | None = None,
    stop: threading.Event | None = None,
    timeout_s: float = 120.0,
) -> list[Any]:
    """Run ``target(ctx, **kwargs)`` in ``procs`` rank processes joined in one gloo group; their results by rank.

    Args:
        target: "package.module:function", importable in a fresh interpreter; called with a
            ``rank.RankContext`` first, then ``kwargs``.
        kwargs: Keyword arguments, the same for every rank (picklable).
        procs: How many ranks (WORLD_SIZE), ≥ 1.
        on_report: Called in this thread as ``on_report(rank, payload)`` for every ``ctx.report(payload)``.
        on_start: Called once with the ranks' process ids, as soon as they exist.
        cancel: When set, the ranks are terminated and Cancelled is raised.
        stop: When set, every rank is asked to stop (``ctx.stop_requested()``); they decide when.
        timeout_s: The bound on the rendezvous and on every collective inside the ranks.

    Returns:
        What each rank's target returned, rank 0 first.

    Raises:
        EngineError: procs < 1.
        RankFailed: a rank raised (its traceback is in the message) or died.
        Cancelled: ``cancel`` was set.
    """
    if procs < 1:
        raise EngineError(f"procs must be at least 1, got {procs}")
    ranks: list[_Rank] = []
    selector = selectors.DefaultSelector()
    with tempfile.TemporaryDirectory(prefix="wb-ranks-") as logs:
        try:
            with free_listening_socket() as listener:
                for rank in range(procs):
                    ranks.append(_start(rank, procs, listener, Path(logs), target, kwargs or {}, timeout_s))
                    selector.register(ranks[-1].channel, selectors.EVENT_READ, ranks[-1])
            if on_start is not None:
                on_start([r.process.pid for r in ranks])
            _supervise(ranks, selector, on_report, cancel, stop)
        finally:
            _terminate(ranks)
            selector.close()
            for r in ranks:
                os.close(r.channel)
    return [r.result for r in ranks]


def _start(rank: int, procs: int, listener: socket.socket, logs: Path, target: str, kwargs: dict,
           timeout_s: float) -> _Rank:
    """Start one rank: its report pipe, its log, its environment; then write its job to its stdin."""
    read_end, write_end = os.pipe()
    env = rank_environment(rank, procs, listener.getsockname()[1], os.getpid())
    env["WB_DIST_FD"] = str(write_end)
    passed = [write_end]
    if rank == 0:
        env["WB_DIST_LISTEN_FD"] = str(listener.fileno())
        passed.append(listener.fileno())
    log = logs / f"rank{rank}.log"
    with open(log, "wb") as out:
        # process_group=0: a group of its own, so the terminal's Ctrl+C goes to the parent alone.
        process = subprocess.Popen([sys.executable, "-m", "workbench_engines.distributed.rank"], env=env,
                                   stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                   pass_fds=passed, process_group=0)
    os.close(write_end)
    os.set_blocking(read_end, False)
    try:
        write_frame(process.stdin.fileno(), {"target": target, "kwargs": kwargs, "timeout": timeout_s})
    except BrokenPipeError:
        # It died before reading its job: its report pipe ends at once and _supervise reports it, with its log.
        process.poll()
    return _Rank(rank, process, read_end, log, FrameBuffer())


def _supervise(ranks: list[_Rank], selector: selectors.BaseSelector, on_report, cancel, stop) -> None:
    """Wait for every rank's result, passing reports on; stop all at the first failure or a cancel."""
    stop_sent = False
    while not all(r.done and r.process.poll() is not None for r in ranks):
        if cancel is not None and cancel.is_set():
            raise Cancelled("the ranks were cancelled")
        if stop is not None and stop.is_set() and not stop_sent:
            stop_sent = True
            for r in ranks:
                if r.process.poll() is None:
                    try:
                        write_frame(r.process.stdin.fileno(), "stop")
                    except BrokenPipeError:  # it is exiting; its status is read below
                        continue
        for key, _ in selector.select(timeout=0.1):
            _drain(key.data, selector, on_report)
        for r in ranks:
            status = r.process.poll()
            if status is None:
                continue
            # Everything it wrote before it exited is still in the pipe; a pipe some other process still holds
            # open never ends, so the wait is bounded (and cancel still answers).
            deadline = time.monotonic() + GRACE_S
            while not r.closed and time.monotonic() < deadline:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("the ranks were cancelled")
                _drain(r, selector, on_report, wait=True)
            if not r.closed:
                r.closed = True
                selector.unregister(r.channel)
            if r.error is not None or not r.done:
                _raise_first_failure(ranks, selector, on_report)


def _raise_first_failure(ranks: list[_Rank], selector: selectors.BaseSelector, on_report) -> None:
    """Raise RankFailed for the rank that failed first.

    When one rank raises, its peers' collectives break a moment later and they raise too; each error carries the
    time it was caught, and what every rank has written so far is read first, so the root cause is reported.
    """
    for r in ranks:
        if not r.closed:
            _drain(r, selector, on_report)
    errors = sorted((r.error[0], r.rank, r.error[1]) for r in ranks if r.error is not None)
    # A rank that died without a word (a signal, a crash in C) comes first: its peers' errors (a connection reset
    # in a collective) are the consequence.
    for r in ranks:
        status = r.process.poll()
        if status is not None and not r.done and r.error is None:
            others = f" (then rank{'s' if len(errors) > 1 else ''} {', '.join(str(e[1]) for e in errors)} raised)"
            raise RankFailed(r.rank, f"died with exit status {status} before returning" + (others if errors else ""),
                             _tail(r.log))
    if errors:
        _, rank, text = errors[0]
        later = [str(other) for _, other, _ in errors[1:]]
        note = f" (then rank{'s' if len(later) > 1 else ''} {', '.join(later)} failed too)" if later else ""
        raise RankFailed(rank, "raised" + note, text)


def _drain(r: _Rank, selector: selectors.BaseSelector, on_report, wait: bool = False) -> None:
    """Read what rank ``r`` has written and act on each complete frame."""
    try:
        chunk = os.read(r.channel, 1 << 20)
    except BlockingIOError:
        if wait:
            time.sleep(0.01)
        return
    if not chunk:
        r.closed = True
        selector.unregister(r.channel)
        return
    for kind, payload in r.buffer.feed(chunk):
        if kind == "report" and on_report is not None:
            on_report(r.rank, payload)
        elif kind == "result":
            r.result, r.done = payload, True
        elif kind == "error":
            r.error = payload


def _terminate(ranks: list[_Rank]) -> None:
    """SIGTERM every live rank's process group, SIGKILL what is left after GRACE_S, and reap them all."""
    live = [r for r in ranks if r.process.poll() is None]
    for r in live:
        _signal_group(r.process, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for r in live:
        try:
            r.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(r.process, signal.SIGKILL)
    for r in ranks:
        r.process.wait()
        if r.process.stdin is not None:
            try:
                r.process.stdin.close()
            except BrokenPipeError:
                continue


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the rank's process group (the rank and anything it started)."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        return


def _tail(log: Path, lines: int = 20) -> str:
    """The last lines of a rank's log, for a rank that died without sending a traceback."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
