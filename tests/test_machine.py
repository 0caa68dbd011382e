"""``workbench bench machine`` (issue "Performance at the machine's limit", goal 1): the roofline kernels compute
what they say, refuse bad input before C sees it, and the quick benchmark validates every contender."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.cli import main
from workbench_engines.profiling import machine

@pytest.mark.native
def test_fma_chains_give_every_thread_the_same_finite_checksum():
    one, two = machine.fma_chains(10_000, 1), machine.fma_chains(20_000, 2)
    assert np.isfinite(one).all() and one.shape == (1,)
    assert two.shape == (2,) and two[0] == two[1] == one[0]  # 10,000 steps a thread either way
    lanes = machine.lanes()
    assert lanes in (4, 8, 16)
    assert machine.fma_flops(20_000, 2) == 2 * 12 * lanes * 20_000


@pytest.mark.native
def test_triad_and_read_match_numpy(rng):
    n = 100_003  # not a multiple of any vector width or thread count
    b, c = (rng.standard_normal(n, dtype=np.float32) for _ in range(2))
    for threads in (1, 2):
        a = np.full(n, np.nan, dtype=np.float32)
        machine.triad(a, b, c, 3.0, threads)
        np.testing.assert_allclose(a, b + np.float32(3.0) * c, rtol=1e-6, atol=1e-6)
        assert machine.read_sum(b, threads) == pytest.approx(float(b.astype(np.float64).sum()), abs=1e-2)
    assert machine.read_sum(np.ones(1 << 20, dtype=np.float32), 2) == 2**20
    assert machine.read_sum(np.zeros(0, dtype=np.float32), 1) == 0.0
    assert machine.read_sum(np.ones((3, 5), dtype=np.float32), 2) == 15.0  # any shape, read as its elements


@pytest.mark.parametrize("call, error", [
    (lambda: machine.fma_chains(-1, 1), ValueError),
    (lambda: machine.fma_chains(10, 0), ValueError),
    (lambda: machine.fma_chains(10.0, 1), TypeError),
    (lambda: machine.read_sum(np.ones(8), 1), TypeError),
    (lambda: machine.read_sum([1.0, 2.0], 1), TypeError),
    (lambda: machine.read_sum(np.ones(16, np.float32)[::2], 1), ValueError),
    (lambda: machine.triad(np.ones(4, np.float32), np.ones(5, np.float32), np.ones(4, np.float32), 1.0), ValueError),
    (lambda: machine.triad(np.ones(4, np.float32).view(), np.ones(4, np.float32), np.ones(4, np.float32), 1.0,
                           threads=True), TypeError),
])
@pytest.mark.native
def test_bad_input_is_refused_before_c(call, error):
    with pytest.raises(error):
        call()


@pytest.mark.native
def test_triad_refuses_a_read_only_output():
    a = np.ones(4, np.float32)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        machine.triad(a, np.ones(4, np.float32), np.ones(4, np.float32), 1.0)


@pytest.mark.native
def test_bench_machine_quick_validates_every_contender(capsys):
    assert main(["bench", "machine", "--quick", "--repeats", "1", "--warmup", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cases = {row["case"] for row in report["rows"]}
    assert any(case.startswith("CPU peak: fp32 FMA chains") for case in cases)
    assert any(case.startswith("memory triad") for case in cases)
    assert any(case.startswith("memory read") for case in cases)
    assert "matrix units: fp32, bf16, fp16 matmul 64³" in cases
    assert all(row["matches"] is not False for row in report["rows"])
    assert all(row["gflops"] > 0 for row in report["rows"] if row["case"].startswith("CPU peak"))


def test_bench_machine_without_the_c_build_races_torch_alone(monkeypatch):
    """Where the C kernels did not load, the roofline comes from torch's rows and the summary says why."""
    from workbench_engines.nativelib import NativeStatus
    from workbench_engines.profiling import run_cases

    monkeypatch.setattr(machine, "available", lambda name: name != "native")
    monkeypatch.setattr("workbench_engines.nativelib.native_status",
                        lambda: NativeStatus(loaded=False, build_info="", error="switched off here", path=None))
    cases = machine.cases(quick=True)
    names = {contender.name for case in cases for contender in case.contenders}
    assert names and all(name.startswith("torch") for name in names)
    rows = run_cases(cases, warmup=0, repeats=1)
    assert all(row.matches is not False for row in rows)
    text = machine.summary(rows)
    assert "native build: not loaded (switched off here); torch's rows only" in text
    assert "1T: torch matmul" in text and "ridge point" in text


