"""``workbench bench machine``: this machine's roofline, measured in one run.

A roofline (Williams, Waterman and Patterson, CACM 2009) has two ceilings: the
multiply-add rate of the cores and the memory bandwidth. A kernel that does
few FLOPs per byte it moves (a decode step: about 0.5 FLOP per fp32 weight
byte) is held down by the second; one that does many (a large matrix product,
flash attention) by the first. Their ratio, the ridge point, says where one
ends and the other begins. The ceilings are measured here, at one thread and
at all, by native/src/wb_roofline.c (independent FMA chains in registers; a
STREAM triad and a read-only sum) beside torch's fp32 matrix product and
torch's own streams, and the summary names the vector paths this build
compiled and the CPU offers. Other benchmarks read their figures against the
same measurements (``workbench bench attention`` runs :func:`matmul_case`). One more case multiplies in fp32,
bf16 and fp16 at one thread: what the CPU's 16-bit units buy, or cost where it has none (:func:`units_case`).
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import as_rows_f32, require_int
from workbench_engines.backends import available
from workbench_engines.nativelib import check_status, check_threads, default_threads, native
from workbench_engines.profiling.bench import Case, Contender, cpu_fields, torch_threads

FMA_STEPS = 50_000_000
"""Steps of the FMA chains per run, split across threads (about 0.2 s at one thread of a 2.9 GHz AVX2 core)."""
TRIAD_FLOATS = 1 << 25
"""Elements of each triad array: 128 MiB, far past any cache."""
READ_FLOATS = 1 << 27
"""Elements of the read stream: 512 MiB of ones, whose sum every order of addition gets exactly (2^27)."""
MATMUL_SIZE = 1024
PEAK_CASE = "CPU peak"
"""How every ceiling case's name begins, for the benchmarks and labs that read their rows against it."""
SIXTEEN_BIT_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("amx_fp16",)}
"""x86 CPU flags of the instructions that multiply each 16-bit format into fp32 sums: AVX512-BF16's dot products
of pairs, and AMX's tile products."""
BF16_FLAGS = SIXTEEN_BIT_FLAGS["bf16"]
"""CPU flags under which torch's bf16 matrix product runs on bf16 instructions (else it converts: no peak to find)."""


def lanes() -> int:
    """Floats per vector register in this build (16 with AVX-512, 8 with AVX2, 4 otherwise)."""
    return int(native().lib.wb_roofline_lanes())


def fma_flops(steps: int, threads: int) -> float:
    """FLOPs of :func:`fma_chains`: 2 per lane, chain and step, steps split evenly across threads."""
    lib = native().lib
    return 2.0 * lib.WB_ROOFLINE_CHAINS * lanes() * (steps // threads) * threads


def fma_chains(steps: int = FMA_STEPS, threads: int | None = None) -> np.ndarray:
    """Run the FMA chains; returns each thread's checksum (finite, and the same for every thread)."""
    steps = require_int(steps, "steps", low=0)
    n_threads = check_threads(threads)
    module = native()
    sums = np.zeros(n_threads, dtype=np.float32)
    status = module.lib.wb_roofline_fma_f32(module.ffi.from_buffer("float[]", sums, require_writable=True), steps,
                                            n_threads)
    check_status("wb_roofline_fma_f32", status)
    return sums


def _stream(array: object, name: str, size: int | None = None) -> np.ndarray:
    """array checked as the kernels need it (float32, C-contiguous; any shape, read as its elements in order)."""
    array, _ = as_rows_f32(array, name)
    if size is not None and array.size != size:
        raise ValueError(f"{name} has {array.size} elements, expected {size}")
    return array


def triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, s: float, threads: int | None = None) -> np.ndarray:
    """a = b + s c in place (STREAM's triad) through the C kernel; returns a."""
    a = _stream(a, "a")
    b, c = _stream(b, "b", a.size), _stream(c, "c", a.size)
    if not a.flags.writeable:
        raise ValueError("a must be writable")
    n_threads = check_threads(threads)
    module = native()
    ffi = module.ffi
    status = module.lib.wb_roofline_triad_f32(ffi.from_buffer("float[]", a, require_writable=True),
                                              ffi.from_buffer("float[]", b), ffi.from_buffer("float[]", c),
                                              float(s), a.size, n_threads)
    check_status("wb_roofline_triad_f32", status)
    return a


