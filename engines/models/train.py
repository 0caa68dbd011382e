"""The training loop: AdamW, warm-up then cosine decay, gradient clipping and accumulation, checkpoints.

One loop for every model the lessons train. A checkpoint holds the weights,
the optimizer's moments, the step and both random generators, so a run that
is stopped and resumed takes exactly the steps an unbroken run would have.

The pieces and where they come from: AdamW, Adam with decoupled weight decay
(Loshchilov & Hutter, 2019); linear warm-up (Goyal et al., 2017); cosine decay
(Loshchilov & Hutter, 2017, without restarts); clipping the global gradient
norm (Pascanu et al., 2013); bf16 autocast, mixed precision (Micikevicius et
al., 2018; bf16 needs no loss scaling). Shapes: B batch, T time (seq_len), V vocab.

``TrainConfig.parts`` picks whose cross-entropy, AdamW and clipping the loop
runs: torch's, or the hand-written ones in ``workbench_engines.optim``, which
agree with torch's step for step to float32 rounding.

Example::

    >>> model = GPT(GPTConfig(vocab_size=2048))
    >>> result = train(model, encode_corpus(tokenizer), TrainConfig(steps=200), on_step=print)
    >>> result.final_val_loss   # cross-entropy in nats per token
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.models.data import TokenData
from workbench_engines.optim.schedule import learning_rate

PARTS = ("torch", "hand")
"""Whose training parts the loop runs: torch's, or those written out in workbench_engines.optim."""


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; a checkpoint only resumes under an identical one.

    Raises:
        EngineError: a count is not positive, or lr, min_lr_ratio, warmup,
            grad_clip, autocast or parts is out of range.
    """

    steps: int = 1000
    """Optimizer steps in the whole run."""
    batch_size: int = 16
    """B: windows per micro-batch."""
    seq_len: int = 256
    """T: input tokens per window (each window holds T + 1)."""
    accumulation: int = 1
    """Micro-batches whose gradients are summed before each optimizer step."""
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    """The cosine ends at lr · min_lr_ratio."""
    warmup: int = 100
    """Steps of linear warm-up, while Adam's moment estimates are still noisy (Liu et al., 2020)."""
    weight_decay: float = 0.1
    """AdamW's decoupled decay, applied to matrices only (see ``_optimizer``)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """Adam's moment decay rates; β₂ = 0.95 as GPT-3 used (Brown et al., 2020)."""
    grad_clip: float | None = 1.0
    """Largest global gradient norm before the step; None leaves gradients alone."""
    autocast: str | None = None
    """"bf16" runs the forward pass under torch.autocast (mixed precision; weights and optimizer stay fp32)."""
    eval_every: int = 100
    """Steps between validation losses (and always at the last step)."""
    eval_windows: int = 32
    """Validation windows per evaluation (the same ones each time)."""
    checkpoint_every: int = 100
    seed: int = 0
    """Seeds torch and the batch sampler: same seed, same run."""
    parts: str = "torch"
    """"torch": F.cross_entropy, torch.optim.AdamW and clip_grad_norm_; "hand": the same three written out in
    workbench_engines.optim. The cross-entropy is swapped only in the loop's own loss (causal_lm_loss); a
    loss_fn passed to ``train`` keeps its own. Under either parts a nan or inf loss or gradient norm stops the run
    with EngineError before the step is taken (the hand clipping raises its own; torch's clip_grad_norm_ does not,
    so the loop checks the norm it returns)."""

    def __post_init__(self) -> None:
        """Check every setting's range, so a bad config fails here rather than steps into a run."""
        counts = ("steps", "batch_size", "seq_len", "accumulation", "eval_every", "eval_windows", "checkpoint_every")
        for name in counts:
            if getattr(self, name) < 1:
                raise EngineError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup < 0:
            raise EngineError("lr must be > 0, min_lr_ratio in [0, 1] and warmup >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise EngineError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.autocast not in (None, "bf16"):
            raise EngineError(f"autocast must be None or 'bf16', got {self.autocast!r}")
        if self.parts not in PARTS:
            raise EngineError(f"parts must be one of {', '.join(PARTS)}, got {self.parts!r}")


@dataclass
class StepReport:
    """What ``train`` passes to ``on_step`` after each optimizer step."""

    step: int
    """Optimizer steps done (1-based)."""
    total: int
    """config.steps."""
    loss: float
    """Training loss, averaged over the step's micro-batches."""
    lr: float
    grad_norm: float
    """Global gradient norm before clipping."""
    tokens_per_s: float
    val_loss: float | None = None
    """Set on evaluation steps."""


@dataclass
class TrainResult:
    """The losses of a finished run (all of them, resumed steps included), its time and tokens."""

    steps: int
    train_losses: list[float]
    val_losses: list[tuple[int, float]]
    """(step, validation loss) at every evaluation."""
    seconds: float
    """Wall time of this call (not of earlier, resumed runs)."""
    tokens: int
    """Tokens trained on in this call."""
    resumed_from: int = 0
    """The checkpoint's step, or 0 for a fresh start."""
    stopped: bool = False

    @property
    def final_val_loss(self) -> float | None:
        """The last validation loss, or None before any evaluation."""
        return self.val_losses[-1][1] if self.val_losses else None


@dataclass
class _State:
    """What a checkpoint carries besides the weights, optimizer and random generators."""

    step: int = 0
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)


