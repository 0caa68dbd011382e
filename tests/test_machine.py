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