def read_sum(x: np.ndarray, threads: int | None = None) -> float:
    """The sum of x, read once through the C kernel (four vector accumulators a thread)."""
    x = _stream(x, "x")
    n_threads = check_threads(threads)
    module = native()
    total = np.zeros(1, dtype=np.float32)
    status = module.lib.wb_roofline_read_f32(module.ffi.from_buffer("float[]", total, require_writable=True),
                                             module.ffi.from_buffer("float[]", x), x.size, n_threads)
    check_status("wb_roofline_read_f32", status)
    return float(total[0])


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is missing."""
    return set(cpu_fields().get("flags", "").split())


def thread_counts() -> tuple[int, ...]:
    """One thread and all of them (just (1,) on one CPU): the counts every ceiling is measured at."""
    return tuple(sorted({1, default_threads()}))


def matmul_case(threads: tuple[int, ...], size: int = MATMUL_SIZE, dtype: str = "float32") -> Case:
    """torch's matrix product of size³ at each thread count: the multiply-add rate a tuned BLAS reaches here."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen).to(getattr(torch, dtype)) for _ in range(2))
    contenders = []
    for n in threads:
        setup, teardown = torch_threads(n)
        contenders.append(Contender(f"torch matmul {n}T", lambda: a @ b, "torch", setup, teardown,
                                    memory_visible=False))
    tolerance = {"rtol": 1e-4, "atol": 1e-3} if dtype == "float32" else {"rtol": 2e-2, "atol": 1.0}
    return Case(name=f"{PEAK_CASE}: {'fp32' if dtype == 'float32' else dtype} matmul {size}³", contenders=contenders,
                check=lambda expected, got: None if torch.allclose(expected.float(), got.float(), **tolerance)
                else "products differ",
                reference=contenders[0].name, baselines=(), flops=2.0 * size**3)


UNIT_DTYPES = (("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16"))
"""The formats units_case multiplies in: (label, torch dtype name)."""
UNIT_TOLERANCE = {"float32": 2.0**-16, "bfloat16": 2.0**-5, "float16": 2.0**-8}
"""units_case's allowed difference from fp32, times sqrt(size): an output, a sum of size standard-normal products, is
about sqrt(size), and a 16-bit product rounds its inputs and output to 8 (bf16) or 11 (fp16) significant bits. The
largest differences measured at sizes 128-512 were 4.1-4.5 times 2^-8 for bf16 and 0.46-0.55 times 2^-8 for fp16."""


def sixteen_bit_units(flags: set[str] | None = None) -> dict[str, list[str]]:
    """Per 16-bit format, the CPU flags of this machine's instructions that multiply it (empty: none)."""
    flags = cpu_flags() if flags is None else flags
    return {fmt: [f for f in wanted if f in flags] for fmt, wanted in SIXTEEN_BIT_FLAGS.items()}


def units_case(size: int, threads: int = 1) -> Case:
    """torch's size³ matrix product in fp32, bf16 and fp16 on the same inputs at one thread count: what the CPU's
    16-bit units buy (more than fp32 with AMX tiles; without 16-bit instructions and AVX-512, torch's plain loop,
    tens of times slower)."""
    import torch

    size = require_int(size, "size", low=1)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen) for _ in range(2))
    setup, teardown = torch_threads(threads)
    contenders = []
    for label, dtype in UNIT_DTYPES:
        x, y = a.to(getattr(torch, dtype)), b.to(getattr(torch, dtype))
        contenders.append(Contender(f"torch {label} {threads}T", lambda x=x, y=y: x @ y, "torch", setup, teardown,
                                    memory_visible=False))

    def check(expected, got) -> str | None:
        bound = UNIT_TOLERANCE[str(got.dtype).removeprefix("torch.")] * size**0.5
        difference = float((got.float() - expected.float()).abs().max())
        return None if difference <= bound else f"max difference {difference:.3g} > {bound:.3g}"

    return Case(name=f"matrix units: fp32, bf16, fp16 matmul {size}³", contenders=contenders, check=check,
                reference=contenders[0].name, baselines=(contenders[0].name,), flops=2.0 * size**3)


