"""What a collective costs: the ring formulas, the bytes the kernel saw this process send, and honest timing.

Ring all-reduce (Patarasuk & Yuan, 2009, "Bandwidth optimal all-reduce
algorithms for clusters of workstations"; the algorithm gloo runs by default
for an all-reduce, and NCCL for large buffers): the buffer of B bytes is cut in
N chunks; N − 1 steps of reduce-scatter, then N − 1 steps of all-gather, each
step sending one chunk of B/N bytes to the next rank and receiving one from the
previous. Per rank:

    all-reduce       sends 2(N − 1)/N · B bytes, receives as many
    reduce-scatter   sends  (N − 1)/N · B
    all-gather       sends  (N − 1)/N · B   (B the gathered size)

At N = 2 an all-reduce sends B: each rank ships half its buffer to be summed
and the other half of the sum back.

Measured: ``bytes_written()`` reads ``wchar`` from /proc/self/io, the bytes
this process passed to write-family system calls. Gloo sends through them, so
the difference around one collective is what this rank put on the wire,
including gloo's few hundred bytes of headers; gloo receives through calls
that ``rchar`` does not count, so received bytes are given by the formula (the
ring is symmetric: each rank receives what it sends). Measured this way gloo's
reduce-scatter turns out to send as many bytes as its all-reduce (torch's gloo
backend implements it as an all-reduce and keeps its slice); NCCL's sends half.

Timing: ``timed`` first waits at a barrier, so time a rank spends waiting for
a slower peer to finish computing is counted as waiting, not as communication;
then it times the collective alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


def ring_allreduce_bytes(buffer_bytes: int, world_size: int) -> float:
    """Bytes one rank sends (and receives) in a ring all-reduce of ``buffer_bytes``: 2(N − 1)/N · B."""
    return 2 * (world_size - 1) / world_size * buffer_bytes


def ring_half_bytes(buffer_bytes: int, world_size: int) -> float:
    """Bytes one rank sends in a ring reduce-scatter, or an all-gather, of ``buffer_bytes`` in all: (N − 1)/N · B."""
    return (world_size - 1) / world_size * buffer_bytes


def bytes_written() -> int | None:
    """This process's ``wchar`` from /proc/self/io (bytes passed to write-family calls); None where unreadable."""
    try:
        with open("/proc/self/io") as io:
            for line in io:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Transfer:
    """One collective, or the sum of several, as one rank saw it."""

    buffer_bytes: int = 0
    """The bytes of the tensors the collectives reduced or gathered (the full size)."""
    formula_sent: float = 0.0
    """What the ring formula says this rank sends."""
    measured_sent: int | None = 0
    """The kernel's count of bytes this rank wrote during the collectives; None where /proc is unavailable."""
    seconds: float = 0.0
    """Time inside the collectives."""
    wait_seconds: float = 0.0
    """Time at the barrier before them: waiting for the slowest rank to arrive."""

    def add(self, other: Transfer) -> None:
        """Fold another transfer into this one."""
        self.buffer_bytes += other.buffer_bytes
        self.formula_sent += other.formula_sent
        if self.measured_sent is None or other.measured_sent is None:
            self.measured_sent = None
        else:
            self.measured_sent += other.measured_sent
        self.seconds += other.seconds
        self.wait_seconds += other.wait_seconds


def timed(collective: Callable[[], object], buffer_bytes: int, formula_sent: float, *, barrier: bool = True) -> Transfer:
    """Run ``collective()`` (a blocking torch.distributed call) and measure it.

    Args:
        collective: Runs the collective.
        buffer_bytes: The full size of what it reduces or gathers.
        formula_sent: The ring formula's bytes sent by this rank.
        barrier: Wait at a barrier first and count that as waiting (off inside backward hooks, where the
            collectives of successive tensors already keep the ranks in step).

    Returns:
        The Transfer.
    """
    import torch.distributed as dist

    wait = 0.0
    if barrier:
        started = time.perf_counter()
        dist.barrier()
        wait = time.perf_counter() - started
    before = bytes_written()
    started = time.perf_counter()
    collective()
    seconds = time.perf_counter() - started
    after = bytes_written()
    sent = None if before is None or after is None else after - before
    return Transfer(buffer_bytes, formula_sent, sent, seconds, wait)
