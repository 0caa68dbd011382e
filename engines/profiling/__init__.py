"""Timers, profiles and the side-by-side benchmark runner."""

from workbench_engines.profiling.bench import (
    BENCHMARKS,
    BenchmarkSpec,
    Case,
    Contender,
    Report,
    Row,
    run_benchmark,
)
from workbench_engines.profiling.profile import Profile, Timer, measure, median, peak_memory

__all__ = [
    "BENCHMARKS",
    "BenchmarkSpec",
    "Case",
    "Contender",
    "Profile",
    "Report",
    "Row",
    "Timer",
    "measure",
    "median",
    "peak_memory",
    "run_benchmark",
]
