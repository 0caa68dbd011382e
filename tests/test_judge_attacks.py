"""Issue 18: the exercise judge cannot be fooled, and a check leaves nothing behind.

Each test writes an attacking "solution" into a temporary workspace and
asserts the judge does not say passed (or that the limit holds), and that an
honest solution in the same place still passes. Before the redesign, every
attack here passed or escaped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from workbench.exercises.catalog import EXERCISES
from workbench.exercises.run import run_exercise
from workbench.progress import ProgressStore

pytestmark = pytest.mark.no_c_path  # the judge's defences are Python's and the OS's; the C build only adds contenders
# to a race, and tests/test_exercises.py runs the races both ways

CORRECT = """
import numpy as np

def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
"""


def write(workspace: Path, source: str, name: str = "01_softmax.py") -> Path:
    workspace.mkdir(parents=True, exist_ok=True)
    path = workspace / name
    path.write_text(textwrap.dedent(source))
    return path


def judged(path: Path, **kwargs):
    return run_exercise("softmax", path, race=False, seed=7, **kwargs)


def assert_honest_still_passes(workspace: Path) -> None:
    report = judged(write(workspace, CORRECT, "honest_softmax.py"))
    assert report.passed, report.error or report.first_failure


def processes_with(*markers: str) -> list[int]:
    """Live processes (not zombies) whose command line holds every marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if all(m.encode() in cmdline for m in markers) and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_patching_the_checkers_comparison_does_not_pass(tmp_path):
    attack = """
    import numpy as np
    try:
        import workbench.exercises.checks as checks
        for spec in checks.SPECS.values():
            spec.compare = lambda *args: None
        checks.compare_arrays = lambda *args: None
    except Exception:
        pass
    np.isclose = lambda a, b, **kw: np.ones(np.shape(a), bool)
    np.any = lambda *a, **kw: True

    def softmax(x):
        return np.zeros_like(x)
    """
    report = judged(write(tmp_path, attack))
    assert not report.passed
    assert_honest_still_passes(tmp_path)


def test_a_forged_result_marker_on_stdout_does_not_pass(tmp_path):
    forged = ('{"checks": [{"name": "random 2\\u00d75", "passed": true, "detail": ""}], "race": [], '
              '"race_note": "", "error": null, "output": ""}')
    attack = f"""
    import os, sys
    line = "WB-EXERCISE-RESULT " + {forged!r} + "\\n"
    for stream in (sys.stdout, sys.__stdout__, sys.stderr):
        stream.write(line)
        stream.flush()
    os.write(1, line.encode())
    os._exit(0)

    def softmax(x):
        return x
    """
    report = judged(write(tmp_path, attack))
    assert not report.passed
    assert report.checks == []
    assert_honest_still_passes(tmp_path)


def test_forged_bytes_on_every_open_descriptor_do_not_pass(tmp_path):
    attack = """
    import os
    from pathlib import Path
    for fd in sorted(int(p.name) for p in Path("/proc/self/fd").iterdir()):
        try:
            os.write(fd, b'WBW1' + bytes(8) + b'{"calls": "all passed"}')
        except OSError:
            pass

    def softmax(x):
        return x * 0
    """
    report = judged(write(tmp_path, attack))
    assert not report.passed
    assert_honest_still_passes(tmp_path)


def test_reading_the_expected_value_from_the_callers_frame_does_not_pass(tmp_path):
    attack = """
    import sys
    import numpy as np

    def softmax(x):
        frame = sys._getframe(1)
        while frame is not None:
            for name, value in frame.f_locals.items():
                if "expected" in name and isinstance(value, np.ndarray) and value.shape == x.shape:
                    return value
            frame = frame.f_back
        return np.zeros_like(x)
    """
    report = judged(write(tmp_path, attack))
    assert not report.passed
    assert_honest_still_passes(tmp_path)


