"""Cases for ``workbench bench softmax``: native C vs NumPy vs torch on the same logits."""

from __future__ import annotations

from functools import partial

import numpy as np

from workbench_engines.backends import available
from workbench_engines.nativelib import default_threads
from workbench_engines.profiling.bench import Case, Contender, torch_threads
from workbench_engines.softmax import FLOPS_PER_ELEMENT, native, reference, torch_backend

SHAPES = [(1, 100_000), (64, 32_000), (4096, 1024), (2048, 2048)]
QUICK_SHAPES = [(3, 257)]


def _close(expected: np.ndarray, got: np.ndarray) -> str | None:
    # float32: implementations differ in summation order and in exp, and a
    # log-space output carries the rounding of log(sum) at the row's scale.
    if expected.shape != got.shape:
        return f"shape {got.shape} != {expected.shape}"
    scale = float(np.nanmax(np.abs(expected), initial=1.0))
    atol = 1e-6 + 8 * np.finfo(np.float32).eps * scale
    if not np.allclose(got, expected, rtol=1e-5, atol=atol, equal_nan=True):
        worst = float(np.nanmax(np.abs(got.astype(np.float64) - expected)))
        return f"max abs error {worst:.3g}"
    return None


def _contenders(op: str, x: np.ndarray) -> list[Contender]:
    threads = sorted({1, default_threads()})
    contenders = [Contender("numpy", partial(getattr(reference, op), x), "reference")]
    for n in threads:
        setup, teardown = torch_threads(n)
        contenders.append(
            Contender(f"torch {n}T", partial(getattr(torch_backend, op), x), "torch", setup, teardown,
                      memory_visible=False)
        )
    if available("native"):
        for n in threads:
            contenders.append(
                Contender(f"native {n}T", partial(getattr(native, op), x, threads=n), "native")
            )
    return contenders


def race_case(op: str, rows: int, cols: int, rng: np.random.Generator, *, measure_memory: bool = False) -> Case:
    """op on (rows, cols) float32 logits of scale 4: NumPy, torch and the C kernels at 1 and all threads."""
    x = (rng.standard_normal((rows, cols)) * 4).astype(np.float32)
    out_elems = rows if op == "logsumexp" else rows * cols
    return Case(
        name=f"{op} {rows}x{cols}",
        contenders=_contenders(op, x),
        check=_close,
        reference="numpy",
        baselines=("numpy", "torch 1T"),
        flops=FLOPS_PER_ELEMENT * x.size,
        bytes_moved=x.nbytes + 4 * out_elems,
        measure_memory=measure_memory,
    )


def cases(quick: bool = False) -> list[Case]:
    """Softmax on each shape, then log-softmax and logsumexp on one LLM-sized batch."""
    rng = np.random.default_rng(0)
    shapes = QUICK_SHAPES if quick else SHAPES
    work = [("softmax", shape) for shape in shapes]
    work += [("log_softmax", shapes[1 % len(shapes)]), ("logsumexp", shapes[1 % len(shapes)])]
    return [race_case(op, rows, cols, rng) for op, (rows, cols) in work]