def _row(name, flops=0.0, bytes_moved=0.0, wall_s=1.0, backend="native", matches=True):
    from workbench_engines.profiling import Profile

    return Profile(backend, wall_s, flops=flops, bytes_moved=bytes_moved, name=name, case="c", matches=matches)


def test_the_summary_reads_fp32_ceilings_and_says_what_16_bit_units_bought(monkeypatch):
    from workbench_engines.profiling import Profile

    def row(case, name, gflops, wall_s=1.0, bytes_moved=0.0):
        return Profile("torch", wall_s, flops=gflops * 1e9 * wall_s, bytes_moved=bytes_moved, name=name, case=case,
                       matches=True)

    monkeypatch.setattr(machine, "thread_counts", lambda: (1,))
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2", "fma", "amx_bf16"})
    rows = [row("CPU peak: fp32 FMA chains (8 lanes x 12)", "FMA chains 1T", 100.0),
            row("CPU peak: fp32 matmul 1024³", "torch matmul 1T", 90.0),
            row("CPU peak: bfloat16 matmul 1024³", "torch matmul 1T", 400.0),  # not fp32's: never its ceiling
            row("memory read, 512 MiB", "ours read 1T", 0.0, bytes_moved=20e9),
            row("matrix units: fp32, bf16, fp16 matmul 1024³", "torch fp32 1T", 90.0, 0.02),
            row("matrix units: fp32, bf16, fp16 matmul 1024³", "torch bf16 1T", 360.0, 0.005),
            row("matrix units: fp32, bf16, fp16 matmul 1024³", "torch fp16 1T", 1.5, 1.2)]
    text = machine.summary(rows)
    assert "torch matmul 90.0 (90%)" in text
    assert ("matrix units at 1T: fp32 90.0 GFLOP/s, bf16 360.0 GFLOP/s (4x fp32, amx_bf16), fp16 1.5 GFLOP/s "
            "(0.017x fp32, no amx_fp16)") in text


def test_roofline_places_each_row_under_the_ceiling_that_binds_it():
    from workbench_engines.profiling.roofline import Roofline

    roof = Roofline({1: 100.0, 2: 200.0}, {1: 20.0, 2: 30.0}, "FMA chains")  # ridge 5 FLOP/byte at 1T
    compute = roof.place(_row("native 1T", flops=60e9, bytes_moved=1e9))  # 60 GFLOP/s at 60 FLOP/byte
    assert (compute.roof_bound, compute.roof_share) == ("peak", pytest.approx(0.6))
    memory = roof.place(_row("native 1T", flops=1e9, bytes_moved=2e9))  # 0.5 FLOP/byte: roof 10 GFLOP/s
    assert (memory.roof_bound, memory.roof_share) == ("bw", pytest.approx(0.1))
    stream = roof.place(_row("torch 2T", bytes_moved=15e9))  # 15 GB/s against the 2T stream's 30
    assert (stream.roof_bound, stream.roof_share) == ("bw", pytest.approx(0.5))
    assert roof.place(_row("numpy", flops=100e9, bytes_moved=1e9)).roof_share == pytest.approx(0.5)  # all threads
    assert roof.place(_row("native 4T", flops=100e9)).roof_share == pytest.approx(0.5)  # 4T: the 2T ceiling
    for unplaced in (_row("cuda 1T", flops=1e9, backend="cuda"), _row("native 1T"),
                     _row("native 1T", flops=1e9, matches=False)):
        assert roof.place(unplaced).roof_share is None
    assert "1T 100.0 GFLOP/s and 20.0 GB/s, 2T 200.0 GFLOP/s and 30.0 GB/s" in roof.line()