def fma_case(threads: tuple[int, ...], steps: int) -> Case:
    """The C kernel's FMA chains at each thread count, the same total work split across threads."""
    steps -= steps % max(threads)  # every thread count divides it: the same FLOPs for each contender
    contenders = [Contender(f"FMA chains {n}T", lambda n=n: fma_chains(steps, n), "native") for n in threads]
    return Case(name=f"{PEAK_CASE}: fp32 FMA chains ({lanes()} lanes x {native().lib.WB_ROOFLINE_CHAINS})", contenders=contenders,
                check=lambda expected, got: None if np.isfinite(got).all() and np.all(got == got[0])
                else f"checksums {got}",
                reference=contenders[0].name, baselines=(), flops=fma_flops(steps, 1))


def triad_case(threads: tuple[int, ...], n: int) -> Case:
    """STREAM's triad a = b + 3 c on n floats a side: ours and torch's add (alpha=3, out=a) at each thread count."""
    import torch

    rng = np.random.default_rng(0)
    b, c = (rng.standard_normal(n, dtype=np.float32) for _ in range(2))
    a_ours, a_torch = np.empty_like(b), torch.empty(n)
    tb, tc = torch.from_numpy(b), torch.from_numpy(c)
    contenders = [Contender(f"ours triad {k}T", lambda k=k: triad(a_ours, b, c, 3.0, k), "native") for k in threads
                  if available("native")]
    for k in threads:
        setup, teardown = torch_threads(k)
        contenders.append(Contender(f"torch add {k}T", lambda: torch.add(tb, tc, alpha=3.0, out=a_torch).numpy(),
                                    "torch", setup, teardown, memory_visible=False))
    return Case(name=f"memory triad, 3 x {4 * n / 2**20:g} MiB", contenders=contenders,
                check=lambda expected, got: None if np.allclose(expected, got, rtol=1e-6, atol=1e-6)
                else "triads differ",
                reference=contenders[0].name, baselines=(), bytes_moved=12.0 * n)


def read_case(threads: tuple[int, ...], n: int) -> Case:
    """A read-only stream of n ones: ours (where the C build loaded) and torch's sum at each thread count (both
    exact: n is 2^k). The name says the size in MiB: "memory read, 512 MiB"."""
    import torch

    ones = np.ones(n, dtype=np.float32)
    t_ones = torch.from_numpy(ones)
    contenders = [Contender(f"ours read {k}T", lambda k=k: read_sum(ones, k), "native") for k in threads
                  if available("native")]
    for k in threads:
        setup, teardown = torch_threads(k)
        contenders.append(Contender(f"torch sum {k}T", lambda: float(t_ones.sum()), "torch", setup, teardown,
                                    memory_visible=False))
    return Case(name=f"memory read, {4 * n / 2**20:g} MiB", contenders=contenders,
                check=lambda expected, got: None if got == expected else f"sum {got} != {expected}",
                reference=contenders[0].name, baselines=(), bytes_moved=4.0 * n)


