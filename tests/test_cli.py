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
def test_lessons_list_and_check(capsys):
    assert main(["lessons", "list"]) == 0
    assert "logits-to-probabilities" in capsys.readouterr().out
    assert main(["lessons", "check"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_lessons_check_fails_with_file_and_line(tmp_path, capsys):
    root = write_track(tmp_path, {"01-bad.md": '+++\nid = "x"\ntitle = "X"\n+++\n## S\n```lab nope\n```\n'})
    assert main(["--lessons", str(root), "lessons", "check"]) == 1
    assert "lessons/t/01-bad.md:6: unknown lab 'nope'" in capsys.readouterr().out


def test_doctor_reports_every_section(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for section in ("Python", "Packages", "Native kernels", "CUDA", "nvcc", "torch.cuda", "progress database",
                    "default corpus", "cl100k_base ranks"):
        assert section in out


def test_bench_quick_table_and_json(capsys):
    assert main(["bench", "softmax", "--quick", "--repeats", "2", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
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
