"""Running an exercise's checks in a child process, with a wall-clock limit and cancel.

The parent never imports the learner's code. It starts
``python -m workbench.exercises.runner`` in its own process group, waits at
most ``timeout`` seconds (polling a cancel callback), kills the whole group
if needed, and turns whatever happened (a result line, a signal, a non-zero
exit, silence) into a :class:`RunReport`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.exercises.runner import MARKER
from workbench_engines.profiling import Profile

DEFAULT_TIMEOUT = 30.0
# Every contender races on one thread: NumPy's BLAS and torch would otherwise
# take all cores, and their spinning idle threads slow whoever runs next.
RACE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class RunReport:
    exercise_id: str
    checks: list[CheckOutcome] = field(default_factory=list)
    race: list[Profile] = field(default_factory=list)
    """The race's Profiles, the learner's first ("yours")."""
    race_note: str = ""
    error: str | None = None
    """Why the checks could not run to the end: an import error, a crash, a timeout, a cancel."""
    output: str = ""
    """What the learner's code printed (the last 2,000 characters)."""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> CheckOutcome | None:
        return next((c for c in self.checks if not c.passed), None)


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def run_exercise(
    exercise_id: str,
    path: Path,
    *,
    race: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = 3072,
    seed: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunReport:
    """Check (and race) the learner's file for exercise_id; never raises for what the learner's code does."""
    seed = random.randrange(2**31) if seed is None else seed
    path = Path(path).resolve()
    if not path.is_file():
        return RunReport(exercise_id, error=f"{path} does not exist; `workbench exercises reset {exercise_id}` restores it")
    cmd = [sys.executable, "-m", "workbench.exercises.runner", exercise_id, str(path), "--seed", str(seed),
           "--memory-mb", str(memory_mb), "--cpu-seconds", str(int(timeout) + 5)]
    if race:
        cmd.append("--race")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=path.parent, env={**os.environ, **RACE_ENV})
    stopped = None
    while True:
        try:
            out, err = proc.communicate(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            elapsed = time.perf_counter() - started
            if elapsed > timeout:
                stopped = f"did not finish within {timeout:g} s (an endless loop?); it was stopped"
            elif should_stop is not None and should_stop():
                stopped = "cancelled"
            if stopped:
                _kill_group(proc)
                out, err = proc.communicate()
                break
    report = RunReport(exercise_id, seconds=time.perf_counter() - started)
    result_line = next((line for line in out.splitlines() if line.startswith(MARKER)), None)
    if stopped:
        report.error = stopped
    elif result_line is None:
        if proc.returncode < 0:
            report.error = f"the process crashed ({_signal_name(-proc.returncode)})"
        else:
            tail = err.strip().splitlines()[-3:] if err.strip() else []
            report.error = f"the checker exited with status {proc.returncode}" + (": " + " | ".join(tail) if tail else "")
    if result_line is not None:
        data = json.loads(result_line[len(MARKER):])
        report.checks = [CheckOutcome(**c) for c in data["checks"]]
        report.race = [Profile.from_dict(r) for r in data["race"]]
        report.race_note = data["race_note"]
        report.output = data["output"]
        report.error = report.error or data["error"]
    return report


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
