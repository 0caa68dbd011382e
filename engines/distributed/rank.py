"""One rank: the process ``launch`` starts, run as ``python -m workbench_engines.distributed.rank``.

In order, the rank:

1. arranges to die with its parent: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on
   Linux (the kernel kills it when the thread that started it ends), then
   checks ``os.getppid()`` in case the parent died before that call took
   effect; a watchdog thread keeps checking ``getppid()`` and treats the end of
   its stdin (the parent's end closes when the parent dies) the same way;
2. ignores SIGINT: Ctrl+C belongs to the parent, which decides how the ranks
   stop (the ranks also sit in a process group of their own, so a terminal's
   Ctrl+C never reaches them);
3. reads its job from stdin (one frame: the target "module:function" and its
   keyword arguments) and joins the gloo process group the torchrun way: the
   environment says MASTER_ADDR (always 127.0.0.1 here), MASTER_PORT, RANK,
   WORLD_SIZE, LOCAL_RANK. Rank 0 serves the rendezvous store on a socket the
   parent already bound to 127.0.0.1 (``WB_DIST_LISTEN_FD``, passed to
   ``TCPStore(master_listen_fd=...)``): torch's own store would listen on every
   interface, and a port chosen then closed could be taken before rank 0
   binds it. ``GLOO_SOCKET_IFNAME=lo`` keeps gloo's own connections on the
   loopback device. The timeout bounds the rendezvous and every collective, so a
   rank whose peer vanished gives up rather than wait for ever (the parent
   kills it sooner);
4. runs ``target(ctx, **kwargs)`` on one thread (``torch.set_num_threads(1)``)
   and sends back its result, or its traceback if it raised.

The protocol and process model follow torchrun (torch.distributed.run,
"elastic launch"): one process per rank, rendezvous through a TCP store at
MASTER_ADDR:MASTER_PORT.
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from workbench_engines.distributed.wire import read_frame, write_frame

PR_SET_PDEATHSIG = 1
"""prctl option number from <linux/prctl.h>: deliver a signal to this process when its parent thread ends."""

EXIT_ORPHANED = 70
"""The exit status of a rank that found its parent gone."""


@dataclass
class RankContext:
    """What a target function learns about its rank and how it talks to the parent."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    channel: int = field(repr=False)
    """The pipe to the parent (a file descriptor)."""
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when the parent asks the ranks to stop at the next step boundary."""

    def report(self, payload: Any) -> None:
        """Send ``payload`` (anything picklable) to the parent's ``on_report`` now."""
        write_frame(self.channel, ("report", payload))

    def stop_requested(self) -> bool:
        """Whether the parent asked for a graceful stop. Ranks may see it at different steps: agree through a
        collective before acting on it (``ddp`` sums a stop flag with the step's loss)."""
        return self.stop_event.is_set()


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent ends, then make sure the parent was still there."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(EXIT_ORPHANED)


def _watch_parent(parent: int, stop: threading.Event) -> None:
    """Exit when the parent is gone (stdin ends or getppid changes); set ``stop`` when it sends "stop"."""
    while True:
        ready, _, _ = select.select([0], [], [], 0.5)
        if os.getppid() != parent:
            os._exit(EXIT_ORPHANED)
        if ready:
            message = read_frame(0)
            if message is None:
                os._exit(EXIT_ORPHANED)
            if message == "stop":
                stop.set()


def _resolve(target: str) -> Callable:
    """The function named "package.module:function"."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _init_process_group(ctx: RankContext, timeout_s: float) -> None:
    """Join the gloo group through the TCP store at MASTER_ADDR:MASTER_PORT (served by rank 0 on the parent's
    socket)."""
    from datetime import timedelta

    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    listen_fd = os.environ.get("WB_DIST_LISTEN_FD")
    store = dist.TCPStore(ctx.master_addr, ctx.master_port, ctx.world_size, is_master=ctx.rank == 0,
                          timeout=timeout, master_listen_fd=int(listen_fd) if listen_fd else None)
    dist.init_process_group("gloo", store=store, rank=ctx.rank, world_size=ctx.world_size, timeout=timeout)


def sequence(ctx: RankContext, jobs: list[tuple[str, dict]]) -> list[Any]:
    """A ``launch`` target that runs several targets one after another in the same process group, paying the
    ranks' start-up (a torch import, a rendezvous) once.

    Args:
        ctx: This rank's context, passed on to each.
        jobs: ("package.module:function", kwargs) pairs.

    Returns:
        Each job's result, in order.
    """
    return [_resolve(target)(ctx, **kwargs) for target, kwargs in jobs]


def main() -> int:
    """Run one rank as the environment and the job on stdin describe; 0 on success, 1 if the target raised."""
    parent = int(os.environ["WB_DIST_PARENT_PID"])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    job = read_frame(0)
    if job is None:
        return EXIT_ORPHANED
    ctx = RankContext(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]),
                      os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["WB_DIST_FD"]))
    os.set_inheritable(ctx.channel, False)  # a process this rank starts must not keep the parent's pipe open
    threading.Thread(target=_watch_parent, args=(parent, ctx.stop_event), daemon=True,
                     name="parent-watchdog").start()
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    try:
        _init_process_group(ctx, job["timeout"])
        result = _resolve(job["target"])(ctx, **job["kwargs"])
        write_frame(ctx.channel, ("result", result))
        return 0
    except BaseException:  # noqa: BLE001 - whatever the target raised goes back to the parent as text
        # The time lets the parent tell the rank that failed first from those whose collectives then broke.
        write_frame(ctx.channel, ("error", (time.time(), traceback.format_exc())))
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown (torch's exit handlers take a second or more): the result is sent, the
    # process group destroyed, the log flushed.
    os._exit(status)