def test_an_ndarray_subclass_that_answers_the_checkers_numpy_calls_does_not_pass(tmp_path):
    attack = """
    import numpy as np

    class Agreeable(np.ndarray):
        def __array_function__(self, func, types, args, kwargs):
            if func is np.isclose:
                return np.ones(np.shape(args[0]), bool)
            if func is np.any:
                return True
            if func in (np.array_equal, np.allclose):
                return func is np.allclose
            return super().__array_function__(func, types, args, kwargs)

        def __eq__(self, other):
            return np.ones(self.shape, bool)

    def softmax(x):
        return np.zeros_like(x).view(Agreeable)
    """
    report = judged(write(tmp_path, attack))
    assert not report.passed
    assert "subclass" in report.first_failure.detail
    assert_honest_still_passes(tmp_path)


JSON_THAT_PASSES_EVERYTHING = r'''
def _encode(value):
    if isinstance(value, dict):
        return "{" + ",".join(_encode(str(k)) + ":" + _encode(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return '"' + value.replace("\\", "/").replace('"', "'").replace("\n", " ") + '"'
    return repr(value)


def dumps(obj, *args, **kwargs):
    for check in obj.get("checks", []) if isinstance(obj, dict) else []:
        check["passed"], check["detail"] = True, ""
    return _encode(obj)


def loads(*args, **kwargs):
    raise ValueError("not this json")
'''


def test_a_json_py_in_the_workspace_is_not_imported_by_the_checker(tmp_path):
    write(tmp_path, JSON_THAT_PASSES_EVERYTHING, "json.py")
    report = judged(write(tmp_path, "def softmax(x):\n    return x\n"))
    assert not report.passed
    assert_honest_still_passes(tmp_path)


def test_innocent_random_and_numpy_modules_in_the_workspace_break_nothing(tmp_path):
    write(tmp_path, '"""My notes on sampling."""\nSEED = 42\n', "random.py")
    write(tmp_path, '"""Trying things out."""\nraise RuntimeError("my scratch file, not NumPy")\n', "numpy.py")
    write(tmp_path, '"""Scratch."""\n', "json.py")
    report = judged(write(tmp_path, CORRECT))
    assert report.passed, report.error or report.first_failure


def test_importing_the_engines_reference_does_not_pass(tmp_path):
    attack = """
    from workbench_engines.softmax.reference import softmax
    """
    report = judged(write(tmp_path, attack))
    assert not report.passed and "refused" in report.error
    assert_honest_still_passes(tmp_path)


def test_loading_the_engines_reference_by_its_path_does_not_pass(tmp_path):
    from workbench_engines.softmax import reference

    attack = f"""
    import importlib.util
    spec = importlib.util.spec_from_file_location("ref", {reference.__file__!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    softmax = module.softmax
    """
    report = judged(write(tmp_path, attack))
    assert not report.passed and "refused" in report.error
    assert_honest_still_passes(tmp_path)


def test_execing_the_shipped_solution_file_does_not_pass(tmp_path):
    attack = f"""
    with open({str(EXERCISES['softmax'].solution)!r}) as f:
        exec(f.read())
    """
    report = judged(write(tmp_path, attack))
    assert not report.passed and "refused" in report.error
    via_resources = """
    from importlib.resources import files
    exec((files("workbench_lessons") / "exercises" / "solutions" / "softmax.py").read_text())
    """
    report = judged(write(tmp_path, via_resources))
    assert not report.passed and "refused" in report.error
    assert_honest_still_passes(tmp_path)


