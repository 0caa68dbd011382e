"""Quiz grading for every kind, and probe answers computed by the engines."""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass

import pytest

from workbench.params import ParamError
from workbench.probes import compute_probe
from workbench.quiz import QuizError, parse_question


def q(**body):
    return parse_question({"id": "q", "prompt": "p", "explanation": "e", **body})


def test_single_multiple_order_numeric():
    single = q(kind="single", choices=["a", "b"], answer=1)
    assert single.grade(1).correct and not single.grade(0).correct
    multi = q(kind="multiple", choices=["a", "b", "c"], answer=[2, 0])
    assert multi.grade([0, 2]).correct and not multi.grade([0]).correct and not multi.grade([0, 1, 2]).correct
    order = q(kind="order", items=["x", "y", "z"])
    shown = order.shuffled_order()
    assert sorted(shown) == [0, 1, 2] and shown != [0, 1, 2]
    assert order.grade([0, 1, 2]).correct and not order.grade(shown).correct
    num = q(kind="numeric", answer=88.7, tolerance=1.0)
    assert num.grade(88.0).correct and not num.grade(90.0).correct and not num.grade(math.nan).correct


def test_probe_graded_against_engine_value():
    probe = q(kind="probe", probe="softmax.top_probability", params={"logits": [2.0, 1.0, 0.1], "temperature": 0.5}, tolerance=0.005)
    expected = compute_probe(probe.probe, probe.params)
    assert expected == pytest.approx(math.exp(4) / (math.exp(4) + math.exp(2) + math.exp(0.2)))
    assert probe.grade(round(expected, 3), expected).correct
    assert not probe.grade(0.66, expected).correct


def test_probe_values():
    assert compute_probe("softmax.logsumexp", {"values": [1000.0, 1000.0]}) == pytest.approx(1000 + math.log(2))
    assert compute_probe("softmax.entropy_bits", {"logits": [0.0] * 8}) == pytest.approx(3.0)
    with pytest.raises(ParamError, match="temperature must be >="):
        compute_probe("softmax.top_probability", {"logits": [1.0], "temperature": 0.0})
    with pytest.raises(KeyError):
        compute_probe("nope", {})


@pytest.mark.parametrize("body, message", [
    ({"kind": "single", "choices": ["a"], "answer": 0}, "at least 2"),
    ({"kind": "single", "choices": ["a", "b"], "answer": True}, "'answer' must be"),
    ({"kind": "multiple", "choices": ["a", "b"], "answer": []}, "non-empty"),
    ({"kind": "numeric", "answer": "4"}, "'answer' must be a number"),
    ({"kind": "numeric", "answer": 4, "tolerance": -1}, "non-negative"),
    ({"kind": "single", "choices": ["a", "b"], "answer": 0, "why": ["x"]}, "'why' has 1"),
    ({"kind": "order", "items": ["a", "b"], "answer": 1}, "unknown field"),
])
def test_malformed_questions(body, message):
    with pytest.raises(QuizError, match=message):
        q(**body)


# ---- issue 18: data that passes the check can always be graded; no answer crashes the grader ----

@pytest.mark.parametrize("body, message", [
    ({"kind": "single", "choices": ["a", "b"], "answer": 0, "why": 5}, "'why' must be a list of strings"),
    ({"kind": "single", "choices": ["a", "b"], "answer": 0, "why": [1, 2]}, "'why' must be a list of strings"),
    ({"kind": "numeric", "answer": math.inf}, "'answer' must be a finite number"),
    ({"kind": "numeric", "answer": -math.inf}, "'answer' must be a finite number"),
    ({"kind": "numeric", "answer": math.nan}, "'answer' must be a finite number"),
    ({"kind": "numeric", "answer": 10**400}, "'answer' must be a finite number"),
    ({"kind": "numeric", "answer": 4, "tolerance": math.inf}, "finite non-negative"),
    ({"kind": "numeric", "answer": 4, "tolerance": math.nan}, "finite non-negative"),
    ({"kind": "numeric", "answer": 4, "rel_tolerance": math.inf}, "finite non-negative"),
    ({"kind": "numeric", "answer": 4, "unit": 5}, "'unit' must be a string"),
    ({"kind": "probe", "probe": "softmax.logsumexp", "params": {}, "tolerance": math.nan}, "finite non-negative"),
])
def test_ungradable_questions_are_rejected(body, message):
    with pytest.raises(QuizError, match=message):
        q(**body)