def causal_lm_loss(model: torch.nn.Module, window: torch.Tensor, parts: str = "torch") -> torch.Tensor:
    """Mean cross-entropy of predicting token t+1 from tokens ≤ t.

    Args:
        model: Maps ids (B, T) to logits (B, T, V), as gpt.GPT does.
        window: (B, T+1) int64; inputs are window[:, :-1], targets window[:, 1:].
        parts: "torch" for F.cross_entropy, "hand" for workbench_engines.optim.loss.cross_entropy.

    Returns:
        A 0-d float32 loss (computed in float32 even under autocast).
    """
    logits = model(window[:, :-1])  # (B, T, V)
    flat, targets = logits.reshape(-1, logits.shape[-1]).float(), window[:, 1:].reshape(-1)  # (B·T, V), (B·T,)
    if parts == "hand":
        from workbench_engines.optim.loss import cross_entropy

        return cross_entropy(flat, targets)
    return F.cross_entropy(flat, targets)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: TokenData, seq_len: int, windows: int,
             loss_fn: Callable = causal_lm_loss) -> float:
    """Mean loss over the same validation windows every time.

    Args:
        model: The model; put in eval mode for the pass and restored after.
        data: Supplies the validation split.
        seq_len: T.
        windows: How many windows (fewer if the split is short).
        loss_fn: loss_fn(model, window (B, T+1)) -> 0-d loss.

    Returns:
        The window-weighted mean loss.
    """
    was_training = model.training
    model.eval()
    batches = torch.from_numpy(data.val_windows(seq_len, windows).astype(np.int64)).split(16)  # (≤16, T+1) each
    losses = [loss_fn(model, batch).item() for batch in batches]
    sizes = [len(batch) for batch in batches]
    model.train(was_training)
    return float(np.average(losses, weights=sizes))


def _optimizer(model: torch.nn.Module, config: TrainConfig):
    """AdamW (Loshchilov & Hutter, 2019) over two parameter groups, with and without weight decay: torch's, or
    workbench_engines.optim.adamw.AdamW for parts="hand" (the same state-dict layout, so checkpoints cross over)."""
    # Decay matrices only; norms' gains (1-D) are left alone, as in GPT-2 and Llama.
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}]
    if config.parts == "hand":
        from workbench_engines.optim.adamw import AdamW

        return AdamW(groups, lr=config.lr, betas=config.betas)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def _clip(model: torch.nn.Module, config: TrainConfig) -> float:
    """Clip the gradients' global norm to config.grad_clip (when set) and return the norm before clipping."""
    if config.parts == "hand":
        from workbench_engines.optim.clip import clip_grad_norm, global_norm

        if config.grad_clip is None:
            return global_norm(p.grad for p in model.parameters() if p.grad is not None)
        return clip_grad_norm(model.parameters(), config.grad_clip)
    if config.grad_clip is not None:
        return float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()
                                                       if p.grad is not None])))


def _comparable(config: dict) -> dict:
    """A saved or current TrainConfig as a dict, without ``parts``: either parts resume the other's checkpoint
    (the same optimizer state layout, the same arithmetic), and checkpoints from before the switch still resume."""
    return {key: value for key, value in config.items() if key != "parts"}


