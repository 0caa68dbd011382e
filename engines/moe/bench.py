"""Cases for ``workbench bench moe``: dispatch then combine, native C vs torch index-based vs NumPy,
and mini-former training steps, sparse against dense.

Dispatch/combine: 8,192 tokens of width 1,024 routed top-2 over 8 and 64
experts at capacity factor 1.25; the experts themselves are the identity, so
only the data movement is timed. Training: one optimizer step of a 4-layer
mini-former with a dense SwiGLU feed-forward, with 4 experts of the same size
at top-1 (equal active parameters, 4× the feed-forward weights), and with
one dense feed-forward 4× as wide (equal total parameters).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from workbench_engines import moe
from workbench_engines.backends import available
from workbench_engines.nativelib import default_threads
from workbench_engines.profiling.bench import Case, Contender, torch_threads


def _round_trip(x, weights, experts, n_experts, capacity, backend, threads=None):
    kwargs = {"threads": threads} if backend == "native" else {}
    buffers, positions, _ = moe.dispatch(x, experts, n_experts, capacity, backend=backend, **kwargs)
    return moe.combine(buffers, positions, experts, weights, backend=backend, **kwargs)


def _close(expected: np.ndarray, got: np.ndarray) -> str | None:
    worst = float(np.max(np.abs(expected - got)))
    return None if worst <= 1e-5 else f"max abs error {worst:.2e}"


def cases(quick: bool = False) -> list[Case]:
    rng = np.random.default_rng(0)
    tokens, d = (256, 64) if quick else (8192, 1024)
    result = []
    for n_experts in (8, 64):
        x = rng.standard_normal((tokens, d)).astype(np.float32)
        weights, experts, _ = moe.route(rng.standard_normal((tokens, n_experts)), 2)
        cap = moe.capacity(tokens, n_experts, 2, 1.25)
        run = partial(_round_trip, x, weights, experts, n_experts, cap)
        contenders = []
        if quick or n_experts == 8:
            contenders.append(Contender("numpy", partial(run, "reference"), "reference"))
        setup, teardown = torch_threads(1)
        contenders.append(Contender("torch 1T", partial(run, "torch"), "torch", setup, teardown))
        if available("native"):
            for n in sorted({1, default_threads()}):
                contenders.append(Contender(f"native {n}T", partial(run, "native", n), "native"))
        result.append(Case(f"dispatch+combine {tokens}×{d}, {n_experts} experts, top-2", contenders, _close,
                           "torch 1T", ("torch 1T",), bytes_moved=4.0 * x.size * 2 * 4))
    result.append(training_case(4, 32, 32, 64) if quick else training_case(16, 128, 128, 256))
    return result


def training_case(batch: int, length: int, d_model: int, hidden: int, n_layers: int = 4) -> Case:
    """One optimizer step of a dense mini-former, a sparse one with 4 experts at top-1 (equal active
    parameters) and a dense one with a 4× wider feed-forward (equal total parameters)."""
    import torch

    from workbench_engines.models.experiments import non_embedding_parameters, sparse_dense_configs, training_step

    window = torch.randint(0, 2048, (batch, length + 1), generator=torch.Generator().manual_seed(0))
    configs = sparse_dense_configs(d_model, hidden, length, n_layers=n_layers)
    contenders = [Contender(name, training_step(config, window), "torch") for name, config in configs.items()]

    def check(expected, got) -> str | None:
        return None if np.isfinite(got[0]) else "the loss is not finite"

    def figures(output) -> dict[str, float]:
        model = output[1]
        return {"parameters": non_embedding_parameters(model), "active": non_embedding_parameters(model, active=True)}

    def describe(output) -> str:
        counts = figures(output)
        # 6 FLOPs per active weight per token for forward and backward (Kaplan et al., 2020).
        return (f"{counts['parameters'] / 1e6:.2f}M params, {counts['active'] / 1e6:.2f}M active, "
                f"{6 * counts['active'] / 1e6:.1f} MFLOP/token")

    reference = next(iter(configs))
    return Case(f"mini-former training step, {batch * length:,} tokens", contenders, check, reference, (reference,),
                describe=describe, figures=figures)