@pytest.mark.native
def test_every_bench_table_reads_its_rows_against_the_roofline_of_the_same_run(capsys):
    assert main(["bench", "softmax", "--quick", "--repeats", "1", "--warmup", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    roof = report["roofline"]
    assert roof["peak_source"] == "FMA chains" and set(roof["peak_gflops"]) == set(roof["bandwidth_gbs"])
    measured = sorted(int(n) for n in roof["peak_gflops"])
    for row in report["rows"]:  # the ceiling that binds each row follows from its intensity and the run's ridge
        asked = int(row["name"].rsplit(" ", 1)[1][:-1]) if row["name"].endswith("T") else measured[-1]
        threads = str(max([n for n in measured if n <= asked] or measured[:1]))
        peak, bandwidth = roof["peak_gflops"][threads], roof["bandwidth_gbs"][threads]
        expected = "peak" if row["flops"] / row["bytes_moved"] * bandwidth >= peak else "bw"
        assert row["roof_bound"] == expected and row["roof_share"] > 0, row
    assert main(["bench", "softmax", "--quick", "--repeats", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "roof" in out.splitlines()[2] and "% bw" in out and "roof: the row's rate as a share" in out


@pytest.mark.skipif(not __import__("pathlib").Path("/proc/stat").exists(), reason="reads Linux's /proc")
def test_others_busy_sees_another_process_spinning():
    import subprocess
    import sys

    from workbench_engines.profiling.bench import others_busy

    import os

    cpus = len(os.sched_getaffinity(0))
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus)]
    try:
        share = others_busy(0.5)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    # A spinner a CPU keeps them all busy, but shares them with this process and the suite's other worker.
    assert share is not None and 0.25 < share <= 1.0


def test_a_table_taken_on_a_busy_machine_says_so(capsys):
    from workbench.bench_table import print_report
    from workbench_engines.profiling import Report
    from workbench_engines.profiling.bench import environment

    for busy, warned in ((0.6, True), (0.0, False), (None, False)):
        print_report(Report("toy", "a toy", (), [_row("native 2T", flops=1e9)], {**environment(), "others_busy": busy}))
        out = capsys.readouterr().out
        assert ("Other processes kept 60% of the CPUs busy" in out) == warned


def test_an_80_column_terminal_gets_a_labs_compact_table_with_every_name_and_figure(monkeypatch):
    from rich.console import Console

    import workbench.bench_table as bench_table
    from workbench_engines.profiling import Report
    from workbench_engines.profiling.bench import environment

    from dataclasses import replace

    ratios = {"torch SDPA 1T": 1.25, "native 1T": 1.0}
    rows = [replace(_row(name, flops=1e9), case="causal seq 4096 d128", ratios=ratios,
                    note="avx2, 32 registers of 8 floats" if name == "native 2T" else "")
            for name in ("native 1T", "native 2T", "torch SDPA 1T")]
    report = Report("toy", "a toy", ("torch SDPA 1T", "native 1T"), rows, environment())
    for width, compact in ((80, True), (160, False)):
        console = Console(width=width, record=True)
        monkeypatch.setattr(bench_table, "_console", lambda console=console: console)
        bench_table.print_report(report)
        text = console.export_text()
        assert all(name in text for name in ("native 1T", "native 2T", "torch SDPA 1T", "1.25"))
        assert ("×1: torch SDPA 1T ÷ this" in text) == compact and ("min ms" in text) != compact
        assert ("× X = X's median" in text) != compact
        # Under the compact table each note is whole, on one line with its case and contender.
        noted = "causal seq 4096 d128: native 2T: avx2, 32 registers of 8 floats"
        assert (noted in text.splitlines()) == compact and "32 registers" in text
