"""Cases for ``workbench bench attention``: time, GFLOP/s and peak memory against sequence length.

CPU: batch 1, 8 heads, head dim 64 (and 128 at 2,048 and 4,096 tokens), fp32,
causal and not, at 1 and all threads. NumPy materialises every score, so it
stops at 2,048; the naive C kernel stops at 4,096 (its score matrix is 64 MiB
per head there). A torch fp32 matrix product of 1024³ at each thread count
(``workbench bench machine``'s) measures what the FMA units reach in the same
run, and the summary reads the flash kernel's GFLOP/s against it and against
torch SDPA (the native flash rows name the register blocking this build
compiled, wb_attention_simd_path()). Peak
memory is what tracemalloc sees: NumPy arrays, including the C kernels'
workspace, but not torch's allocator (shown as "-").

GPU, when the CUDA kernels load: batch 2, 16 heads, bf16, head dims 64 and
128, torch SDPA against the CUDA flash and naive kernels, each run followed by
a device synchronise; peak memory is the CUDA allocator's high-water mark
above what was allocated before the run. A bf16 matrix product of 8192³
measures the tensor cores' achievable rate in the same run.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from workbench_engines.attention import attention, attention_flops
from workbench_engines.backends import available
from workbench_engines.nativelib import default_threads
from workbench_engines.profiling.bench import Case, Contender, torch_threads
from workbench_engines.profiling.machine import MATMUL_SIZE, PEAK_CASE, matmul_case

SEQS = (512, 1024, 2048, 4096, 8192)
QUICK_SEQS = (64, 130)
HEADS, DIM = 8, 64
WIDE_DIM, WIDE_SEQS = 128, (2048, 4096)


def _close(expected: np.ndarray, got: np.ndarray) -> str | None:
    if got.shape != expected.shape:
        return f"shape {got.shape} != {expected.shape}"
    worst = float(np.max(np.abs(got - expected)))
    return None if worst <= 2e-4 else f"max abs error {worst:.2e}"


def cases(quick: bool = False) -> list[Case]:
    return cpu_cases(quick) + gpu_cases(quick)


def race_case(seq: int, causal: bool, threads: tuple[int, ...], rng: np.random.Generator, dim: int = DIM) -> Case:
    """Attention forward at one sequence length: NumPy (up to 2,048; tiled up to 1,024), torch SDPA and
    the C naive (up to 4,096) and flash kernels at each thread count, on the same random q, k, v (1, 8, seq, dim)."""
    q, k, v = (rng.standard_normal((1, HEADS, seq, dim)).astype(np.float32) for _ in range(3))  # (B, NH, T, HS)
    run = partial(attention, q, k, v, causal=causal)
    contenders = []
    if seq <= 2048:
        contenders.append(Contender("numpy", partial(run, backend="reference", kernel="naive"), "reference"))
    if seq <= 1024:
        # The tiled online softmax the flash lesson explains, in NumPy: slow, but its memory stays flat.
        contenders.append(Contender("numpy tiled", partial(run, backend="reference", kernel="flash"), "reference"))
    for n in threads:
        setup, teardown = torch_threads(n)
        contenders.append(Contender(f"torch SDPA {n}T", partial(run, backend="torch"), "torch", setup, teardown,
                                    memory_visible=False))
    if available("native"):
        from workbench_engines.attention.native import simd_path

        for kernel in ("naive", "flash"):
            if kernel == "naive" and seq > 4096:
                continue
            for n in threads:
                contenders.append(Contender(f"native {kernel} {n}T",
                                            partial(run, backend="native", kernel=kernel, threads=n), "native",
                                            note=simd_path() if kernel == "flash" else ""))
    return Case(
        name=f"{'causal' if causal else 'full'} seq {seq}" + (f" d{dim}" if dim != DIM else ""),
        contenders=contenders,
        check=_close,
        reference=f"torch SDPA {threads[0]}T",
        baselines=(f"torch SDPA {threads[0]}T",),
        flops=attention_flops(1, HEADS, seq, seq, dim, dim, causal),
        bytes_moved=4.0 * 4 * HEADS * seq * dim,
        repeats=3 if seq >= 4096 else None,
        warmup=1 if seq >= 4096 else None,
        measure_memory=True,
    )


def cpu_cases(quick: bool = False) -> list[Case]:
    rng = np.random.default_rng(0)
    threads = tuple(sorted({1, default_threads()}))
    result = [matmul_case(threads, 128 if quick else MATMUL_SIZE)] if available("torch") else []
    result += [race_case(seq, causal, threads, rng) for seq in (QUICK_SEQS if quick else SEQS)
               for causal in (False, True)]
    if not quick:
        result += [race_case(seq, causal, threads, rng, WIDE_DIM) for seq in WIDE_SEQS for causal in (False, True)]
    return result


FLASH_GOAL_VS_TORCH, FLASH_GOAL_OF_PEAK = 1.2, 0.75


def summary(rows) -> str:
    """Each native flash row at 2,048 tokens and more against the two goals (issue "Performance at the machine's
    limit"): its speed over torch SDPA at the same thread count, and its GFLOP/s as a share of torch's fp32 matrix
    product at that thread count, measured in the same run."""
    peak = {row.name.rsplit(" ", 1)[1]: row.gflops for row in rows if row.case.startswith(PEAK_CASE)}
    lines = []
    for row in rows:
        if not row.name.startswith("native flash") or int(row.case.split()[2]) < 2048:
            continue
        threads = row.name.rsplit(" ", 1)[1]  # "native flash 1T" -> "1T"
        torch_row = next((r for r in rows if r.case == row.case and r.name == f"torch SDPA {threads}"), None)
        parts = [f"{row.case}, {row.name} ({row.note or 'native'}): {row.gflops:.1f} GFLOP/s"]
        if torch_row is not None:
            parts.append(f"{torch_row.wall_s / row.wall_s:.2f}x torch SDPA {threads} "
                         f"(goal >= {FLASH_GOAL_VS_TORCH}x)")
        if peak.get(threads):
            parts.append(f"{100 * row.gflops / peak[threads]:.0f}% of the fp32 matmul's {peak[threads]:.1f} "
                         f"GFLOP/s at {threads} (goal >= {FLASH_GOAL_OF_PEAK:.0%})")
            if torch_row is not None:
                parts.append(f"torch SDPA {100 * torch_row.gflops / peak[threads]:.0f}% of it")
        lines.append("; ".join(parts))
    return "\n".join(lines)


def decode_step_case(heads: int, cached: int, kv_options: tuple[int, ...], rng: np.random.Generator,
                     backend: str = "auto") -> Case:
    """One decoding step (one query per head against ``cached`` keys) for each number of key/value heads.

    The key/value heads of every option are copies of one set, so every
    contender computes exactly the same output and the check is exact: only
    the bytes of K and V read per step differ (2 · kv_heads · cached · 64 · 4).
    """
    from workbench_engines.backends import resolve

    choice = resolve(backend)
    base_k, base_v = (rng.standard_normal((1, 1, cached, DIM)).astype(np.float32) for _ in range(2))  # (B, 1, T, HS)
    q = rng.standard_normal((1, heads, 1, DIM)).astype(np.float32)  # (B, NH, 1, HS)
    kwargs = {"backend": choice.name, **({"threads": 1} if choice.name == "native" else {})}
    contenders = []
    for kv in kv_options:
        k, v = np.repeat(base_k, kv, axis=1), np.repeat(base_v, kv, axis=1)  # (B, KVH, T, HS)
        kind = "MHA" if kv == heads else "MQA" if kv == 1 else f"GQA {heads // kv}:1"
        kv_bytes = 2.0 * kv * cached * DIM * 4
        contenders.append(Contender(f"{kind}, {kv} KV heads", partial(attention, q, k, v, **kwargs), choice.name,
                                    bytes_moved=kv_bytes, note=f"KV {kv_bytes / 2**20:.1f} MiB"))
    return Case(
        name=f"decode step: {heads} query heads, {cached:,} cached tokens, {choice}",
        contenders=contenders,
        check=_close,
        reference=contenders[0].name,
        baselines=(contenders[0].name,),
        flops=attention_flops(1, heads, 1, cached, DIM, DIM),
    )


GPU_BATCH, GPU_HEADS, GPU_DIMS = 2, 16, (64, 128)
PEAK_MATMUL = 8192


def _gpu_close(expected, got) -> str | None:
    if got.shape != expected.shape:
        return f"shape {tuple(got.shape)} != {tuple(expected.shape)}"
    error = float((got.float() - expected.float()).norm() / expected.float().norm())
    return None if error <= 2e-2 else f"relative error {error:.2e}"


def _synchronised(fn):
    import torch

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def _cuda_peak(run) -> int:
    """High-water mark of the CUDA allocator during one run, above what was already allocated."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    run()
    return torch.cuda.max_memory_allocated() - before


def gpu_only_cases(quick: bool = False) -> list[Case]:
    """The GPU rows alone (``bench attention-gpu``); CudaUnavailable with the reason where they can't run."""
    from workbench_engines.cudalib import CudaUnavailable, cuda_status

    status = cuda_status()
    if not status.loaded:
        raise CudaUnavailable(f"no GPU rows to run: {status.error}")
    return gpu_cases(quick)


def gpu_cases(quick: bool = False) -> list[Case]:
    """The GPU rows, or none where the CUDA kernels can't load (no GPU, no nvcc)."""
    from workbench_engines.cudalib import cuda_status

    if not cuda_status().loaded:
        return []
    import torch
    from torch.nn.functional import scaled_dot_product_attention

    result = []
    if not quick:
        a, b = (torch.randn(PEAK_MATMUL, PEAK_MATMUL, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        matmul = Contender("torch matmul (cuBLAS)", _synchronised(lambda: a @ b), "torch", memory_visible=False)
        result.append(Case(name=f"GPU peak: bf16 matmul {PEAK_MATMUL}³", contenders=[matmul],
                           check=lambda expected, got: None, reference=matmul.name, baselines=(),
                           flops=2.0 * PEAK_MATMUL**3))
    gen = torch.Generator(device="cuda").manual_seed(0)
    for d in (64,) if quick else GPU_DIMS:
        for seq in QUICK_SEQS if quick else SEQS:
            q, k, v = (torch.randn(GPU_BATCH, GPU_HEADS, seq, d, device="cuda", generator=gen, dtype=torch.bfloat16)
                       for _ in range(3))
            for causal in (False, True):
                contenders = [Contender(
                    "torch SDPA", _synchronised(partial(scaled_dot_product_attention, q, k, v, is_causal=causal)),
                    "torch", memory_probe=_cuda_peak,
                    memory_source="CUDA allocator")]
                for kernel in ("flash", "naive"):
                    if kernel == "naive" and seq > 4096:
                        continue
                    contenders.append(Contender(
                        f"cuda {kernel}",
                        _synchronised(partial(attention, q, k, v, causal=causal, backend="cuda", kernel=kernel)),
                        "cuda", memory_probe=_cuda_peak, memory_source="CUDA allocator"))
                result.append(Case(
                    name=f"GPU bf16 d{d} {'causal' if causal else 'full'} seq {seq}",
                    contenders=contenders,
                    check=_gpu_close,
                    reference="torch SDPA",
                    baselines=("torch SDPA",),
                    flops=attention_flops(GPU_BATCH, GPU_HEADS, seq, seq, d, d, causal),
                    bytes_moved=2.0 * 4 * GPU_BATCH * GPU_HEADS * seq * d,
                    measure_memory=True,
                ))
    return result