def test_writing_progress_db_directly_does_not_mark_it_solved(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    db = home / "progress.db"
    ProgressStore.open(db).close()
    attack = f"""
    import os, sqlite3
    import numpy as np
    for path in (os.path.join(os.environ.get("WORKBENCH_HOME", "/nonexistent"), "progress.db"), {str(db)!r}):
        try:
            from workbench.progress import ProgressStore
            store = ProgressStore.open(__import__("pathlib").Path(path))
            store.record_exercise_run("softmax", True)
            store.close()
        except Exception:
            pass
        try:
            connection = sqlite3.connect(path)
            connection.execute("CREATE TABLE pwned (x)")
            connection.commit()
        except Exception:
            pass

    def softmax(x):
        return np.zeros_like(x)
    """
    report = judged(write(tmp_path / "ws", attack))
    assert not report.passed
    store = ProgressStore.open(db)
    try:
        assert store.exercise_state("softmax").status == "new"
    finally:
        store.close()
    import sqlite3

    connection = sqlite3.connect(db)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert "pwned" not in tables


def test_mmap_cannot_take_more_than_the_memory_limit(tmp_path):
    attack = CORRECT + """
import mmap
reserved = mmap.mmap(-1, 3 << 30)  # shared anonymous memory: RLIMIT_DATA does not count it
"""
    report = judged(write(tmp_path, attack), memory_mb=1024)
    assert not report.passed
    assert "Cannot allocate memory" in report.error or "MemoryError" in report.error
    assert_honest_still_passes(tmp_path)


def spawning(marker: str, session: bool) -> str:
    return CORRECT + f"""
import subprocess, sys
for _ in range(50):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {marker!r}],
                     start_new_session={session})
"""


@pytest.mark.parametrize("session", [False, True], ids=["same session", "setsid"])
def test_spawned_processes_do_not_outlive_the_check(tmp_path, session):
    marker = f"wb-spawn-{uuid.uuid4().hex}"
    try:
        report = judged(write(tmp_path, spawning(marker, session)))
        survivors = processes_with(marker)
        assert survivors == [], f"{len(survivors)} processes outlived the check"
        assert not report.passed and "refused" in report.error
    finally:
        kill_all(processes_with(marker))
    assert_honest_still_passes(tmp_path)


def test_forking_directly_is_refused_too(tmp_path):
    attack = CORRECT + """
import os, time
if os.fork() == 0:
    os.setsid()
    time.sleep(60)
    os._exit(0)
"""
    report = judged(write(tmp_path, attack))
    assert not report.passed and "refused" in report.error


def test_the_runner_dies_with_its_parent(tmp_path):
    marker = f"wb-orphan-{uuid.uuid4().hex}"
    path = write(tmp_path, """
    import time

    def softmax(x):
        time.sleep(120)  # sleeping costs no CPU time, so no CPU limit would end it
    """, f"{marker}.py")
    script = ("import sys; from workbench.exercises.run import run_exercise; "
              "run_exercise('softmax', sys.argv[1], race=False, timeout=120)")
    parent = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        deadline = time.monotonic() + 30
        while not (runners := processes_with(marker, "workbench.exercises.runner")):
            assert time.monotonic() < deadline, "the runner never started"
            time.sleep(0.1)
        time.sleep(0.5)  # let it reach the learner's code
        parent.kill()  # as an SSH drop kills the workbench
        parent.wait()
        deadline = time.monotonic() + 10
        while processes_with(marker, "workbench.exercises.runner"):
            assert time.monotonic() < deadline, "the runner outlived its parent"
            time.sleep(0.1)
    finally:
        parent.kill()
        kill_all(processes_with(marker))
    assert runners


def test_a_flood_on_stderr_does_not_grow_the_parent(tmp_path):
    path = write(tmp_path, CORRECT + """
import contextlib
import os
chunk = b"spam " * 200_000
for _ in range(500):  # 500 MB
    os.write(2, chunk)
    print("x" * 1000)
""")
    # The peak is read from VmHWM, not ru_maxrss, which Linux carries across fork + exec from the (large)
    # pytest process that started this one.
    script = ("import re, sys; from pathlib import Path; from workbench.exercises.run import run_exercise; "
              "r = run_exercise('softmax', sys.argv[1], race=False, timeout=120); "
              "peak = re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1); "
              "print(r.passed, len(r.output), peak)")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300,
                          check=True)
    passed, output_chars, peak_kib = done.stdout.split()
    assert passed == "True" and int(output_chars) <= 2000
    assert int(peak_kib) < 400 * 1024, f"the parent grew to {int(peak_kib) // 1024} MB"


