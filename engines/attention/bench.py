"""Cases for ``workbench bench attention``: time, GFLOP/s and peak memory against sequence length.

batch 1, 8 heads, head dim 64, fp32, causal and not, at 1 and all threads.
NumPy materialises every score, so it stops at 2,048; the naive C kernel
stops at 4,096 (its score matrix is 64 MiB per head there). Peak memory is
what tracemalloc sees: NumPy arrays, including the C kernels' workspace, but
not torch's allocator (shown as "-").
"""

from __future__ import annotations

from functools import partial

import numpy as np

from engines.attention import attention, attention_flops
from engines.nativelib import default_threads, native_status
from engines.profiling.bench import Case, Contender, torch_threads

SEQS = (512, 1024, 2048, 4096, 8192)
QUICK_SEQS = (64, 130)
HEADS, DIM = 8, 64


def _close(expected: np.ndarray, got: np.ndarray) -> str | None:
    if got.shape != expected.shape:
        return f"shape {got.shape} != {expected.shape}"
    worst = float(np.max(np.abs(got - expected)))
    return None if worst <= 2e-4 else f"max abs error {worst:.2e}"


def cases(quick: bool = False) -> list[Case]:
    rng = np.random.default_rng(0)
    threads = sorted({1, default_threads()})
    result = []
    for seq in QUICK_SEQS if quick else SEQS:
        q, k, v = (rng.standard_normal((1, HEADS, seq, DIM)).astype(np.float32) for _ in range(3))
        for causal in (False, True):
            run = partial(attention, q, k, v, causal=causal)
            contenders = []
            if seq <= 2048:
                contenders.append(Contender("numpy", partial(run, backend="reference"), "reference"))
            for n in threads:
                setup, teardown = torch_threads(n)
                contenders.append(Contender(f"torch SDPA {n}T", partial(run, backend="torch"), "torch", setup, teardown,
                                            memory_visible=False))
            if native_status().loaded:
                for kernel in ("naive", "flash"):
                    if kernel == "naive" and seq > 4096:
                        continue
                    for n in threads:
                        contenders.append(Contender(f"native {kernel} {n}T",
                                                    partial(run, backend="native", kernel=kernel, threads=n), "native"))
            result.append(Case(
                name=f"{'causal' if causal else 'full'} seq {seq}",
                contenders=contenders,
                check=_close,
                reference="torch SDPA 1T",
                baselines=("torch SDPA 1T",),
                flops=attention_flops(1, HEADS, seq, seq, DIM, DIM, causal),
                bytes_moved=4.0 * 4 * HEADS * seq * DIM,
                repeats=3 if seq >= 4096 else None,
                warmup=1 if seq >= 4096 else None,
                measure_memory=True,
            ))
    return result
