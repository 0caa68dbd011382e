"""Cases racing the hand-written training parts against torch's: cross-entropy forward and backward, one AdamW step.

Both sides run on torch's CPU kernels at one thread (``torch_threads(1)``), so
a ratio measures how the work is written, not how many cores it got: the hand
cross-entropy makes a few more passes over the logits than torch's fused
log-softmax, and the hand AdamW launches one kernel per operation per
parameter, as torch's default single-tensor AdamW does; torch's ``fused=True``
AdamW (one pass per parameter) races too where this torch has it. They teach;
they need not win, and the table says by how much they lose.

These builders are composed into ``workbench bench finetune``
(``workbench_engines.finetune.bench``) and raced by the ``ft.by_hand`` lab.
"""

from __future__ import annotations

import copy
import math
from contextlib import suppress
from typing import Any

import numpy as np

from workbench_engines.profiling.bench import Case, Contender, torch_threads

CE_SHAPE = (4096, 2048)
"""(N, V): the shipped target GPT's training batch, B·T = 8·512 positions over its 2,048-token vocabulary."""
QUICK_CE_SHAPE = (64, 257)
CE_FLOPS_PER_LOGIT = 5
"""max, subtract, exp and add (the forward's logsumexp), then one multiply turning the exponentials into
softmax / n (the backward), exp counted as one: the same count credited to both contenders."""
ADAMW_MODEL = {"vocab_size": 2048, "context": 2048, "d_model": 192, "n_layers": 6, "n_heads": 6, "n_kv_heads": 2}
"""The shipped target GPT's shape (small_gpt.RECIPES["target"]): its parameters are what one step updates."""
QUICK_ADAMW_MODEL = {"vocab_size": 64, "context": 16, "d_model": 16, "n_layers": 1, "n_heads": 2}
ADAMW_FLOPS_PER_WEIGHT = 12
"""decay (1), m's lerp (2), v's scale and multiply-add (3), √, ÷ and + ε (3), the update's multiply-add-divide (3)."""
ADAMW_BYTES_PER_WEIGHT = 28
"""Read θ, g, m, v and write θ, m, v once each in float32: what a single fused pass must move."""


def _close(rtol: float, atol: float):
    """check(expected, got) for tuples of tensors: None when every pair is close, else the worst difference."""
    def check(expected: Any, got: Any) -> str | None:
        """None when every pair of tensors is close, else what differs (shape, or the worst abs error)."""
        for want, have in zip(expected, got):
            if tuple(want.shape) != tuple(have.shape):
                return f"shape {tuple(have.shape)} != {tuple(want.shape)}"
            diff = (have.double() - want.double()).abs()
            bound = atol + rtol * want.double().abs()
            if not bool((diff <= bound).all()):
                return f"max abs error {float(diff.max()):.3g}"
        return None

    return check


def cross_entropy_case(rows: int, vocab: int, rng: np.random.Generator) -> Case:
    """Mean cross-entropy and its gradient over (rows, vocab) float32 logits of scale 4: ours vs F.cross_entropy.

    Each run starts from the same logits and returns (loss, dlogits).
    """
    import torch
    import torch.nn.functional as F

    from workbench_engines.optim.loss import cross_entropy

    logits = torch.tensor(rng.standard_normal((rows, vocab)) * 4, dtype=torch.float32)  # (N, V)
    targets = torch.tensor(rng.integers(0, vocab, rows), dtype=torch.int64)  # (N,)

    def run(loss_fn) -> tuple[Any, Any]:
        """loss_fn's mean loss on the shared logits, and its gradient with respect to them."""
        x = logits.detach().requires_grad_(True)  # a fresh leaf over the same storage: no copy
        loss = loss_fn(x, targets)
        loss.backward()
        return loss.detach(), x.grad

    contenders = []
    for name, loss_fn, backend in (("ours", cross_entropy, "hand"), ("torch", F.cross_entropy, "torch")):
        setup, teardown = torch_threads(1)
        contenders.append(Contender(f"{name} 1T", lambda fn=loss_fn: run(fn), backend, setup, teardown,
                                    memory_visible=False))
    # float32 sums over V terms in two orders: their rounding differs by about √V ulps.
    grow = max(1.0, math.sqrt(vocab) / 16)
    return Case(
        name=f"cross-entropy fwd+bwd {rows}×{vocab}",
        contenders=contenders,
        check=_close(1e-5 * grow, 1e-7 * grow),
        reference="torch 1T",
        baselines=("torch 1T",),
        flops=CE_FLOPS_PER_LOGIT * rows * vocab,
        bytes_moved=2 * 4 * rows * vocab,  # read the logits, write the gradient: the least any version moves
        interleave=True,
    )