def test_a_reply_past_the_limit_is_refused(tmp_path, monkeypatch):
    from workbench.exercises import supervise

    monkeypatch.setattr(supervise, "REPLY_LIMIT", 1 << 20)
    path = write(tmp_path, """
    import numpy as np

    def softmax(x):
        return np.zeros(1 << 20)
    """)
    report = judged(path)
    assert not report.passed and "more than 1 MiB" in report.error


def test_files_outside_the_scratch_folder_stay_untouched(tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    attack = CORRECT + f"""
import contextlib
import os
for act in (lambda: os.remove({str(keep)!r}), lambda: open({str(keep)!r}, "w").write("gone")):
    try:
        act()
    except PermissionError:
        pass
open("scratch.txt", "w").write("fine")  # the scratch folder (the current directory) is writable
"""
    report = judged(write(tmp_path / "ws", attack))
    assert report.passed, report.error or report.first_failure
    assert keep.read_text() == "mine"


def attempts(*names_and_code: tuple[str, str]) -> str:
    """A correct solution that first tries each act and prints ``name done`` or ``name <why not>``."""
    lines = ["import gc, importlib, importlib.util, os, resource, signal, sys, threading",
             "def attempt(name, act):",
             "    try:",
             "        act()",
             "    except Exception as exc:",
             "        print(name, 'refused' if isinstance(exc, PermissionError) else type(exc).__name__)",
             "    else:",
             "        print(name, 'done')"]
    lines += [f"attempt({name!r}, lambda: {code})" for name, code in names_and_code]
    return CORRECT + "\n".join(lines) + "\n"


def outcomes(report) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in report.output.splitlines() if line.strip())


def test_folder_descriptors_reach_nothing_outside_the_scratch_folder(tmp_path):
    """Issue 18 review: os.open(name, dir_fd=...) resolved name against a folder the audit hook never saw."""
    from workbench.exercises import checks

    outside = tmp_path / "outside"
    outside.mkdir()
    above = Path(checks.__file__).parents[2]  # the folder holding the workbench package, itself unprotected
    inside = str(Path(checks.__file__).relative_to(above))
    marker = f"wb-escaped-{uuid.uuid4().hex}.txt"
    attack = attempts(
        ("write", f"os.open({marker!r}, os.O_WRONLY | os.O_CREAT, dir_fd=os.open({str(outside)!r}, os.O_RDONLY))"),
        ("read", f"os.read(os.open({inside!r}, os.O_RDONLY, dir_fd=os.open({str(above)!r}, os.O_RDONLY)), 100)"),
        # a folder inside scratch, and a current folder deeper than it: '../x' is inside from one, outside from the other
        ("deeper", (f"(os.makedirs('a', exist_ok=True), os.chdir('a'), "
                    f"os.open('../{marker}', os.O_WRONLY | os.O_CREAT, dir_fd=os.open('..', os.O_RDONLY)))")),
        ("mkdir", "os.mkdir('made', dir_fd=os.open('file.txt', os.O_WRONLY | os.O_CREAT))"),
    )
    report = judged(write(tmp_path / "ws", attack))
    try:
        assert outcomes(report) == {"write": "refused", "read": "refused", "deeper": "refused", "mkdir": "refused"}
        assert report.passed, report.error or report.first_failure
        assert not (outside / marker).exists()
    finally:
        Path(tempfile.gettempdir(), marker).unlink(missing_ok=True)
    assert list(outside.iterdir()) == []


