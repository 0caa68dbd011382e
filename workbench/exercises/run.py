"""Judging an exercise: this process makes the inputs and decides; a sandboxed child only runs the learner's code.

The learner's code never runs here, and the answers never exist where it
runs. :func:`run_exercise` draws the cases, sends their inputs to a child
(:mod:`workbench.exercises.supervise` starts it, :mod:`workbench.exercises.runner`
is its code), receives what the learner's function returned as plain data
(:mod:`workbench.exercises.wire`), and only then computes the engines'
answers and compares. Whatever the child prints, patches or forges, it can
only hand over outputs, and those are judged here. If every check passes, a
second child races the learner's function against the engines' reference and
peers; it measures the timings (as before, one thread each, interleaved),
while the learner's race outputs are judged here too.
"""

from __future__ import annotations

import importlib.util
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from workbench_engines.profiling import Profile

from workbench.exercises import wire
from workbench.exercises.calls import Call, fresh, invoke
from workbench.exercises.buildgpt.cases import SPECS as BUILD_A_GPT_SPECS
from workbench.exercises.catalog import EXERCISES, needs_in_order
from workbench.exercises.checks import SPECS as KERNEL_SPECS
from workbench.exercises.checks import Spec, judge, race_label
from workbench.exercises.supervise import ChildRun, run_child