def test_format_number_and_grading_take_any_float():
    from workbench.quiz import format_number

    assert format_number(math.inf) == "inf" and format_number(-math.inf) == "-inf"
    assert format_number(math.nan) == "nan" and format_number(1.5, math.inf) == "1.5"
    num = q(kind="numeric", answer=3.0)
    assert not num.grade(math.inf).correct
    probe = q(kind="probe", probe="softmax.logsumexp", params={"values": [0.0]})
    assert probe.grade(1.0, math.inf).expected == "inf"


def test_a_stored_answer_that_no_longer_fits_the_question_is_not_accepted():
    single = q(kind="single", choices=["a", "b"], answer=1)
    assert single.accepts(1) and not single.accepts(2) and not single.accepts([0]) and not single.accepts(True)
    multi = q(kind="multiple", choices=["a", "b", "c"], answer=[0])
    assert multi.accepts([0, 2]) and not multi.accepts(1) and not multi.accepts([]) and not multi.accepts([3])
    order = q(kind="order", items=["x", "y"])
    assert order.accepts([1, 0]) and not order.accepts([0, 0]) and not order.accepts([0, "a"])
    num = q(kind="numeric", answer=3.0)
    assert num.accepts(2) and not num.accepts(math.inf) and not num.accepts([1]) and not num.accepts("3")


@pytest.mark.parametrize("probe_id, params, message", [
    ("positional.alibi_slope", {"heads": 10**8, "head": 0}, "heads must be <="),
    ("moe.active_parameters", {"d_model": 10**6, "hidden": 10**6, "experts": 8}, "d_model must be <="),
    ("softmax.top_probability", {"logits": [1.0], "temperature": math.nan}, "finite"),
    ("softmax.top_probability", {"logits": [math.inf, 1.0]}, "finite"),
    ("softmax.logsumexp", {"values": [0.0] * 5000}, "at most"),
    ("blocks.gelu", {"x": 10**400}, "finite"),
    ("tokenizer.count", {"text": "x" * 5000}, "at most 2,000 characters"),
])
def test_probe_parameters_are_bounded(probe_id, params, message):
    """Issue 18: parameters were type-checked but not bounded (heads = 10**8 took 3 GB)."""
    with pytest.raises(ParamError, match=message):
        compute_probe(probe_id, params)


def test_a_probe_bounds_the_table_it_builds_not_only_each_parameter():
    """Found attacking issue 18: position 2**20 and dim 8192, each in range, asked for a 64 GB table."""
    with pytest.raises(ValueError, match="entries"):
        compute_probe("positional.sinusoidal_value", {"position": 1 << 20, "index": 0, "dim": 8192})
    assert compute_probe("positional.sinusoidal_value", {"position": 3, "index": 0, "dim": 8}) == pytest.approx(
        math.sin(3), abs=1e-6)


def test_every_parameter_has_a_range():
    """Issue 18: every number of every probe and lab has min and max (or choices); a spec without one fails."""
    from workbench.labs.registry import LABS
    from workbench.params import Param
    from workbench.probes import PROBES

    for spec in [*PROBES.values(), *LABS.values()]:
        for name, param in spec.params.items():
            if param.type in ("int", "float", "list[float]") and param.choices is None:
                assert param.min is not None and param.max is not None, (spec.id, name)
            if param.type in ("str", "list[str]", "list[float]"):
                assert param.longest > 0
    with pytest.raises(ValueError, match="needs a range"):
        Param("int", min=0)


def test_a_regex_too_large_for_an_automaton_is_refused_before_the_build():
    """Issue 18: `[a-z]{1,32000}` took 70 s to build (quadratic in the unrolled repeats)."""
    from workbench_engines.generation.constrained import check_pattern_size, pattern_positions
    from workbench_engines.sampling.constrained import ConstraintError

    assert pattern_positions("[a-z]{1,32000}") == 32000 and pattern_positions("(ab)*c|d") == 4
    assert pattern_positions("(a{1,40}){1,40}") == 1600
    check_pattern_size("[a-z]{1,500}")
    for pattern in ("[a-z]{1,32000}", "(a{1,40}){1,40}", "(" * 2000 + ")" * 2000):
        with pytest.raises(ConstraintError):
            check_pattern_size(pattern)
    with pytest.raises(ConstraintError, match="more than"):
        compute_probe("constrained.first_allowed", {"pattern": "[a-z]{1,32000}"})


@dataclass
class SlowProbe:
    """A registered probe that blocks until ``release`` is set; ``started`` is set once it runs."""

    id: str
    release: threading.Event
    started: threading.Event
    calls: list[float]


