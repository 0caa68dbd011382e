"""Adapt the shipped small GPT to one genre of plays: LoRA at each rank of a sweep against full fine-tuning.

The experiment behind Hu et al. (2021, Table 6): how small can r be? There,
on GPT-3, rank 1 on W_q and W_v already came close to rank 64. Here the
model is the shipped ``target`` (``models.small_gpt``, trained on all the
plays) and the task is one genre folder of the corpus. Whole plays of that
genre are held out; the validation text is the final 5% of each of them, the
part the target's own training also held out (``models.data.held_out_start``),
so neither pretraining nor adaptation has seen a token of it. Every regime
starts from the same weights and sees the same batches (one seed), so the
regimes' losses differ by what they can learn, not by luck of the draw.

Example::

    >>> result = run_sweep(SweepConfig(steps=30))
    >>> [(r.name, round(r.val_after, 3)) for r in result.regimes]
    [('r=1', ...), ..., ('full', ...)]
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

from workbench_engines import corpus
from workbench_engines.errors import EngineError
from workbench_engines.finetune.lora import apply_lora, lora_layers, trainable_parameters
from workbench_engines.models.data import END_OF_TEXT, held_out_start
from workbench_engines.models.train import causal_lm_loss
from workbench_engines.optim.adamw import optimizer_state_bytes
from workbench_engines.progress import Progress, sub_progress

HELD_OUT = {
    "comedies": ("twelfth-night", "much-ado-about-nothing"),
    "tragedies": ("othello", "macbeth"),
    "histories": ("henry-v", "richard-iii"),
}
"""The plays of each genre kept out of adaptation; the final 5% of each is the validation text."""

ALL_LINEAR = ("attn.q", "attn.kv", "attn.out", "ffn.gate", "ffn.up", "ffn.down")
"""Every linear layer of a block of the small GPT."""

RANKS = (1, 2, 4, 8, 16, 64)
"""Hu et al. (2021), Table 6's ranks (they add 64 to 1, 2, 4, 8)."""

WATCHED_LAYER = "blocks.0.attn.q"
"""The matrix whose ΔW's singular values each regime reports."""