def save_checkpoint(path: Path, model, optimizer, rng: np.random.Generator, state: _State, config: TrainConfig,
                    model_config: dict) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint whole.

    Args:
        path: The checkpoint file; written as path.tmp, then renamed over it.
        model: Its state_dict is saved.
        optimizer: Its state_dict (Adam's moments) is saved.
        rng: The batch sampler's generator, whose state is saved.
        state: Step and losses so far.
        config: Saved, so a resume under other settings is refused.
        model_config: Saved likewise.
    """
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": state.step,
        "train_losses": state.train_losses,
        "val_losses": state.val_losses,
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "train_config": asdict(config),
        "model_config": model_config,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    """The payload ``save_checkpoint`` wrote.

    Raises:
        FileNotFoundError: no file at path.
        EngineError: the file is not a readable checkpoint.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise EngineError(f"{path}: not a readable checkpoint ({exc})") from exc


def _stop_if_not_finite(what: str, value: float, step: int) -> None:
    """Raise EngineError naming the step when ``value`` (a loss or a gradient norm) is nan or inf.

    Raises:
        EngineError: value is not finite.
    """
    if not math.isfinite(value):
        raise EngineError(f"training diverged at step {step}: the {what} is {value}. The run stopped before taking "
                          "that step or saving it; a lower learning rate usually helps")


def train(
    model: torch.nn.Module,
    data: TokenData,
    config: TrainConfig,
    *,
    model_config: dict | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    on_step: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    loss_fn: Callable = causal_lm_loss,
    eval_loss_fn: Callable | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` for config.steps optimizer steps.

    With ``resume`` and an existing ``checkpoint``, training continues from it
    (the model and training configs must match). ``should_stop()`` is polled
    every step; stopping saves a checkpoint (when a path was given) and raises
    Cancelled.

    Args:
        model: Trained in place; left in eval mode.
        data: Train and validation tokens.
        config: The run's settings.
        model_config: The model's config as a dict, stored in (and checked against) the checkpoint.
        checkpoint: Where to save every ``checkpoint_every`` steps; None saves nothing.
        resume: Continue from ``checkpoint`` if it exists.
        on_step: Called with a StepReport after every optimizer step.
        should_stop: Polled before every step.
        loss_fn: loss_fn(model, window (B, T+1) int64) -> 0-d loss.
        eval_loss_fn: The validation loss, when it must differ from the training one (a distilled student is
            trained on a teacher's distributions and validated on the data's tokens); None uses loss_fn.

    Returns:
        The TrainResult of the whole run.

    Raises:
        EngineError: the checkpoint was saved for another model or other settings; or a micro-batch's loss or the
            gradients' global norm is nan or inf, under either parts (the message names the step; the step is not
            taken and no checkpoint is written for it, so the last one saved stays whole).
        Cancelled: should_stop() returned True.
    """
    model_config = model_config or {}
    if loss_fn is causal_lm_loss:
        loss_fn = partial(causal_lm_loss, parts=config.parts)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    optimizer = _optimizer(model, config)
    state = _State()
    if resume and checkpoint is not None and checkpoint.exists():
        saved = load_checkpoint(checkpoint)
        if saved["model_config"] != model_config:
            raise EngineError(f"{checkpoint}: saved for model {saved['model_config']}, not {model_config}")
        if _comparable(saved["train_config"]) != _comparable(asdict(config)):
            raise EngineError(f"{checkpoint}: saved with training settings {saved['train_config']}, not these")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"])
        state = _State(saved["step"], list(saved["train_losses"]), [tuple(v) for v in saved["val_losses"]])
    resumed_from = state.step
    device = next(model.parameters()).device.type
    model.train()
    started = time.perf_counter()
    tokens = 0

    def save() -> None:
        """Write the checkpoint, when a path was given (atomically: see ``save_checkpoint``)."""
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, rng, state, config, model_config)

    while state.step < config.steps:
        if should_stop is not None and should_stop():
            save()
            raise Cancelled(f"training stopped at step {state.step} of {config.steps}")
        step_started = time.perf_counter()
        lr = learning_rate(state.step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for _ in range(config.accumulation):
            # (B, T+1) int64
            window = torch.from_numpy(data.windows("train", rng, config.batch_size, config.seq_len).astype(np.int64))
            with torch.autocast(device, dtype=torch.bfloat16, enabled=config.autocast == "bf16"):
                loss = loss_fn(model, window)
            value = loss.item()
            _stop_if_not_finite("loss", value, state.step + 1)  # before backward, the step and any checkpoint
            (loss / config.accumulation).backward()  # the summed gradients are then a mean
            loss_sum += value
        grad_norm = _clip(model, config)
        _stop_if_not_finite("gradients' global norm", grad_norm, state.step + 1)
        optimizer.step()
        state.step += 1
        step_tokens = config.batch_size * config.seq_len * config.accumulation
        tokens += step_tokens
        state.train_losses.append(loss_sum / config.accumulation)
        report = StepReport(state.step, config.steps, state.train_losses[-1], lr, grad_norm,
                            step_tokens / (time.perf_counter() - step_started))
        if state.step % config.eval_every == 0 or state.step == config.steps:
            report.val_loss = evaluate(model, data, config.seq_len, config.eval_windows, eval_loss_fn or loss_fn)
            state.val_losses.append((state.step, report.val_loss))
        if state.step % config.checkpoint_every == 0 or state.step == config.steps:
            save()
        if on_step is not None:
            on_step(report)
    model.eval()
    return TrainResult(state.step, state.train_losses, state.val_losses, time.perf_counter() - started, tokens,
                       resumed_from)
