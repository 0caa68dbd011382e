"""Rank functions that exercise the launcher's cleanup: a collective that runs until it is stopped, a rank that fails.

``launch`` targets for tests and for a lab showing what happens when a run is
cancelled or a rank crashes: in both the other ranks are inside a collective,
waiting for a peer, and would wait until the collective's timeout if the
parent did not kill them.
"""

from __future__ import annotations

import os
import time


def spin(ctx, pause_s: float = 0.05) -> int:
    """All-reduce a small tensor over and over, reporting {"pid", "round"} after each, until asked to stop.

    Args:
        ctx: The rank's RankContext.
        pause_s: Sleep between rounds.

    Returns:
        The rounds done, once a stop request reached every rank (a stop flag is summed in the all-reduce).
    """
    import torch
    import torch.distributed as dist

    rounds = 0
    while True:
        flag = torch.tensor([float(ctx.stop_requested())])
        dist.all_reduce(flag)
        rounds += 1
        ctx.report({"pid": os.getpid(), "round": rounds})
        if flag.item() > 0:
            return rounds
        time.sleep(pause_s)


def fail_on_rank(ctx, failing_rank: int = 1, message: str = "this rank failed on purpose") -> None:
    """Every rank reports its pid and meets at a barrier; then ``failing_rank`` raises ValueError(message) while
    the others enter an all-reduce that can never complete.

    Raises:
        ValueError: on ``failing_rank``.
    """
    import torch
    import torch.distributed as dist

    ctx.report({"pid": os.getpid()})
    dist.barrier()
    if ctx.rank == failing_rank:
        raise ValueError(message)
    dist.all_reduce(torch.ones(1))
