"""The child process that judges one exercise: ``python -m workbench.exercises.runner``.

It limits its own memory and CPU time first, then imports the learner's
file, runs every check on fresh inputs, races the learner's function against
the engines' reference (and native or torch peers) through the benchmark
runner if all checks pass, validates the learner's output again on new
inputs after the timed runs, and prints one JSON line after MARKER. Whatever the learner's code does (raise, print, loop,
allocate without bound, crash) the parent process only ever sees this
process's output and exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import resource
import sys
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

MARKER = "WB-EXERCISE-RESULT "
WARMUP = 2
REPEATS = 5


def limit_resources(memory_mb: int, cpu_seconds: int) -> None:
    """Cap the data segment (heap and anonymous mappings) and CPU time of this process."""
    limit = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def load_function(path: Path, name: str, module_name: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise AttributeError(f"{path.name} defines no function {name}()")
    return fn


def _fresh(args: tuple) -> tuple:
    """Copies of mutable arguments, so no call sees another's writes (dicts and sets are read-only inputs)."""
    import numpy as np

    return tuple(a.copy() if isinstance(a, np.ndarray) else copy.deepcopy(a) if isinstance(a, list) else a for a in args)


def _where(exc: BaseException, learner_file: str) -> str:
    """The learner's line that raised, if the traceback passes through their file."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == learner_file]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (line {frame.lineno}: {frame.line})"


def run_checks(exercise_id: str, learner: Callable, seed: int, learner_file: str,
               output: io.StringIO) -> list[dict[str, Any]]:
    import numpy as np

    from workbench.exercises.checks import SPECS

    spec = SPECS[exercise_id]
    wrap = spec.wrap or (lambda f: f)
    mine, theirs = wrap(learner), wrap(spec.expected)
    results = []
    for name, args in spec.cases(np.random.default_rng(seed)):
        expected = theirs(*_fresh(args))
        try:
            with contextlib.redirect_stdout(output):
                got = mine(*_fresh(args))
        except MemoryError as exc:
            results.append({"name": name, "passed": False, "detail": f"MemoryError: ran out of memory{_where(exc, learner_file)}"})
            continue
        except Exception as exc:  # noqa: BLE001 - the learner's bug, reported as the check's result
            results.append({"name": name, "passed": False,
                            "detail": f"{type(exc).__name__}: {exc}{_where(exc, learner_file)}"})
            continue
        detail = spec.compare(expected, got, args)
        results.append({"name": name, "passed": detail is None, "detail": detail or ""})
    return results


@dataclass(frozen=True)
class Raised:
    """What a contender returned instead of an output: the exception it raised."""

    error: str


def _guarded(fn: Callable) -> Callable:
    """fn over a tuple of arguments, returning Raised instead of raising, so one failure can't stop the race."""
    def run(args: tuple) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported in the race table as a mismatch
            return Raised(f"{type(exc).__name__}: {exc}")

    return run


def _backend_of(name: str) -> str:
    return "python" if name == "yours" else "native" if "native" in name else "torch" if "torch" in name else "reference"


def race(exercise_id: str, learner: Callable, seed: int, learner_file: str,
         output: io.StringIO) -> tuple[list[dict[str, Any]], str]:
    """The learner, the engines' reference and the peers raced on one larger input by the benchmark runner.

    Every contender gets its own fresh copy of the inputs for each run (not
    timed), is validated against the reference before and after its timed
    runs, and is timed in interleaved rounds so drift falls on all alike.
    """
    import numpy as np

    from workbench.exercises.checks import SPECS
    from workbench_engines.profiling import Case, Contender, run_cases

    spec = SPECS[exercise_id]
    wrap = spec.wrap or (lambda f: f)
    race_wrap = spec.race_wrap or (lambda f: f)
    args = spec.race_args(np.random.default_rng(seed + 1))
    functions = {"yours": race_wrap(wrap(learner)), "reference": race_wrap(wrap(spec.expected))}
    notes = []
    try:
        functions.update(spec.peers())
    except Exception as exc:  # noqa: BLE001 - a missing peer only shortens the race
        notes.append(f"peers unavailable: {exc}")

    def check(expected: Any, got: Any) -> str | None:
        return got.error if isinstance(got, Raised) else spec.compare(expected, got, args)

    case = Case("race on a larger input", [Contender(name, _guarded(fn), _backend_of(name)) for name, fn in functions.items()],
                check, reference="reference", baselines=("yours",), warmup=WARMUP, repeats=REPEATS, interleave=True,
                inputs=lambda: _fresh(args))
    with contextlib.redirect_stdout(output):
        rows = run_cases([case], warmup=WARMUP, repeats=REPEATS)
    # Validate again after the timed runs, on inputs nobody has seen yet.
    again = run_checks(exercise_id, learner, seed + 2, learner_file, output)
    failed = [c for c in again if not c["passed"]]
    if failed:
        rows[0] = replace(rows[0], matches=False, mismatch=f"after the timed runs, on fresh inputs, "
                                                            f"'{failed[0]['name']}' failed: {failed[0]['detail']}")
    notes.append(f"one thread each; median of {REPEATS} interleaved rounds after {WARMUP} warm-up runs; same inputs for all")
    return [row.as_dict() for row in rows], "; ".join(notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.exercises.runner")
    parser.add_argument("exercise")
    parser.add_argument("path", type=Path)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--race", action="store_true")
    parser.add_argument("--memory-mb", type=int, default=3072)
    parser.add_argument("--cpu-seconds", type=int, default=60)
    args = parser.parse_args(argv)
    limit_resources(args.memory_mb, args.cpu_seconds)

    from workbench.exercises.catalog import EXERCISES

    exercise = EXERCISES[args.exercise]
    result: dict[str, Any] = {"checks": [], "race": [], "race_note": "", "error": None, "output": ""}
    output = io.StringIO()
    learner_file = str(args.path.resolve())
    try:
        with contextlib.redirect_stdout(output):
            learner = load_function(args.path.resolve(), exercise.function, "learner_solution")
    except BaseException as exc:  # noqa: BLE001 - a syntax error or a raise at import time
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        result["error"] = f"importing {args.path.name} failed: {detail}{_where(exc, learner_file)}"
    else:
        result["checks"] = run_checks(args.exercise, learner, args.seed, learner_file, output)
        if args.race and result["checks"] and all(c["passed"] for c in result["checks"]):
            result["race"], result["race_note"] = race(args.exercise, learner, args.seed, learner_file, output)
    result["output"] = output.getvalue()[-2000:]
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
