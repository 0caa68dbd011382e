"""What one engine run cost: wall time, FLOPs, bytes moved, peak memory, backend.

A :class:`Profile` is the one record of a measurement, whether an engine call
timed itself (:func:`measure`) or the benchmark runner timed a contender
against its peers (then it also says whether the output matched the
reference, and its speed as a ratio of the baselines').
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable


@dataclass(frozen=True)
class Profile:
    """The measured cost of one implementation on one workload, with where each figure came from.

    FLOPs and bytes are counted from the algorithm (the engine states its
    formula), not read from hardware counters, which rented GPUs often forbid.
    """

    backend: str
    """Which implementation ran: reference, native, torch, cuda (or python for plain code)."""
    wall_s: float
    """Median wall-clock seconds of one call."""
    flops: float = 0.0
    """Floating-point operations per call, counted from the algorithm."""
    bytes_moved: float = 0.0
    """Bytes read plus written per call, counted from the shapes."""
    peak_bytes: int | None = None
    """Peak memory allocated during one call, or None where it can't be seen."""
    repeats: int = 1
    """How many timed calls the median is over."""
    min_s: float | None = None
    """The fastest timed call."""
    timer: str = "wall clock (perf_counter)"
    """Where wall_s came from."""
    memory_source: str = "tracemalloc"
    """Where peak_bytes came from."""
    name: str = ""
    """The contender's name in a race (e.g. "native flash 1T"); empty for a lone call."""
    case: str = ""
    """The workload it raced on (e.g. "causal seq 2048")."""
    matches: bool | None = None
    """Whether its output matched the case's reference output; None when not compared."""
    mismatch: str | None = None
    """How it differed, when it did."""
    ratios: dict[str, float] = field(default_factory=dict)
    """baseline name -> baseline median / this median (above 1: faster than the baseline)."""
    note: str = ""
    """A short word on its output (tokens/s, acceptance rate, ...)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Engine-specific figures (threads, shapes, ...)."""
    roof_share: float | None = None
    """Its rate as a share of the machine's roofline at its thread count (see profiling/roofline.py), or None."""
    roof_bound: str = ""
    """Which ceiling roof_share is of: "peak" (the FMA units) or "bw" (memory read bandwidth)."""

    @property
    def label(self) -> str:
        """The name a table shows: the contender's, or the backend for a lone call."""
        return self.name or self.backend

    @property
    def gflops(self) -> float:
        """Achieved GFLOP/s (0 when FLOPs aren't counted or the time is 0)."""
        return self.flops / self.wall_s / 1e9 if self.wall_s > 0 and self.flops else 0.0

    @property
    def gbytes_per_s(self) -> float:
        """Achieved GB/s of counted traffic."""
        return self.bytes_moved / self.wall_s / 1e9 if self.wall_s > 0 and self.bytes_moved else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Every field plus the derived rates, for JSON (``workbench bench --json``, the exercise runner)."""
        data = asdict(self)
        data["gflops"] = self.gflops
        data["gbytes_per_s"] = self.gbytes_per_s
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        """The Profile that as_dict wrote (the derived rates are recomputed, not read)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class Timer:
    """Context manager measuring wall time with perf_counter_ns.

    >>> with Timer() as t:
    ...     pass
    >>> t.seconds >= 0
    True
    """

    def __enter__(self) -> "Timer":
        self._start = time.perf_counter_ns()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = (time.perf_counter_ns() - self._start) / 1e9


def peak_memory(fn: Callable[[], object]) -> tuple[object, int]:
    """Run fn once under tracemalloc; return its result and peak bytes allocated.

    tracemalloc sees Python and NumPy allocations (NumPy reports to it), so a
    native kernel's output array counts; torch's own allocator is not seen.
    """
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already:
            tracemalloc.stop()
    return result, max(0, peak - base)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of no values")
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def measure(
    fn: Callable[[], object],
    *,
    backend: str,
    flops: float = 0.0,
    bytes_moved: float = 0.0,
    warmup: int = 1,
    repeats: int = 5,
    track_memory: bool = True,
    extra: dict[str, Any] | None = None,
) -> tuple[object, Profile]:
    """Warm up, time ``repeats`` calls, then measure peak memory in one more call.

    For an engine call that reports its own cost; races between several
    implementations go through :func:`workbench_engines.profiling.bench.run_cases`.
    Memory is measured apart from the timed calls because tracemalloc slows
    allocation. Returns the last result and its Profile.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    result: object = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        with Timer() as t:
            result = fn()
        times.append(t.seconds)
    peak = None
    if track_memory:
        result, peak = peak_memory(fn)
    profile = Profile(
        backend=backend,
        wall_s=median(times),
        min_s=min(times),
        flops=flops,
        bytes_moved=bytes_moved,
        peak_bytes=peak,
        repeats=repeats,
        extra=dict(extra or {}),
    )
    return result, profile