DEFAULT_TIMEOUT = 30.0
OUTPUT_SHOWN = 2000
PROTECTED_MODULES = ("workbench", "workbench_engines", "workbench_lessons", "workbench_engines.native_sources")
SPECS: dict[str, Spec] = KERNEL_SPECS | BUILD_A_GPT_SPECS
SIGNAL_MEANING = {
    signal.SIGXCPU: "used up its CPU time (an endless loop?); it was stopped",
    signal.SIGALRM: "ran past its time limit (an endless loop?); it was stopped",
    signal.SIGXFSZ: "wrote a file larger than the sandbox allows; it was stopped",
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
    """What the learner's code printed while checked (the last 2,000 characters)."""
    seconds: float = 0.0
    traced_to: str | None = None
    """When a check failed and an earlier step this one imports fails its own checks: which, and how."""

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> CheckOutcome | None:
        return next((c for c in self.checks if not c.passed), None)


def protected_folders() -> list[str]:
    """The folders of the workbench's own packages (engines, references, solutions), which the child may not open."""
    folders: list[str] = []
    for name in PROTECTED_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            continue
        if spec is not None:
            folders += list(spec.submodule_search_locations or [])
    return folders


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def child_reply(child: ChildRun) -> tuple[dict[str, Any] | None, str | None]:
    """The child's reply, or why there is none."""
    if child.stopped:
        return None, child.stopped
    try:
        reply = wire.decode(child.reply) if child.reply else None
    except wire.WireError as exc:
        unreadable = f"the sandbox's reply was unreadable ({exc}); did the code write to the checker's pipe?"
    else:
        if isinstance(reply, dict):
            return reply, None  # a whole answer stands, however the process ended after giving it
        unreadable = "the sandbox's reply was unreadable; did the code write to the checker's pipe?"
    if child.returncode < 0:
        meaning = SIGNAL_MEANING.get(-child.returncode)
        return None, meaning or f"the process crashed ({_signal_name(-child.returncode)})"
    if not child.reply:
        lines = child.stderr.strip().splitlines()[-3:]
        return None, f"the checker exited with status {child.returncode}" + (": " + " | ".join(lines) if lines else "")
    return None, unreadable


def _limits(timeout: float, memory_mb: int) -> list[str]:
    return ["--memory-mb", str(memory_mb), "--cpu-seconds", str(int(timeout) + 5),
            "--wall-seconds", str(int(timeout) + 10)]


def _calls(data: Any, count: int) -> list[Call]:
    if not (isinstance(data, list) and len(data) == count):
        raise wire.WireError(f"expected {count} results")
    return [Call.from_plain(c) for c in data]


def run_exercise(
    exercise_id: str,
    path: Path,
    *,
    race: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = 3072,
    seed: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    trace: bool = True,
) -> RunReport:
    """Check (and race) the learner's file for exercise_id; never raises for what the learner's code does.

    trace: when a packaged step fails, check the earlier steps it imports and name the first that fails.
    """
    seed = random.randrange(2**31) if seed is None else seed
    path = Path(path).resolve()
    if not path.is_file():
        return RunReport(exercise_id, error=f"{path} does not exist; `workbench exercises reset {exercise_id}` restores it")
    exercise, spec = EXERCISES[exercise_id], SPECS[exercise_id]
    cases = spec.cases(np.random.default_rng(seed))
    request = {"function": exercise.function, "protected": protected_folders(), "writes_args": spec.writes_args,
               "cases": [fresh(args) for _, args in cases]}
    if exercise.module:
        request["package"] = {"root": str(path.parent.parent), "module": exercise.module}
    child = run_child(["check", str(path), *_limits(timeout, memory_mb)], wire.encode(request),
                      timeout=timeout, should_stop=should_stop)
    report = RunReport(exercise_id, seconds=child.seconds, output=child.stdout[-OUTPUT_SHOWN:])
    reply, report.error = child_reply(child)
    if reply is None:
        return report
    if "import_error" in reply:
        report.error = str(reply["import_error"])[:2000]
        return report
    try:
        calls = _calls(reply.get("calls"), len(cases))
    except wire.WireError as exc:
        report.error = f"the sandbox's reply was unreadable ({exc})"
        return report
    for (name, args), got in zip(cases, calls):
        expected = invoke(spec.expected, fresh(args), keep_args=spec.writes_args)
        detail = judge(spec, expected, got, args)
        report.checks.append(CheckOutcome(name, detail is None, detail or ""))
    if race and report.passed and spec.race_args is not None:
        _race(report, spec, exercise.function, path, seed, timeout, memory_mb, should_stop)
    if trace and not report.passed and exercise.needs and _may_come_from_earlier(report, path.name):
        report.traced_to = _trace_to_earlier(exercise_id, path.parent, timeout, memory_mb, seed, should_stop)
    return report


def _may_come_from_earlier(report: RunReport, own_file: str) -> bool:
    """Whether a failure could be an earlier step's: a wrong answer, or an error raised in another of the learner's
    files. An error raised in the step's own file (a syntax error, a starter's blank left unwritten) is the step's
    own, and checking every earlier step after it would cost a child process each for nothing."""
    if report.error == "cancelled":
        return False
    failure = report.first_failure
    text = report.error or (failure.detail if failure else "")
    return f"({own_file} line" not in text


def _trace_to_earlier(exercise_id: str, package: Path, timeout: float, memory_mb: int, seed: int,
                      should_stop: Callable[[], bool] | None) -> str | None:
    """The first earlier step this one imports (in course order) that fails its own checks, said in a line."""
    for need in needs_in_order(exercise_id):
        earlier = EXERCISES[need]
        report = run_exercise(need, package / Path(earlier.file_name).name, race=False, timeout=timeout,
                              memory_mb=memory_mb, seed=seed, should_stop=should_stop, trace=False)
        if report.error == "cancelled":
            return None
        if not report.passed:
            failure = report.first_failure
            why = (f"which fails: {report.error}" if report.error
                   else f"which fails its own check '{failure.name}': {failure.detail}" if failure
                   else "which fails its checks")
            return f"this step imports {Path(earlier.file_name).name} ({earlier.title}), {why}"[:600]
    return None


def _race(report: RunReport, spec: Spec, function: str, path: Path, seed: int, timeout: float, memory_mb: int,
          should_stop: Callable[[], bool] | None) -> None:
    """Race the learner's function in a second child; its timings are shown, its outputs judged here."""
    race_args = spec.race_args(np.random.default_rng(seed + 1))
    recheck = spec.cases(np.random.default_rng(seed + 2))
    request = {"exercise": report.exercise_id, "function": function, "protected": protected_folders(),
               "race_args": race_args, "recheck": [args for _, args in recheck]}
    # The race child imports torch and times several contenders: it gets at least the default time.
    timeout = max(timeout, DEFAULT_TIMEOUT)
    child = run_child(["race", str(path), *_limits(timeout, memory_mb)], wire.encode(request),
                      timeout=timeout, should_stop=should_stop)
    if child.stopped == "cancelled":
        report.error = "cancelled"
        return
    reply, error = child_reply(child)
    if reply is not None and "import_error" in reply:
        error = str(reply["import_error"])[:2000]
    try:
        if error is None:
            rows = [_profile(row) for row in reply["rows"]]
            first, last = Call.from_plain(reply["first"]), Call.from_plain(reply["last"])
            again = _calls(reply["recheck"], len(recheck))
            note = str(reply["note"])[:500]
    except (KeyError, TypeError, ValueError) as exc:
        error = f"the race's results were unreadable ({type(exc).__name__}: {exc})"
    if error is not None:
        report.race_note = f"the race did not finish: {error}"
        return
    wrap = spec.race_wrap or (lambda f: f)
    expected = invoke(wrap(spec.expected), fresh(race_args), keep_args=spec.writes_args)
    mismatch = judge(spec, expected, first, race_args) or judge(spec, expected, last, race_args)
    if mismatch is None:
        for (name, args), got in zip(recheck, again):
            detail = judge(spec, invoke(spec.expected, fresh(args), keep_args=spec.writes_args), got, args)
            if detail is not None:
                mismatch = f"after the timed runs, on fresh inputs, '{name}' failed: {detail}"
                break
    # The case is named here, from the inputs actually drawn (the child's label is only a placeholder).
    case = race_label(spec, race_args)
    report.race = [replace(row, case=case, matches=mismatch is None, mismatch=mismatch) if row.name == "yours"
                   else replace(row, case=case) for row in rows]
    report.race_note = note


_PROFILE_TYPES: dict[str, tuple[type, ...]] = {
    "backend": (str,), "wall_s": (float, int), "flops": (float, int), "bytes_moved": (float, int),
    "peak_bytes": (int, type(None)), "repeats": (int,), "min_s": (float, int, type(None)), "timer": (str,),
    "memory_source": (str,), "name": (str,), "case": (str,), "matches": (bool, type(None)),
    "mismatch": (str, type(None)), "ratios": (dict,), "note": (str,), "extra": (dict,),
}


def _profile(data: Any) -> Profile:
    """A race row from the child, checked to hold only plain figures of the right types (it could be forged)."""
    if not isinstance(data, dict):
        raise TypeError("a race row is not a record")
    profile = Profile.from_dict(data)
    for f in fields(Profile):
        value = getattr(profile, f.name)
        if f.name in _PROFILE_TYPES and (not isinstance(value, _PROFILE_TYPES[f.name])
                                         or (isinstance(value, bool) and bool not in _PROFILE_TYPES[f.name])):
            raise ValueError(f"a race row's {f.name} is {type(value).__name__}")
    if not all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in profile.ratios.items()):
        raise ValueError("a race row's ratios are not numbers")
    return profile