def adamw_case(model: dict, rng: np.random.Generator) -> Case:
    """One AdamW step (lr 3e-3, betas (0.9, 0.95), decay 0.1 on matrices) over a GPT's parameters, mid-run.

    Every run gets fresh copies of the same parameters, gradients and moments (made outside the timer), so each
    contender takes the same step from the same state; the check compares the updated parameters.
    """
    import torch

    from workbench_engines.models.gpt import GPT, GPTConfig
    from workbench_engines.optim.adamw import AdamW

    torch.manual_seed(int(rng.integers(2**31)))
    shapes = [tuple(p.shape) for p in GPT(GPTConfig(**model)).parameters()]
    start = [torch.tensor(rng.standard_normal(s) * 0.02, dtype=torch.float32) for s in shapes]
    grads = [torch.tensor(rng.standard_normal(s) * 1e-2, dtype=torch.float32) for s in shapes]
    moments = [(torch.tensor(rng.standard_normal(s) * 1e-3, dtype=torch.float32),
                torch.tensor(rng.random(s) * 1e-4, dtype=torch.float32)) for s in shapes]
    state = {"state": {i: {"step": torch.tensor(10.0), "exp_avg": m, "exp_avg_sq": v}
                       for i, (m, v) in enumerate(moments)},
             "param_groups": [{"lr": 3e-3, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": wd, "params": ids}
                              for wd, ids in ((0.1, [i for i, s in enumerate(shapes) if len(s) >= 2]),
                                              (0.0, [i for i, s in enumerate(shapes) if len(s) < 2]))]}
    weights = sum(math.prod(s) for s in shapes)

    def fresh() -> list[Any]:
        """New parameters holding the starting weights, each with its gradient set."""
        params = [torch.nn.Parameter(p.clone()) for p in start]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        return params

    def groups(params: list[Any]) -> list[dict]:
        """params split into the saved state's two param groups (decayed matrices, undecayed vectors)."""
        return [{"params": [params[i] for i in group["params"]], "weight_decay": group["weight_decay"]}
                for group in state["param_groups"]]

    def build(kind: str) -> tuple[Any, list[Any]]:
        """An optimizer of ``kind`` ("ours", "torch" or "fused") on fresh parameters, resumed from the state."""
        params = fresh()
        if kind == "ours":
            optimizer = AdamW(groups(params), lr=3e-3, betas=(0.9, 0.95))
        else:
            optimizer = torch.optim.AdamW(groups(params), lr=3e-3, betas=(0.9, 0.95), fused=kind == "fused")
        optimizer.load_state_dict(copy.deepcopy(state))  # torch keeps the loaded tensors and updates them in place
        return optimizer, params

    kinds = {"ours 1T": ("ours", "hand"), "torch 1T": ("torch", "torch")}
    with suppress(RuntimeError, TypeError):  # a torch without the CPU fused kernel races without that row
        build("fused")
        kinds["torch fused 1T"] = ("fused", "torch")

    def inputs() -> dict[str, tuple[Any, list[Any]]]:
        """A freshly built (optimizer, parameters) for every contender, so each times the same first step."""
        # The runner makes one set of inputs per run, for whichever contender runs: a set for each.
        return {name: build(kind) for name, (kind, _) in kinds.items()}

    def step(made: dict[str, tuple[Any, list[Any]]], name: str) -> tuple[Any, ...]:
        """One step of contender ``name``'s optimizer; returns its updated parameters."""
        optimizer, params = made[name]
        optimizer.step()
        return tuple(p.detach() for p in params)

    contenders = []
    for name, (_, backend) in kinds.items():
        setup, teardown = torch_threads(1)
        contenders.append(Contender(name, lambda made, name=name: step(made, name), backend, setup, teardown,
                                    memory_visible=False))
    return Case(
        name=f"AdamW step, {weights / 1e6:.2f}M weights",
        contenders=contenders,
        check=_close(1e-5, 1e-8),
        reference="torch 1T",
        baselines=("torch 1T",),
        flops=ADAMW_FLOPS_PER_WEIGHT * weights,
        bytes_moved=ADAMW_BYTES_PER_WEIGHT * weights,
        inputs=inputs,
        interleave=True,
    )


def cases(quick: bool = False) -> list[Case]:
    """The cross-entropy case and the AdamW case; ``quick`` shrinks both for tests (never for reported figures)."""
    rng = np.random.default_rng(0)
    rows, vocab = QUICK_CE_SHAPE if quick else CE_SHAPE
    return [cross_entropy_case(rows, vocab, rng), adamw_case(QUICK_ADAMW_MODEL if quick else ADAMW_MODEL, rng)]
