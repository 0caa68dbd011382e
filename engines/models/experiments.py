"""Small training experiments the lessons run live: several mini-former variants on the same data.

Every variant starts from the same seed and sees the same batches, so the
curves differ only by the switch being compared.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Callable

import numpy as np

from workbench_engines.errors import EngineError


@dataclass(frozen=True)
class Variant:
    name: str
    model: dict
    """MiniConfig fields (vocab_size and context are filled in)."""
    objective: str = "causal"
    train: dict = field(default_factory=dict)
    """TrainConfig overrides (lr, warmup, grad_clip, accumulation, ...)."""
    balance: float = 0.01


@dataclass
class Curve:
    name: str
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    """Seconds since this variant started, at each step."""
    val_loss: float | None = None
    seconds: float = 0.0
    parameters: int = 0
    active_parameters: int = 0
    model: object = None

    @property
    def diverged(self) -> bool:
        return any(not math.isfinite(x) for x in self.losses) or (bool(self.losses) and self.losses[-1] > 20)


@cache
def lesson_data(limit_bytes: int = 1_500_000):
    """The plays encoded with the shipped 2,048-token tokenizer (the first limit_bytes of text)."""
    from workbench_engines.models.data import encode_corpus
    from workbench_engines.models.small_gpt import shipped_tokenizer

    return encode_corpus(shipped_tokenizer(), limit_bytes=limit_bytes)


def run_variants(variants: list[Variant], *, steps: int = 150, batch_size: int = 16, seq_len: int = 64,
                 on_step: Callable[[Curve], None] | None = None, should_stop: Callable[[], bool] | None = None,
                 data=None, report_every: int = 5) -> list[Curve]:
    """Train each variant for ``steps`` steps and return its loss curve (and the trained model)."""
    import torch

    from workbench_engines.models.miniformer import MiniConfig, MiniFormer
    from workbench_engines.models.objectives import objective
    from workbench_engines.models.train import StepReport, TrainConfig, evaluate, train

    if not variants:
        raise EngineError("no variants to train")
    data = data if data is not None else lesson_data()
    curves = []
    for variant in variants:
        config = MiniConfig(**{"vocab_size": 2048, "context": seq_len, **variant.model})
        torch.manual_seed(0)
        model = MiniFormer(config)
        curve = Curve(variant.name, parameters=model.parameter_count(),
                      active_parameters=model.parameter_count(active=True), model=model)
        curves.append(curve)
        train_config = TrainConfig(**{"steps": steps, "batch_size": batch_size, "seq_len": seq_len, "lr": 3e-3,
                                      "warmup": max(1, steps // 10), "eval_every": steps, "eval_windows": 16,
                                      "checkpoint_every": steps, **variant.train})
        loss_fn = objective(variant.objective, variant.balance)

        started = time.perf_counter()

        def step(report: StepReport, curve=curve, started=started) -> None:
            curve.elapsed.append(time.perf_counter() - started)
            curve.steps.append(report.step)
            curve.losses.append(report.loss)
            curve.grad_norms.append(report.grad_norm)
            if report.val_loss is not None:
                curve.val_loss = report.val_loss
            if on_step is not None and (report.step % report_every == 0 or report.step == report.total):
                on_step(curve)

        train(model, data, train_config, loss_fn=loss_fn, on_step=step, should_stop=should_stop)
        curve.seconds = time.perf_counter() - started
        if curve.val_loss is None:
            curve.val_loss = evaluate(model, data, seq_len, 16, loss_fn)
    return curves


def fit_power_law(sizes: list[float], losses: list[float]) -> tuple[float, float]:
    """(a, b) of loss ≈ a · N^(−b), fitted by least squares in log-log space (Kaplan et al., 2020, eq. 1.1
    without the irreducible term, which three points cannot pin down)."""
    if len(sizes) < 2 or len(sizes) != len(losses) or min(sizes) <= 0 or min(losses) <= 0:
        raise EngineError("need at least two positive (size, loss) points")
    slope, intercept = np.polyfit(np.log(sizes), np.log(losses), 1)
    return float(np.exp(intercept)), float(-slope)


def expert_histogram(model, data, windows: int = 16, seq_len: int = 64) -> np.ndarray:
    """Tokens the routers send to each expert of each MoE layer over held-out windows: [layers, experts]."""
    import torch

    from workbench_engines.moe.layer import MoELayer

    layers = [block.ffn for block in model.blocks if isinstance(block.ffn, MoELayer)]
    if not layers:
        raise EngineError("the model has no MoE layers")
    counts = np.zeros((len(layers), layers[0].n_experts), dtype=np.int64)
    batch = torch.from_numpy(data.val_windows(seq_len, windows)[:, :-1].astype(np.int64))
    model.eval()
    with torch.no_grad():
        model(batch)
    for i, layer in enumerate(layers):
        counts[i] = layer.stats.routed.numpy()
    return counts


def sparse_dense_configs(d_model: int, hidden: int, context: int, n_layers: int, experts: int = 4) -> dict:
    """Three mini-formers for a sparse-against-dense comparison: dense with hidden H; ``experts`` experts
    of hidden H at top-1 (equal active parameters); dense with hidden experts·H (equal total parameters)."""
    from workbench_engines.models.miniformer import MiniConfig

    base = {"vocab_size": 2048, "context": context, "d_model": d_model, "n_layers": n_layers, "n_heads": 4}
    return {
        "dense (hidden H)": MiniConfig(**base, hidden=hidden, ffn="swiglu"),
        f"MoE {experts}×H, top-1": MiniConfig(**base, hidden=hidden, ffn="moe", n_experts=experts, top_k=1),
        f"dense (hidden {experts}H)": MiniConfig(**base, hidden=experts * hidden, ffn="swiglu"),
    }


def training_step(config, window) -> Callable[[], tuple[float, object]]:
    """A fresh mini-former (seed 0) and a function that takes one AdamW causal-LM step on ``window``
    and returns (loss, model): what the sparse-against-dense timings race."""
    import torch

    from workbench_engines.models.miniformer import MiniFormer
    from workbench_engines.models.objectives import causal_lm

    torch.manual_seed(0)
    model = MiniFormer(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> tuple[float, object]:
        optimizer.zero_grad(set_to_none=True)
        loss = causal_lm(model, window)
        loss.backward()
        optimizer.step()
        return loss.item(), model

    return step


def non_embedding_parameters(model, active: bool = False) -> int:
    """Parameters without the embedding table and output head (Kaplan et al.'s N); active=True counts
    only the experts a token uses."""
    return model.parameter_count(active=active) - model.embed.weight.numel() - model.head.weight.numel()
