"""Progress callbacks: the type the engines report through, and one part of an outer bar."""

from __future__ import annotations

from collections.abc import Callable

from workbench_engines.errors import EngineError

Progress = Callable[[float, str], None]
"""progress(fraction done, what); an exception it raises stops the work and propagates (the caller's cancel)."""


def sub_progress(progress: Progress | None, start: float, end: float) -> Progress | None:
    """``progress`` for a step that fills [start, end] of an outer bar: the step's fraction f is reported as
    start + (end − start)·f. None stays None, so a step can pass it on whether or not anyone listens."""
    if progress is None:
        return None
    if not 0.0 <= start <= end <= 1.0:
        raise EngineError(f"a progress sub-range needs 0 ≤ start ≤ end ≤ 1, got [{start}, {end}]")

    def report(fraction: float, what: str) -> None:
        progress(start + (end - start) * fraction, what)

    return report
