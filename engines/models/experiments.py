"""Small training experiments the lessons run live: several mini-former variants on the same data.

Every variant starts from the same seed and sees the same batches, so the
curves differ only by the switch being compared.

Example::

    >>> pre, post = run_variants([Variant("pre-LN", {"placement": "pre"}),
    ...                           Variant("post-LN", {"placement": "post"})], steps=50)
    >>> pre.losses[-1], post.losses[-1]
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
    """One arm of an experiment: a mini-former config, an objective and training overrides."""

    name: str
    """The label its curve carries."""
    model: dict
    """MiniConfig fields (vocab_size and context are filled in)."""
    objective: str = "causal"
    """One of objectives.OBJECTIVES."""
    train: dict = field(default_factory=dict)
    """TrainConfig overrides (lr, warmup, grad_clip, accumulation, ...)."""
    balance: float = 0.01
    """Weight of the MoE balancing loss."""


@dataclass
class Curve:
    """One variant's training, filled in step by step so a lab can plot it live."""

    name: str
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    """Training loss at each step."""
    grad_norms: list[float] = field(default_factory=list)
    """Global gradient norm at each step, before clipping."""
    elapsed: list[float] = field(default_factory=list)
    """Seconds since this variant started, at each step."""
    val_loss: float | None = None
    seconds: float = 0.0
    parameters: int = 0
    active_parameters: int = 0
    """Parameters one token uses (differs from ``parameters`` only with experts)."""
    model: object = None
    """The trained MiniFormer."""

    @property
    def diverged(self) -> bool:
        """A non-finite loss, or a last loss above 20 nats (uniform over 2,048 tokens is ln 2048 ≈ 7.6)."""
        return any(not math.isfinite(x) for x in self.losses) or (bool(self.losses) and self.losses[-1] > 20)


EVAL_WINDOWS = 64
"""Validation windows per variant: 64 × 64 tokens, the same 4,096 held-out tokens for every variant and every run,
so two variants' losses differ by what the models learnt, not by what was measured."""


@cache
def lesson_data(limit_bytes: int = 1_500_000):
    """The plays encoded with the shipped 2,048-token tokenizer (the first limit_bytes of text).

    Cached, so every experiment in a session trains on the same TokenData.
    """
    from workbench_engines.models.data import encode_corpus
    from workbench_engines.models.small_gpt import shipped_tokenizer

    return encode_corpus(shipped_tokenizer(), limit_bytes=limit_bytes)