def test_the_parent_cannot_be_signalled_or_limited_past_the_os_kill_check(tmp_path):
    """Issue 18 review: os.pidfd_open and signal.pidfd_send_signal raise no audit event (signal 0 only probes);
    nor do resurrecting them, os.mknod, or (before Python 3.13) starting a thread."""
    node = tmp_path / "node"
    attack = attempts(
        ("pidfd", "signal.pidfd_send_signal(os.pidfd_open(os.getppid()), 0)"),
        ("proc", "os.open(f'/proc/{os.getppid()}', os.O_RDONLY)"),
        ("fresh-posix", "importlib.util.module_from_spec(importlib.util.find_spec('posix')).pidfd_open"),
        ("reimport", "(sys.modules.pop('posix'), importlib.import_module('posix'))"),
        ("gc", "next(f for f in gc.get_objects() if getattr(f, '__name__', '') == 'pidfd_open')"),
        # sets the parent's core limit to what it is, were it allowed
        ("prlimit", "(p := os.getppid(), resource.prlimit(p, resource.RLIMIT_CORE, resource.prlimit(p, resource.RLIMIT_CORE)))"),
        ("thread", "threading.Thread(target=print).start()"),
        ("mknod", f"os.mknod({str(node)!r})"),
    )
    report = judged(write(tmp_path / "ws", attack))
    assert outcomes(report) == {"pidfd": "refused", "proc": "refused", "fresh-posix": "refused", "reimport": "refused",
                                "gc": "refused", "prlimit": "refused", "thread": "refused", "mknod": "refused"}
    assert report.passed, report.error or report.first_failure
    assert not node.exists()


def test_ctypes_is_refused(tmp_path):
    attack = CORRECT + """
import ctypes
ctypes.CDLL(None).getpid()
"""
    report = judged(write(tmp_path, attack))
    assert not report.passed and "refused" in report.error


def test_forking_through_posixsubprocess_is_refused(tmp_path):
    """_posixsubprocess.fork_exec starts a process without any audit event: it is replaced, and not re-importable."""
    attack = CORRECT + """
import os, _posixsubprocess
errors_r, errors_w = os.pipe()
_posixsubprocess.fork_exec([b"/bin/true"], [b"/bin/true"], True, (errors_w,), None, None, -1, -1, -1, -1, -1, -1,
                           errors_r, errors_w, True, False, -1, None, None, None, -1, -1, None)
"""
    report = judged(write(tmp_path, attack))
    assert not report.passed and "refused" in report.error
    reimport = CORRECT + """
import sys
del sys.modules["_posixsubprocess"]
import _posixsubprocess
"""
    report = judged(write(tmp_path, reimport))
    assert not report.passed and "refused" in report.error


def test_a_solution_may_import_torch_and_subprocess(tmp_path):
    report = judged(write(tmp_path, """
    import subprocess
    import torch

    def softmax(x):
        return torch.softmax(torch.from_numpy(x), dim=-1).numpy()
    """))
    assert report.passed, report.error or report.first_failure


def forged(document: str, blob: bytes = b"") -> bytes:
    from workbench.exercises import wire

    body = document.encode()
    return wire.HEADER.pack(wire.MAGIC, len(body)) + body + blob


@pytest.mark.parametrize("message", [
    forged('{"a": ["|O", [1], [0, 8]]}', bytes(8)),  # an object array: would unpickle
    forged('{"a": ["|V8", [1], [0, 8]]}', bytes(8)),  # raw void records
    forged('{"a": ["<f8", [1000000000, 1000000000], [0, 8]]}', bytes(8)),  # a huge shape over 8 bytes
    forged('{"a": ["<f8", [4], [0, 64]]}', bytes(8)),  # bytes past the end
    forged('{"l": ' * 5000 + "1" + "}" * 5000),  # nesting deeper than any output
    forged('{"d": [[{"l": [1]}, 2]], "id": 0}'),  # an unhashable key
    forged('{"r": 3}'),  # a reference to nothing
    forged('{"I": "' + "9" * 5000 + '"}'),  # an integer too long to read
    b"\x80\x04\x95" + bytes(20),  # a pickle
    b"WBW1",  # truncated
    forged('{"l": [' + "0," * (2 * 2**20 + 1) + '0]}'),  # 4 MiB of plain data: seconds of parsing, GIL held
    forged('{"l": [' + '{"l": []},' * 300_000 + '0]}'),  # 600,000 lists in under 4 MiB
], ids=["object", "void", "huge-shape", "past-the-end", "deep", "unhashable", "dangling", "long-int", "pickle",
        "truncated", "large-document", "many-containers"])
