"""Every benchmark row read against this machine's roofline, measured in the same run.

A roofline (Williams, Waterman and Patterson, CACM 2009) bounds a kernel's
rate by min(peak, intensity x bandwidth), where intensity is its FLOPs per byte
of memory traffic. ``workbench bench machine`` prints the two ceilings in full;
before any other benchmark, :func:`measure` runs a short version of the same
cases (the FMA chains, or torch's matmul without the C build, and the read
stream) at one thread and at all, and :meth:`Roofline.place` gives each row
its share of the ceiling that binds it: of the peak when its counted intensity
is above the ridge point, of the read bandwidth below it (and when only bytes
are counted). A share far above 100% of bandwidth means the working set stayed
in cache, which the DRAM stream does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from workbench_engines.profiling.profile import Profile

THREADS_IN_NAME = re.compile(r"\b(\d+)T\b")
"""How a contender's name gives its thread count ("native 2T"), the convention every benchmark follows."""
QUICK_FMA_STEPS = 200_000
QUICK_READ_FLOATS = 1 << 20
RUN_FMA_STEPS = 10_000_000
"""A fifth of bench machine's chains: about 40 ms at one thread here, still far longer than the timer's grain."""
RUN_READ_FLOATS = 1 << 25
"""128 MiB: past any last-level cache, a quarter of bench machine's stream."""


@dataclass(frozen=True)
class Roofline:
    """The ceilings by thread count: fp32 GFLOP/s and read GB/s, and what measured the peak."""

    peak_gflops: dict[int, float]
    bandwidth_gbs: dict[int, float]
    peak_source: str
    """"FMA chains" (ours, in registers) or "torch matmul" (without the C build)."""

    def ceilings(self, threads: int | None) -> tuple[int, float, float]:
        """(threads, peak, bandwidth) at the largest measured count not above ``threads`` (None: the most).

        None is a row whose name gives no thread count: read against the all-thread ceilings, so a
        single-threaded one (NumPy) shows a smaller share than it would against one thread's.
        """
        counts = sorted(set(self.peak_gflops) & set(self.bandwidth_gbs))
        fitting = [n for n in counts if threads is None or n <= threads] or counts[:1]
        n = fitting[-1]
        return n, self.peak_gflops[n], self.bandwidth_gbs[n]

    def place(self, row: Profile) -> Profile:
        """row with its roof share: its rate over min(peak, intensity x bandwidth) at its thread count.

        Rows on a GPU, rows that count neither FLOPs nor bytes, and rows that
        did not match the reference keep no share.
        """
        if row.backend == "cuda" or row.matches is False or not (row.flops or row.bytes_moved) or row.wall_s <= 0:
            return row
        _, peak, bandwidth = self.ceilings(row_threads(row))
        if not (peak and bandwidth):
            return row
        if row.flops and (not row.bytes_moved or row.flops / row.bytes_moved * bandwidth >= peak):
            return replace(row, roof_share=row.gflops / peak, roof_bound="peak")
        if row.flops:
            return replace(row, roof_share=row.gflops / (row.flops / row.bytes_moved * bandwidth), roof_bound="bw")
        return replace(row, roof_share=row.gbytes_per_s / bandwidth, roof_bound="bw")

    def line(self) -> str:
        """The ceilings in one sentence, for the line under a table."""
        counts = sorted(set(self.peak_gflops) & set(self.bandwidth_gbs))
        ceilings = ", ".join(f"{n}T {self.peak_gflops[n]:.1f} GFLOP/s and {self.bandwidth_gbs[n]:.1f} GB/s"
                             for n in counts)
        return (f"roof: the row's rate as a share of this machine's ceiling at its thread count, measured in this run "
                f"({self.peak_source}; memory read): {ceilings}. 'peak' when its FLOPs per byte put it above the ridge "
                f"point, 'bw' below it; over 100% bw means its data stayed in cache")

    def as_dict(self) -> dict[str, Any]:
        return {"peak_gflops": self.peak_gflops, "bandwidth_gbs": self.bandwidth_gbs, "peak_source": self.peak_source}


def row_threads(row: Profile) -> int | None:
    """The thread count the row's name gives ("torch 2T" -> 2), or None."""
    found = THREADS_IN_NAME.findall(row.name)
    return int(found[-1]) if found else None


def from_rows(rows: list[Profile]) -> Roofline | None:
    """The ceilings bench machine's cases measured (the FMA chains or, failing them, torch's fp32 matmul; the
    best read stream, ours or torch's), or None when the rows hold neither a peak or a bandwidth."""
    from workbench_engines.profiling.machine import PEAK_CASE, read_bandwidth

    peak: dict[int, float] = {}
    source = ""
    for kind in ("FMA chains", "torch matmul"):
        for row in rows:
            n = row_threads(row)
            if row.case.startswith(PEAK_CASE) and row.name.startswith(kind) and "fp32" in row.case and n:
                peak[n] = row.gflops
        if peak:
            source = kind
            break
    bandwidth = {n: read_bandwidth(rows, n) for n in peak}
    bandwidth = {n: gbs for n, gbs in bandwidth.items() if gbs > 0}
    if not (peak and bandwidth):
        return None
    return Roofline(peak, bandwidth, source)


def measure(quick: bool = False) -> Roofline | None:
    """The ceilings at one thread and at all, from a short run of bench machine's cases (the FMA chains, or torch's
    fp32 matmul without the C build; the read stream); None when they measured no ceiling.

    quick (tests) uses inputs too small for figures worth reading.
    """
    from workbench_engines.backends import available
    from workbench_engines.profiling.bench import run_cases
    from workbench_engines.profiling.machine import fma_case, matmul_case, read_case, thread_counts

    threads = thread_counts()
    if available("native"):
        peak = fma_case(threads, QUICK_FMA_STEPS if quick else RUN_FMA_STEPS)
    else:
        peak = matmul_case(threads, 128 if quick else 512)
    read = read_case(threads, QUICK_READ_FLOATS if quick else RUN_READ_FLOATS)
    return from_rows(run_cases([peak, read], warmup=1, repeats=3))