def cases(quick: bool = False) -> list[Case]:
    """FMA chains and torch's fp32 matmul (and bf16 where the CPU has bf16 instructions), one product in fp32, bf16
    and fp16 at one thread (what 16-bit units buy), the triad and the read; without the C build, torch's rows alone."""
    threads = thread_counts()
    result = [fma_case(threads, FMA_STEPS // 100 if quick else FMA_STEPS)] if available("native") else []
    result.append(matmul_case(threads, 128 if quick else MATMUL_SIZE))
    if cpu_flags() & set(BF16_FLAGS):
        result.append(matmul_case(threads, 128 if quick else MATMUL_SIZE, "bfloat16"))
    # Without 16-bit instructions (and AVX-512) torch's 16-bit product can run near 1 GFLOP/s: unless the CPU
    # multiplies both formats itself, a smaller product says as much.
    units = all(sixteen_bit_units().values())
    result.append(units_case(64 if quick else MATMUL_SIZE if units else 256))
    result += [triad_case(threads, 1 << 16 if quick else TRIAD_FLOATS),
               read_case(threads, 1 << 16 if quick else READ_FLOATS)]
    return result


def compiled_paths() -> list[str]:
    """What this build compiled and what the CPU and torch offer, one line each."""
    from workbench_engines.attention.native import simd_path as attention_path
    from workbench_engines.nativelib import native_status
    from workbench_engines.quant.native import simd_path as quant_path

    flags = cpu_flags()
    wanted = ("fma", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
    status = native_status()
    lines = [f"CPU offers: {', '.join(f for f in wanted if f in flags) or 'none of ' + ', '.join(wanted)}"]
    if status.loaded:
        lines += [f"native build: {status.build_info}",
                  f"vector registers in this build: {lanes()} floats (roofline and flash attention), "
                  f"flash attention blocking {attention_path()}, quantised products {quant_path()}"]
    else:
        lines.append(f"native build: not loaded ({status.error}); torch's rows only")
    try:
        import torch

        lines.append(f"torch {torch.__version__}: CPU capability {torch.backends.cpu.get_cpu_capability()}")
    except ImportError:
        lines.append("torch: not installed, so no matmul or torch stream rows")
    if not flags & set(BF16_FLAGS):
        lines.append(f"bf16: no {' or '.join(BF16_FLAGS)} on this CPU, so no bf16 peak to measure")
    return lines


def units_line(rows) -> str:
    """The matrix units rows in one line: each 16-bit format's rate against fp32's, and the instructions behind it."""
    by = {row.name.split()[1]: row for row in rows if row.case.startswith("matrix units")}
    fp32 = by.get("fp32")
    if fp32 is None:
        return ""
    units = sixteen_bit_units()
    parts = [f"{fmt} {row.gflops:.1f} GFLOP/s ({fp32.wall_s / row.wall_s:.2g}x fp32, "
             f"{', '.join(units[fmt]) or 'no ' + ' or '.join(SIXTEEN_BIT_FLAGS[fmt])})"
             for fmt, row in by.items() if fmt != "fp32"]
    return f"matrix units at 1T: fp32 {fp32.gflops:.1f} GFLOP/s, " + ", ".join(parts)


def read_bandwidth(rows, threads: int) -> float:
    """The best read bandwidth (GB/s) a read_case row measured at this thread count, ours or torch's; 0 if none."""
    return max((row.gbytes_per_s for row in rows
                if row.case.startswith("memory read") and row.name.endswith(f" {threads}T")), default=0.0)


def summary(rows) -> str:
    """The ceilings at each thread count, the ridge point between them, and the vector paths in use."""
    # The fp32 ceilings by contender name (the bf16 peak's contenders are "torch matmul" too).
    by_name = {row.name: row for row in rows if row.case.startswith(f"{PEAK_CASE}: fp32")}
    lines = compiled_paths()
    if units := units_line(rows):
        lines.append(units)
    for n in thread_counts():
        fma, matmul = by_name.get(f"FMA chains {n}T"), by_name.get(f"torch matmul {n}T")
        bandwidth = read_bandwidth(rows, n)
        peak = max(fma.gflops if fma else 0.0, matmul.gflops if matmul else 0.0)
        if not (peak and bandwidth):
            continue
        parts = [f"fp32 peak {fma.gflops:.1f} GFLOP/s (FMA chains)" if fma else "",
                 f"torch matmul {matmul.gflops:.1f}" + (f" ({100 * matmul.gflops / fma.gflops:.0f}%)" if fma else "")
                 if matmul else ""]
        lines.append(f"{n}T: {', '.join(p for p in parts if p)}; read {bandwidth:.1f} GB/s; ridge point "
                     f"{peak / bandwidth:.1f} FLOP/byte (kernels below it are bound by memory, above it by the FMA "
                     "units)")
    threads = thread_counts()
    one, most = by_name.get("FMA chains 1T"), by_name.get(f"FMA chains {threads[-1]}T")
    if len(threads) > 1 and one and most and one.gflops:
        lines.append(f"FMA chains scale {most.gflops / one.gflops:.2f}x from 1 to {threads[-1]} threads: they touch "
                     f"no memory and never synchronise, so this is the most any compute-bound kernel can scale here "
                     f"({threads[-1]:.0f}x if every thread has a core of its own; near 1x when the threads share one "
                     f"core's FMA units, as SMT siblings do)")
    return "\n".join(lines)