def test_the_wire_refuses_whatever_is_not_plain_data(message):
    """The parent decodes the child's reply with this; a forged reply raises WireError, never runs or allocates."""
    from workbench.exercises import wire

    with pytest.raises(wire.WireError):
        wire.decode(message)


def test_the_wire_carries_what_exercises_return():
    import numpy as np

    from workbench.exercises import wire

    ranks = {b"ab": 1, b"c": 2}
    value = (np.arange(6, dtype=np.float32).reshape(2, 3), [1, 2], {(1, 2): 3}, ranks, ranks, {"##a", "b"},
             np.int64(4), np.array([True]), None, float("-inf"), 2**80, "é", b"\xff")
    decoded = wire.decode(wire.encode(value))
    assert type(decoded[0]) is np.ndarray and decoded[0].dtype == np.float32 and decoded[0].flags.writeable
    assert np.array_equal(decoded[0], value[0]) and decoded[1:6] == value[1:6] and decoded[3] is decoded[4]
    assert decoded[6] == 4 and type(decoded[6]) is np.int64 and decoded[7].dtype == bool
    assert decoded[8:] == value[8:]


def test_the_reply_limits_leave_room_for_every_exercises_real_race():
    """Issue 18 review: the limits that stop a forged reply must not stop a real one (the race's is the largest)."""
    import numpy as np

    from workbench.exercises import supervise, wire
    from workbench.exercises.calls import fresh, invoke
    from workbench.exercises.checks import SPECS

    for name, spec in SPECS.items():
        race_args = spec.race_args(np.random.default_rng(1))
        output = invoke((spec.race_wrap or (lambda f: f))(spec.expected), fresh(race_args),
                        keep_args=spec.writes_args).to_plain()
        recheck = [invoke(spec.expected, fresh(args), keep_args=spec.writes_args).to_plain()
                   for _, args in spec.cases(np.random.default_rng(2))]
        message = wire.encode({"rows": [], "note": "", "first": output, "last": output, "recheck": recheck})
        assert len(message) * 2 < supervise.REPLY_LIMIT, name  # room for a float64 answer where float32 is due
        wire.decode(message)


def test_a_solution_that_lingers_after_answering_is_judged_and_killed(tmp_path):
    marker = f"wb-linger-{uuid.uuid4().hex}"
    path = write(tmp_path, CORRECT + """
import atexit, time
atexit.register(time.sleep, 600)
""", f"{marker}.py")
    started = time.monotonic()
    report = judged(path, timeout=120)
    assert report.passed, report.error or report.first_failure
    assert time.monotonic() - started < 60  # a hang guard: it did not wait out the 120 s limit
    assert processes_with(marker, "workbench.exercises.runner") == []


def test_a_dead_workbenchs_scratch_folder_is_swept(tmp_path, monkeypatch):
    """A workbench killed with its runner leaves its scratch folder; the next check removes it."""
    import tempfile

    from workbench.exercises import supervise

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{supervise.SCRATCH_PREFIX}{dead.pid}-abc"
    stale.mkdir()
    (stale / "left.txt").write_text("x")
    assert judged(write(tmp_path / "ws", CORRECT)).passed
    assert not stale.exists()
    assert list(tmp_path.glob(f"{supervise.SCRATCH_PREFIX}*")) == []