@dataclass(frozen=True)
class SweepConfig:
    """Every setting of a sweep; the defaults are the lab's.

    Raises:
        EngineError: an unknown genre, an empty or invalid rank list, or a count or rate out of range.
    """

    genre: str = "histories"
    ranks: tuple[int, ...] = RANKS
    full: bool = True
    """Also fine-tune every parameter, the baseline LoRA is measured against."""
    targets: tuple[str, ...] = ALL_LINEAR
    steps: int = 30
    batch_size: int = 8
    seq_len: int = 128
    lora_lr: float = 1e-3
    full_lr: float = 5e-5
    """Full fine-tuning moves every weight of a trained model: a twentieth of LoRA's rate keeps it from forgetting."""
    alpha: float = 8.0
    """α, fixed across ranks as in Hu et al. (2021, section 4.1), so the update is scaled by α/r."""
    seed: int = 0
    eval_windows: int = 64

    def __post_init__(self) -> None:
        if self.genre not in HELD_OUT:
            raise EngineError(f"unknown genre {self.genre!r}; choose one of {', '.join(HELD_OUT)}")
        if not self.ranks and not self.full:
            raise EngineError("nothing to run: give at least one rank or full=True")
        if any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in self.ranks):
            raise EngineError(f"ranks must be positive integers, got {self.ranks}")
        for name in ("steps", "batch_size", "seq_len", "eval_windows"):
            if getattr(self, name) < 1:
                raise EngineError(f"SweepConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("lora_lr", "full_lr", "alpha"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise EngineError(f"SweepConfig.{name} must be a positive number, got {value}")


@dataclass(frozen=True)
class GenreData:
    """One genre's tokens: training plays whole, and the final 5% of each held-out play."""

    genre: str
    train: np.ndarray
    """int32, the training plays joined by <|endoftext|>."""
    val: np.ndarray
    """int32, the held-out plays' tails joined likewise."""
    train_plays: tuple[str, ...]
    held_out: tuple[str, ...]


@dataclass
class RegimeResult:
    """One regime's run: what it trained, what it cost, what it reached."""

    name: str
    """"r=4" or "full"."""
    rank: int | None
    """None for full fine-tuning."""
    trainable: int
    optimizer_bytes: int
    """The live AdamW's state after training: two fp32 moments per trainable weight and a 4-byte step counter per
    tensor (``optim.adamw.optimizer_state_bytes``)."""
    val_before: float
    val_after: float
    seconds: float
    """Wall-clock of the training steps (evaluation excluded)."""
    train_losses: list[float] = field(default_factory=list)
    delta_singular_values: list[float] = field(default_factory=list)
    """Singular values of ΔW of WATCHED_LAYER after training, largest first (at most r non-zero for LoRA; all zero
    when the targets leave that layer out)."""


@dataclass
class SweepResult:
    """A whole sweep: its settings, the genre's tokens, and every regime's result in the order run."""

    config: SweepConfig
    data: GenreData
    regimes: list[RegimeResult]

    def regime(self, name: str) -> RegimeResult:
        """The result named name ("r=4", "full").

        Raises:
            EngineError: no such regime in this sweep.
        """
        for result in self.regimes:
            if result.name == name:
                return result
        raise EngineError(f"no regime {name!r}; this sweep ran {', '.join(r.name for r in self.regimes)}")


@cache
def genre_data(genre: str) -> GenreData:
    """Encode one genre's plays with the shipped tokenizer (once per process).

    Raises:
        EngineError: an unknown genre, or a held-out play missing from the corpus.
    """
    from workbench_engines.models.small_gpt import shipped_tokenizer

    if genre not in HELD_OUT:
        raise EngineError(f"unknown genre {genre!r}; choose one of {', '.join(HELD_OUT)}")
    files = [f for f in corpus.default_corpus_files() if f.parent.name == genre]
    missing = set(HELD_OUT[genre]) - {f.stem for f in files}
    if missing:
        raise EngineError(f"the corpus has no {', '.join(sorted(missing))} under {genre}/")
    tokenizer = shipped_tokenizer()
    eot = tokenizer.special_tokens[END_OF_TEXT]
    train: list[int] = []
    val: list[int] = []
    train_plays = []
    for file in files:
        ids = tokenizer.encode_ordinary(corpus.read_text(file))
        if file.stem in HELD_OUT[genre]:
            val.extend(ids[held_out_start(len(ids)) :] + [eot])
        else:
            train.extend(ids + [eot])
            train_plays.append(file.stem)
    return GenreData(genre, np.asarray(train, np.int32), np.asarray(val, np.int32), tuple(train_plays),
                     HELD_OUT[genre])


@torch.no_grad()
def validation_loss(model: torch.nn.Module, data: GenreData, seq_len: int, windows: int) -> float:
    """Mean loss over the same consecutive windows of the held-out text every time (token-weighted).

    Raises:
        EngineError: the held-out text is shorter than one window.
    """
    n = min(windows, (len(data.val) - 1) // seq_len)
    if n < 1:
        raise EngineError(f"the held-out text has {len(data.val)} tokens, fewer than one window of {seq_len + 1}")
    batch = torch.from_numpy(np.stack([data.val[i * seq_len : i * seq_len + seq_len + 1] for i in range(n)])
                             .astype(np.int64))  # (n, T+1)
    was_training = model.training
    model.eval()
    losses = [causal_lm_loss(model, chunk).item() * len(chunk) for chunk in batch.split(16)]
    model.train(was_training)
    return sum(losses) / n


def train_regime(base: torch.nn.Module, data: GenreData, config: SweepConfig, rank: int | None,
                 val_before: float, progress: Progress | None = None) -> RegimeResult:
    """Copy base, adapt it (LoRA at rank, or every weight when rank is None) and measure it.

    Args:
        base: The pretrained model; left unchanged.
        data: The genre's tokens.
        config: Steps, batch, rates, targets, seed.
        rank: LoRA's r, or None for full fine-tuning.
        val_before: The base model's validation loss (the same for every regime).
        progress: Told (fraction, what) after each step; an exception it raises stops the run.

    Returns:
        The regime's figures.

    Raises:
        EngineError: the loss became NaN or infinite; a rank too large for a target layer.
    """
    model = copy.deepcopy(base)
    before = model.get_submodule(WATCHED_LAYER).weight.detach().clone()
    if rank is None:
        name, lr = "full", config.full_lr
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        name, lr = f"r={rank}", config.lora_lr
        apply_lora(model, config.targets, r=rank, alpha=config.alpha, seed=config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)  # the same batches for every regime
    if len(data.train) < config.seq_len + 1:
        raise EngineError(f"the training plays hold {len(data.train)} tokens, fewer than one window")
    model.train()
    losses: list[float] = []
    seconds = 0.0
    for step in range(1, config.steps + 1):
        starts = rng.integers(0, len(data.train) - config.seq_len, size=config.batch_size)  # (B,)
        windows = torch.from_numpy(np.stack([data.train[s : s + config.seq_len + 1] for s in starts])
                                   .astype(np.int64))  # (B, T+1)
        t0 = time.perf_counter()
        loss = causal_lm_loss(model, windows)
        if not torch.isfinite(loss):
            raise EngineError(f"{name}: the loss became {loss.item()} at step {step}; lower the learning rate "
                              f"({lr:g}) or alpha ({config.alpha:g})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        seconds += time.perf_counter() - t0
        losses.append(loss.item())
        if progress is not None:
            progress(step / config.steps, f"{name}: step {step}/{config.steps}, loss {losses[-1]:.3f}")
    adapters = lora_layers(model)
    if rank is None:
        delta = model.get_submodule(WATCHED_LAYER).weight.detach() - before
    elif WATCHED_LAYER in adapters:
        delta = adapters[WATCHED_LAYER].delta_weight()
    else:
        delta = torch.zeros_like(before)  # not a target: this layer did not change
    singular = torch.linalg.svdvals(delta.double()).tolist()
    return RegimeResult(name, rank, trainable_parameters(model), optimizer_state_bytes(optimizer), val_before,
                        validation_loss(model, data, config.seq_len, config.eval_windows), seconds, losses,
                        singular)


def run_sweep(config: SweepConfig = SweepConfig(), progress: Progress | None = None,
              threads: int | None = None) -> SweepResult:
    """Every rank of config.ranks, then full fine-tuning, each from the shipped target's weights.

    Args:
        config: The sweep.
        progress: Told (fraction of the whole sweep, what) after each step; an exception it raises stops the sweep.
        threads: torch's intra-op threads for the sweep (restored after); None leaves torch's setting. One thread
            makes a sweep repeat its figures on the same machine; another CPU may still pick other kernels.

    Returns:
        The regimes in the order run (ranks ascending as given, full last).

    Raises:
        EngineError: see ``train_regime`` and ``genre_data``; a rank larger than a target layer allows.
    """
    from workbench_engines.models.small_gpt import load

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if progress is not None:
            progress(0.0, f"encoding the {config.genre} and loading the small GPT")
        data = genre_data(config.genre)
        base = load("target").model
        val_before = validation_loss(base, data, config.seq_len, config.eval_windows)
        plan: list[int | None] = [*config.ranks, *([None] if config.full else [])]
        regimes = []
        for i, rank in enumerate(plan):
            part = sub_progress(progress, i / len(plan), (i + 1) / len(plan))
            regimes.append(train_regime(base, data, config, rank, val_before, part))
        return SweepResult(config, data, regimes)
    finally:
        torch.set_num_threads(previous)