@pytest.fixture
def slow_probe():
    from workbench import probes
    from workbench.params import Param

    probe = SlowProbe("test.slow", threading.Event(), threading.Event(), [])

    def slow(x: float) -> float:
        probe.calls.append(x)
        probe.started.set()
        probe.release.wait(30)
        return x

    probes.PROBES[probe.id] = probes.ProbeSpec(probe.id, "waits", {"x": Param("float", min=0, max=1)}, slow)
    yield probe
    probe.release.set()
    del probes.PROBES[probe.id]


def probe_threads(probe: SlowProbe) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"probe {probe.id}"]


def test_a_cancelled_probe_returns_at_once_and_never_holds_up_exit(slow_probe):
    """Issue 18: quitting during a probe waited for it (90 s at full CPU)."""
    from workbench import probes

    assert probes.compute_cancellable(slow_probe.id, {"x": 0.5}, slow_probe.started.is_set) is None
    assert not slow_probe.release.is_set()
    threads = probe_threads(slow_probe)
    assert threads and all(t.daemon for t in threads)
    slow_probe.release.set()
    assert probes.compute_cancellable(slow_probe.id, {"x": 0.5}, lambda: False) == 0.5


def test_asking_again_for_a_probe_in_flight_joins_it_instead_of_stacking_another(slow_probe):
    """Issue 18 review: reopening a question while its heavy probe ran started the probe again each time."""
    from workbench import probes

    for _ in range(3):  # open the question, leave, open it again...
        assert probes.compute_cancellable(slow_probe.id, {"x": 0.5}, slow_probe.started.is_set) is None
    assert slow_probe.calls == [0.5]
    assert len(probe_threads(slow_probe)) == 1
    slow_probe.release.set()
    assert probes.compute_cancellable(slow_probe.id, {"x": 0.5}, lambda: False) == 0.5


def test_an_automaton_is_built_where_a_runaway_build_can_be_stopped():
    """Issue 18: the subset construction can take exponential time in a short regex; past a few positions the
    build runs in a child process, killed at a bound, and what it returns is the automaton interegular builds
    here."""
    import interegular

    from workbench_engines.generation.constrained import build_fsm
    from workbench_engines.sampling.constrained import ConstraintError

    for pattern in ("[a-z]{1,5}@(x|y)+", r"\d{3}-\d{4}", "(a|b)*a(a|b){3}", '\\{"k": "[^"]*"\\}'):
        here, built = interegular.parse_pattern(pattern).to_fsm(), build_fsm(pattern)
        for text in ("ab@xy", "123-4567", "abbab", "aabb", '{"k": "v"}', "", "@"):
            assert here.accepts(text) == built.accepts(text), (pattern, text)
    with pytest.raises(ConstraintError, match="took over 1 s"):
        build_fsm("(a|b)*a(a|b){30}", timeout_s=1)
    with pytest.raises(ConstraintError, match="cannot compile"):
        build_fsm("(?<=a)b")


def _children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is pid, read from /proc."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_the_regex_build_child_dies_with_the_app():
    """Issue 18 review: an abandoned build of `(a|b)*a(a|b){30}` outlived the app that started it."""
    import os
    import signal
    import subprocess
    import time

    script = ("from workbench_engines.generation.constrained import build_fsm; "
              "build_fsm('(a|b)*a(a|b){30}', timeout_s=120)")
    parent = subprocess.Popen([sys.executable, "-c", script])
    builders: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not (builders := _children_of(parent.pid)):
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.1)
        time.sleep(0.5)  # let it get past its start-up into the build
        parent.kill()  # as quitting with the build's thread abandoned, or an SSH drop, does
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in builders):
            assert time.monotonic() < deadline, "the build outlived the app"
            time.sleep(0.1)
    finally:
        parent.kill()
        for pid in builders:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_small_regex_is_built_in_process_and_a_large_one_in_a_child(monkeypatch):
    """Issue 18 review: a child per pattern cost ~50 ms where a small regex builds in well under 1 ms."""
    from workbench_engines.generation import constrained

    spawned: list[object] = []
    real_run = constrained.subprocess.run
    monkeypatch.setattr(constrained.subprocess, "run", lambda *a, **k: spawned.append(a) or real_run(*a, **k))
    assert constrained.pattern_positions(r"\d{3}-\d{4}") == 8 <= constrained.IN_PROCESS_POSITIONS
    assert constrained.build_fsm(r"\d{3}-\d{4}").accepts("123-4567") and not spawned
    assert constrained.build_fsm(r"\d{3}-\d{5}").accepts("123-45678") and len(spawned) == 1


