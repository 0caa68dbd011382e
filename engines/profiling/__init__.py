"""Timers, profiles and the side-by-side benchmark runner."""

from workbench_engines.profiling.bench import (
    BENCHMARKS,
    BenchmarkSpec,
    Case,
    Contender,
    Report,
    baselines_of,
    environment,
    run_cases,
    run_benchmark,
    run_quality,
)
from workbench_engines.profiling.profile import Profile, Timer, measure, median, peak_memory

__all__ = [
    "BENCHMARKS",
    "BenchmarkSpec",
    "Case",
    "Contender",
    "Profile",
    "Report",
    "baselines_of",
    "environment",
    "run_cases",
    "Timer",
    "measure",
    "median",
    "peak_memory",
    "run_benchmark",
    "run_quality",
]