def run_variants(variants: list[Variant], *, steps: int = 150, batch_size: int = 16, seq_len: int = 64,
                 on_step: Callable[[Curve], None] | None = None, should_stop: Callable[[], bool] | None = None,
                 data=None, report_every: int = 5, seed: int = 0) -> list[Curve]:
    """Train each variant for ``steps`` steps and return its loss curve (and the trained model).

    Args:
        variants: The arms, trained one after another.
        steps: Optimizer steps per variant.
        batch_size: B.
        seq_len: T; also each model's context.
        on_step: Called with the variant's Curve every ``report_every`` steps and at the end.
        should_stop: Polled every step; stopping raises Cancelled.
        data: TokenData; None for ``lesson_data()``.
        report_every: Steps between on_step calls.
        seed: Seeds every variant's initialisation and batch order alike (a variant's own "seed" wins).

    Returns:
        One Curve per variant, in order.

    Raises:
        EngineError: no variants.
    """
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
        torch.manual_seed(variant.train.get("seed", seed))
        model = MiniFormer(config)
        curve = Curve(variant.name, parameters=model.parameter_count(),
                      active_parameters=model.parameter_count(active=True), model=model)
        curves.append(curve)
        train_config = TrainConfig(**{"steps": steps, "batch_size": batch_size, "seq_len": seq_len, "lr": 3e-3,
                                      "warmup": max(1, steps // 10), "eval_every": steps, "eval_windows": EVAL_WINDOWS,
                                      "seed": seed, "checkpoint_every": steps, **variant.train})
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
            curve.val_loss = evaluate(model, data, seq_len, EVAL_WINDOWS, loss_fn)
    return curves


def fit_power_law(sizes: list[float], losses: list[float]) -> tuple[float, float]:
    """(a, b) of loss ≈ a · N^(−b), fitted by least squares in log-log space (Kaplan et al., 2020, eq. 1.1
    without the irreducible term, which three points cannot pin down).

    Args:
        sizes: N per model (positive), e.g. non-embedding parameters.
        losses: The matching losses (positive).

    Returns:
        (a, b); a straight line of slope −b on log-log axes.

    Raises:
        EngineError: fewer than two points, mismatched lengths, or a value ≤ 0.
    """
    if len(sizes) < 2 or len(sizes) != len(losses) or min(sizes) <= 0 or min(losses) <= 0:
        raise EngineError("need at least two positive (size, loss) points")
    slope, intercept = np.polyfit(np.log(sizes), np.log(losses), 1)
    return float(np.exp(intercept)), float(-slope)


def expert_histogram(model, data, windows: int = 16, seq_len: int = 64) -> np.ndarray:
    """Tokens the routers send to each expert of each MoE layer over held-out windows: [layers, experts].

    Counted before capacity drops, so the histogram shows the routers' choice.

    Args:
        model: A MiniFormer with ffn="moe"; left in eval mode.
        data: Supplies the validation windows.
        windows: How many windows.
        seq_len: T.

    Returns:
        (n_layers, E) int64 counts.

    Raises:
        EngineError: the model has no MoE layers.
    """
    import torch

    from workbench_engines.moe.layer import MoELayer

    layers = [block.ffn for block in model.blocks if isinstance(block.ffn, MoELayer)]
    if not layers:
        raise EngineError("the model has no MoE layers")
    counts = np.zeros((len(layers), layers[0].n_experts), dtype=np.int64)
    batch = torch.from_numpy(data.val_windows(seq_len, windows)[:, :-1].astype(np.int64))  # (B, T)
    model.eval()
    with torch.no_grad():
        model(batch)
    for i, layer in enumerate(layers):
        counts[i] = layer.stats.routed.numpy()
    return counts


def sparse_dense_configs(d_model: int, hidden: int, context: int, n_layers: int, experts: int = 4) -> dict:
    """Three mini-formers for a sparse-against-dense comparison: dense with hidden H; ``experts`` experts
    of hidden H at top-1 (equal active parameters); dense with hidden experts·H (equal total parameters).

    The MoE's router adds a few parameters (C × E per layer), so "equal" is up to those.

    Returns:
        {label: MiniConfig}, in the order above.
    """
    from workbench_engines.models.miniformer import MiniConfig

    base = {"vocab_size": 2048, "context": context, "d_model": d_model, "n_layers": n_layers, "n_heads": 4}
    return {
        "dense (hidden H)": MiniConfig(**base, hidden=hidden, ffn="swiglu"),
        f"MoE {experts}×H, top-1": MiniConfig(**base, hidden=hidden, ffn="moe", n_experts=experts, top_k=1),
        f"dense (hidden {experts}H)": MiniConfig(**base, hidden=experts * hidden, ffn="swiglu"),
    }


def training_step(config, window) -> Callable[[], tuple[float, object]]:
    """A fresh mini-former (seed 0) and a function that takes one AdamW causal-LM step on ``window``
    and returns (loss, model): what the sparse-against-dense timings race.

    Args:
        config: A MiniConfig.
        window: (B, T+1) int64, the same batch every step.

    Returns:
        step() -> (loss, model).
    """
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
    only the experts a token uses.

    Kaplan et al. (2020) found that models of different depths fall on one
    loss-against-N trend only when embedding parameters are left out.
    """
    return model.parameter_count(active=active) - model.embed.weight.numel() - model.head.weight.numel()


PRESETS: dict[str, list[dict]] = {
    "residuals": [
        {"name": "pre-LN", "model": {"placement": "pre", "n_layers": 6}},
        {"name": "post-LN", "model": {"placement": "post", "n_layers": 6}},
        {"name": "no residuals", "model": {"placement": "pre", "residual": False, "n_layers": 6}},
    ],
    "depth": [
        {"name": "1 block", "model": {"n_layers": 1}},
        {"name": "2 blocks", "model": {"n_layers": 2}},
        {"name": "4 blocks", "model": {"n_layers": 4}},
    ],
    "objectives": [
        {"name": "causal LM", "model": {"n_layers": 2}, "objective": "causal"},
        {"name": "masked LM", "model": {"n_layers": 2}, "objective": "masked"},
        {"name": "prefix LM", "model": {"n_layers": 2}, "objective": "prefix"},
    ],
    "stability": [
        {"name": "lr 3e-3, warm-up, clip 1", "model": {"n_layers": 4}},
        {"name": "lr 1e-1, warm-up, clip 1", "model": {"n_layers": 4}, "train": {"lr": 1e-1}},
        {"name": "lr 1e-1, no warm-up, no clip", "model": {"n_layers": 4},
         "train": {"lr": 1e-1, "warmup": 0, "grad_clip": None}},
        {"name": "lr 3e-3, batch 4 × 4 accumulated", "model": {"n_layers": 4},
         "train": {"accumulation": 4, "batch_size": 4}},
        {"name": "lr 3e-3, bf16 autocast", "model": {"n_layers": 4}, "train": {"autocast": "bf16"}},
    ],
    "balance": [
        {"name": "MoE, no balancing loss", "model": {"ffn": "moe", "n_experts": 4, "top_k": 1}, "balance": 0.0},
        {"name": "MoE, balancing loss 0.05", "model": {"ffn": "moe", "n_experts": 4, "top_k": 1}, "balance": 0.05},
    ],
}
"""The comparisons the training lab offers: each a list of variants differing in one switch."""


def preset_variants(preset: str) -> list[Variant]:
    """The variants of a preset, on a 64-wide, 4-head mini-former unless the variant says otherwise."""
    if preset not in PRESETS:
        raise EngineError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return [Variant(v["name"], {"d_model": 64, "n_heads": 4, "hidden": 176, **v["model"]}, v.get("objective", "causal"),
                    v.get("train", {}), v.get("balance", 0.01)) for v in PRESETS[preset]]
