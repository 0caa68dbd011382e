"""``workbench bench attention``'s summary: each flash row against torch SDPA and against the matmul rate."""

from __future__ import annotations

from workbench_engines.attention.bench import summary
from workbench_engines.profiling.profile import Profile


def row(case: str, name: str, seconds: float, flops: float, note: str = "") -> Profile:
    return Profile(backend=name.split()[0], wall_s=seconds, flops=flops, name=name, case=case, note=note)


def test_summary_reads_flash_against_torch_and_the_matmul_peak():
    rows = [
        row("CPU peak: fp32 matmul 1024³", "torch matmul 1T", 0.02, 2e9),  # 100 GFLOP/s
        row("full seq 2048", "torch SDPA 1T", 0.12, 8e9),
        row("full seq 2048", "native flash 1T", 0.10, 8e9, note="avx2"),  # 80 GFLOP/s
        row("full seq 1024", "native flash 1T", 0.01, 1e9),  # below 2,048 tokens: not a goal row
    ]
    lines = summary(rows).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("full seq 2048, native flash 1T (avx2): 80.0 GFLOP/s")
    assert "1.20x torch SDPA 1T" in lines[0]
    assert "80% of the fp32 matmul's 100.0 GFLOP/s at 1T" in lines[0]
    assert "torch SDPA 67% of it" in lines[0]