def test_a_regex_is_measured_in_the_dialect_it_is_built_in():
    """Issue 18 review: positions were counted by Python's `re` parser, which rejects what interegular builds
    (`a**`) and calls a feature interegular lacks (a backreference) a syntax error."""
    from workbench_engines.generation.constrained import pattern_positions
    from workbench_engines.sampling.constrained import ConstraintError

    assert pattern_positions("a**") == 1 and pattern_positions("(?=.*a.{5}).*") == 8
    with pytest.raises(ConstraintError, match="does not support"):
        pattern_positions(r"(a)\1")
    with pytest.raises(ConstraintError, match="cannot compile"):
        pattern_positions("[z-a]")


def test_parse_number_reads_what_learners_type():
    """Issue 20: fractions, exponents, percentages and thousands commas, read as written."""
    from workbench.quiz import parse_number

    assert parse_number("1/4") == 0.25
    assert parse_number(" 1e-3 ") == 0.001
    assert parse_number("25%") == 0.25
    assert parse_number("25%", unit="%") == 25.0
    assert parse_number("4,000") == 4000.0
    assert parse_number("−0.5") == -0.5
    assert parse_number("3 × 10^-4") == pytest.approx(3e-4)
    assert parse_number("12 ms", unit="ms") == 12.0
    assert parse_number("1 / 4") == 0.25 and parse_number("-10^2") == -100.0
    # A space inside a number is a typo, not a digit group ("1 2" was read as 12), and × 10^ needs its number.
    for bad in ("", "1,5", "abc", "1/0", "1/", "1 2", "1 000", "×10^3"):
        with pytest.raises(ValueError):
            parse_number(bad)


def test_number_answers_take_the_units_lessons_use_in_any_common_spelling():
    """Issue 20: a quiz in "million" refused "16.4M", "16.4 millions" and "16.4 Million"."""
    from workbench.quiz import parse_number

    for typed in ("16.4M", "16.4 m", "16.4 millions", "16.4 Million", "16.4 MILLION", "16,400k", "16400 thousand",
                  "0.0164 billion", "0.0164B", "16.4 mln", "16.4"):
        assert parse_number(typed, unit="million") == pytest.approx(16.4), typed
    assert parse_number("16384k", unit="million") == 16.384
    question = q(kind="numeric", answer=16.384, tolerance=0.1, unit="million")
    assert question.grade(parse_number("16.4M", question.unit)).correct
    assert not question.grade(parse_number("16.4k", question.unit)).correct
    assert parse_number("2 GiB", unit="MiB") == 2048 and parse_number("512 KiB", unit="MiB") == 0.5
    assert parse_number("3 mib", unit="MiB") == 3 and parse_number("1 MB", unit="KB") == 1000
    assert parse_number("25 percent", unit="%") == 25 and parse_number("1.5 s", unit="ms") == 1500
    assert parse_number("4 Widget", unit="widgets") == 4 and parse_number("30 Tokens/S", unit="tokens/s") == 30
    # (a unit of the lesson's own: its name, in any case, singular or plural)


@pytest.mark.parametrize(("typed", "unit", "message"), [
    ("16M", "MiB", "MB or MiB"),          # decimal or binary: refused, not guessed
    ("3 k", "GiB", "KB or KiB"),
    ("25%", "million", "not a unit of this answer"),
    ("16.4 MiB", "million", "not a unit of this answer"),
    ("3 MiB", "", "without a unit"),
    ("3 apples", "widgets", "in widgets"),
    ("512 MB", "MiB", "MB is decimal, this answer is in MiB"),  # 4.9% apart: a slip, not a conversion
    ("2 GiB", "GB", "GiB is binary, this answer is in GB"),
])
def test_a_unit_that_does_not_fit_or_could_mean_two_things_is_refused_with_a_reason(typed, unit, message):
    from workbench.quiz import parse_number

    with pytest.raises(ValueError, match=message):
        parse_number(typed, unit=unit)


def test_a_typed_number_is_shown_with_every_digit_it_is_graded_with():
    """Issue 20: the preview rounded to 6 significant figures, so 1234567.8 showed as 1.23457e+06."""
    from workbench.quiz import exact_number, parse_number

    for typed in ("1234567.8", "0.000123456789", "3.14159265", "-2.5e-20", "12345678901"):
        assert float(exact_number(parse_number(typed))) == parse_number(typed)
        assert exact_number(parse_number(typed)) in (typed, repr(float(typed)))
    assert exact_number(16.0) == "16" and exact_number(1 / 3) == repr(1 / 3)
    # A percentage's conversion noise is not shown as digits: 3.76% is graded as 0.0376 to within 1 ulp.
    assert exact_number(parse_number("3.76%")) == "0.0376" and exact_number(parse_number("12.5%")) == "0.125"
    assert exact_number(0.1 + 0.2) == "0.3" and exact_number(2 / 3) == repr(2 / 3)
