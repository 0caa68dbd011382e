"""Mixed-precision training of the small GPT: fp32, bf16 autocast, and fp16 with and without loss scaling.

Mixed precision (Micikevicius et al., 2018, "Mixed Precision Training", §3)
keeps the weights and the optimizer's moments in fp32 (the "master" copy) and
runs the forward and backward passes in a 16-bit format: here
``torch.autocast``, which casts each matmul's inputs to 16 bits and keeps the
norms, the softmax and the loss in fp32. The weight gradients come back as fp32
tensors, but they were computed from 16-bit activation gradients, so any value
too small for the format has already been rounded to zero.

fp16 has 5 exponent bits: its smallest subnormal is 2⁻²⁴ ≈ 6.0e-8, and
anything below half of it rounds to zero. The gradient of a logit is
(p − y)/N for a loss averaged over N tokens, so the larger the step (or the
more micro-batches accumulated, each loss divided by their number), the more
gradients fall under that floor. Loss scaling (§3.2) multiplies the loss by S before the backward pass, so every
gradient is S times larger and clears the floor, then divides the weight
gradients by S in fp32 before the step. Dynamic loss scaling picks S as the
largest that does not overflow fp16's maximum of 65,504: a step whose scaled
gradients hold an inf or a nan is skipped and S is halved; after
``growth_interval`` clean steps in a row S doubles. :class:`LossScaler` is that
rule written out, step for step the rule of ``torch.amp.GradScaler``.

bf16 keeps fp32's 8 exponent bits and drops mantissa bits instead: its range
is fp32's, so gradients neither overflow nor underflow, and it needs no scaling.

Counting what goes wrong, per step:

- **overflowed**: gradient entries that are inf or nan after the (scaled) backward pass;
- **zeroed**: gradient entries that are exactly zero after the low-precision
  backward pass although the fp32 backward pass of the same batch at the same
  weights gives a nonzero value. In fp16 almost all are underflow (a value, or
  an activation gradient it was computed from, fell below 2⁻²⁴); the bf16 row
  measures what rounding alone does (a sum that cancels to zero), since bf16
  cannot underflow at these magnitudes.

Example::

    >>> runs = compare_precisions(Settings(steps=60, loss_divisor=1024))
    >>> {run.precision: round(run.val_loss, 2) for run in runs}   # fp16 without scaling falls behind
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.models import small_gpt
from workbench_engines.progress import Progress, sub_progress

PRECISIONS = ("fp32", "bf16", "fp16", "fp16-scaled")
"""The four ways a run computes its forward and backward passes; weights and optimizer are fp32 in all four."""
LABELS = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16, no scaling", "fp16-scaled": "fp16, loss scaling"}
"""How a precision is named on screen."""


# ---- the formats ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format from its bit widths (IEEE 754-2008 §3.4; bfloat16 is fp32 cut to 16 bits).

    A normal number is (1 + m/2^M) · 2^(e − bias) with bias = 2^(E−1) − 1 and
    e from 1 to 2^E − 2 (all ones is inf and nan); e = 0 holds the subnormals
    (m/2^M) · 2^(1 − bias), which fill the gap between the smallest normal and zero.

    Example::

        >>> FORMATS["fp16"].smallest_subnormal   # 2**-24
        5.960464477539063e-08
    """

    name: str
    exponent_bits: int
    """E."""
    mantissa_bits: int
    """M: stored fraction bits (the leading 1 of a normal number is implicit)."""

    @property
    def bias(self) -> int:
        """2^(E−1) − 1: 15 for fp16, 127 for bf16 and fp32."""
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def largest(self) -> float:
        """(2 − 2^−M) · 2^bias: 65,504 for fp16, about 3.39e38 for bf16."""
        return (2 - 2.0 ** -self.mantissa_bits) * 2.0 ** self.bias

    @property
    def smallest_normal(self) -> float:
        """2^(1 − bias): 2⁻¹⁴ ≈ 6.10e-5 for fp16, 2⁻¹²⁶ ≈ 1.18e-38 for bf16 and fp32."""
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        """2^(1 − bias − M): 2⁻²⁴ ≈ 5.96e-8 for fp16, 2⁻¹³³ ≈ 9.18e-41 for bf16. Half of it rounds to zero."""
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def epsilon(self) -> float:
        """2^−M, the gap between 1 and the next number: 2⁻¹⁰ for fp16, 2⁻⁷ for bf16."""
        return 2.0 ** -self.mantissa_bits


FORMATS = {
    "fp32": FloatFormat("fp32", 8, 23),
    "fp16": FloatFormat("fp16", 5, 10),
    "bf16": FloatFormat("bf16", 8, 7),
}
"""The three formats of the lesson."""


# ---- dynamic loss scaling ------------------------------------------------------------------------------------

FP32_LARGEST = FORMATS["fp32"].largest


@dataclass
class LossScaler:
    """Dynamic loss scaling (Micikevicius et al., 2018, §3.2), with torch.amp.GradScaler's defaults and rule.

    Each step: multiply the loss by ``scale`` before backward; divide the
    gradients by it (:meth:`unscale`), which also says whether any is inf or
    nan; skip the optimizer step if so; then :meth:`update`:

    - an overflow: scale ← scale · backoff_factor, and the count of clean steps restarts;
    - otherwise the count grows, and when it reaches growth_interval:
      scale ← scale · growth_factor (unless that is past fp32's largest
      number, as GradScaler keeps its scale in fp32), and the count restarts.

    Example::

        >>> scaler = LossScaler(scale=8.0, growth_interval=2)
        >>> for overflow in (False, False, True, False):
        ...     scaler.update(overflow)
        >>> scaler.scale, scaler.clean_steps
        (8.0, 1)
    """

    scale: float = 2.0 ** 16
    """S, the factor the loss is multiplied by (GradScaler's init_scale: 65,536)."""
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    """Clean steps in a row before the scale grows."""
    clean_steps: int = 0
    """Steps without an overflow since the last change of scale (GradScaler's growth tracker)."""

    def __post_init__(self) -> None:
        if not 0 < self.scale <= FP32_LARGEST or self.growth_factor <= 1 or not 0 < self.backoff_factor < 1:
            raise EngineError("a loss scaler needs 0 < scale ≤ fp32's largest, growth_factor > 1 and "
                              f"0 < backoff_factor < 1, got {self.scale}, {self.growth_factor}, {self.backoff_factor}")
        if self.growth_interval < 1:
            raise EngineError(f"growth_interval must be positive, got {self.growth_interval}")

    def unscale(self, grads: Iterable) -> bool:
        """Divide every gradient by the scale in place (fp32); True when any entry is inf or nan.

        Args:
            grads: fp32 tensors, the scaled gradients (None entries are skipped).
        """
        import torch

        found = False
        inverse = 1.0 / self.scale
        for grad in grads:
            if grad is None:
                continue
            grad.mul_(inverse)
            found = found or not bool(torch.isfinite(grad).all())
        return found

    def update(self, overflowed: bool) -> None:
        """The scale for the next step, after a step that did (skipped) or did not overflow."""
        if overflowed:
            self.scale *= self.backoff_factor
            self.clean_steps = 0
            return
        self.clean_steps += 1
        if self.clean_steps == self.growth_interval:
            grown = self.scale * self.growth_factor
            if grown <= FP32_LARGEST:
                self.scale = grown
            self.clean_steps = 0


# ---- counting ------------------------------------------------------------------------------------------------

def count_overflowed(grads: Iterable) -> int:
    """Gradient entries that are inf or nan.

    Args:
        grads: Tensors (None entries are skipped).
    """
    import torch

    return sum(int((~torch.isfinite(grad)).sum()) for grad in grads if grad is not None)


def count_zeroed(grads: Iterable, reference: Iterable) -> tuple[int, int]:
    """Entries exactly zero in ``grads`` where ``reference`` is not, and how many reference entries are nonzero.

    Args:
        grads: The low-precision run's gradients (fp32 tensors holding values the 16-bit backward produced).
        reference: The fp32 backward's gradients of the same batch at the same weights, in the same order and shapes.

    Returns:
        (zeroed, nonzero): zeroed / nonzero is the share of gradient entries the low precision lost.
    """
    zeroed = nonzero = 0
    for grad, ref in zip(grads, reference, strict=True):
        alive = ref != 0
        nonzero += int(alive.sum())
        if grad is None:
            zeroed += int(alive.sum())
        else:
            zeroed += int((alive & (grad == 0)).sum())
    return zeroed, nonzero


# ---- training ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepCounts:
    """One optimizer step of a run, as :func:`train_precision` measured it."""

    step: int
    """1-based."""
    loss: float
    """The batch's (unscaled) training loss, from the low-precision forward pass."""
    scale: float
    """The loss scale this step's backward used (1 without scaling)."""
    overflowed: int
    """Gradient entries that were inf or nan after the backward pass."""
    skipped: bool
    """The step was not taken (loss scaling skips a step that overflowed)."""
    zeroed: int | None = None
    """Gradient entries zero here but nonzero in the fp32 backward (see the module docstring); None: not measured."""
    nonzero: int | None = None
    """Nonzero entries of the fp32 backward's gradients; None when not measured."""

    @property
    def zeroed_share(self) -> float | None:
        """zeroed / nonzero, or None when not measured."""
        if self.zeroed is None or not self.nonzero:
            return None
        return self.zeroed / self.nonzero


@dataclass
class PrecisionRun:
    """One precision's training run, filled in step by step."""

    precision: str
    """One of PRECISIONS."""
    steps: list[StepCounts] = field(default_factory=list)
    val_loss: float | None = None
    """fp32 validation loss of the trained (fp32 master) weights."""
    seconds: float = 0.0
    final_scale: float | None = None
    """The scaler's scale after the last step; None for runs without scaling."""

    @property
    def label(self) -> str:
        return LABELS[self.precision]

    @property
    def losses(self) -> list[float]:
        return [s.loss for s in self.steps]

    @property
    def skipped(self) -> int:
        """Steps not taken."""
        return sum(s.skipped for s in self.steps)

    @property
    def overflowed(self) -> int:
        """Gradient entries that overflowed, over the whole run."""
        return sum(s.overflowed for s in self.steps)

    @property
    def measured(self) -> list[StepCounts]:
        """The steps whose zeroed entries were measured."""
        return [s for s in self.steps if s.zeroed is not None]

    @property
    def zeroed_share(self) -> float | None:
        """Zeroed entries over nonzero fp32 entries, pooled over every measured step; None if none was measured."""
        measured = self.measured
        nonzero = sum(s.nonzero for s in measured)
        return sum(s.zeroed for s in measured) / nonzero if nonzero else None

    def tail_loss(self, last: int = 10) -> float:
        """The mean training loss of the last ``last`` steps: one batch's loss is noisy, ten agree better."""
        tail = self.losses[-last:]
        return sum(tail) / len(tail) if tail else math.nan


@dataclass(frozen=True)
class Settings:
    """Everything a comparison run is trained with besides its precision.

    Raises:
        EngineError: a count or k is not positive, reference_every or warmup is negative, or lr or init_scale is
            not positive.
    """

    steps: int = 60
    batch_size: int = 8
    seq_len: int = 32
    lr: float = 5e-3
    warmup: int = 6
    grad_clip: float | None = 1.0
    loss_divisor: int = 1
    """k: each step's loss is divided by k before the backward pass, as gradient accumulation over k micro-batches
    divides each one's (models.train: loss / accumulation). Each token's gradient is then the size it would have in a
    step of k · B · T tokens; only this one micro-batch is computed. After the backward pass (and the unscaling) the
    gradients are multiplied by k, as summing the k micro-batches would make them, so clipping and AdamW see a real
    step's gradient: fp32 trains the same at any power-of-two k, and fp16 keeps only what it did not round to zero."""
    init_scale: float = 2.0 ** 16
    """The loss scaler's first scale (GradScaler's default)."""
    growth_interval: int = 20
    """Clean steps before the scale doubles (GradScaler's default is 2,000, too many to see in a short run)."""
    reference_every: int = 1
    """Measure zeroed entries (an extra fp32 backward) every this many steps; 0 never."""
    eval_windows: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "loss_divisor", "growth_interval", "eval_windows"):
            if getattr(self, name) < 1:
                raise EngineError(f"{name} must be positive, got {getattr(self, name)}")
        if self.reference_every < 0 or self.warmup < 0 or not self.lr > 0 or not self.init_scale > 0:
            raise EngineError("reference_every and warmup must be ≥ 0, lr and init_scale > 0")


MODEL = {k: v for k, v in small_gpt.RECIPES["draft"].model.items() if k != "context"}
"""The shipped draft GPT's shape (small_gpt.RECIPES["draft"]); the context is the run's seq_len."""


def _autocast(precision: str):
    """The context the forward pass runs in: nothing for fp32, torch.autocast on the CPU for the others."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast("cpu", dtype=dtype, enabled=precision != "fp32")


def train_precision(model, data, precision: str, settings: Settings, *,
                    on_step: Callable[[PrecisionRun], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> PrecisionRun:
    """Train ``model`` (fp32 weights, trained in place) with its forward and backward passes in ``precision``.

    The loop of ``models.train.train`` (AdamW, warm-up and cosine, global-norm
    clipping, same batches for the same seed) with the mixed-precision parts
    added: the backward of loss · S, the unscale, the skipped step and the
    scale's update (fp16-scaled only), and the counts of :class:`StepCounts`.
    Clipping sees the unscaled gradients, as with GradScaler.unscale_.

    Args:
        model: A GPT in fp32.
        data: TokenData supplying train and validation windows.
        precision: One of PRECISIONS.
        settings: The run's settings.
        on_step: Called with the run so far after every step.
        should_stop: Polled before every step; True raises Cancelled.

    Returns:
        The run. A run whose loss turns nan or inf stops there (its last step records it).

    Raises:
        EngineError: an unknown precision.
        Cancelled: should_stop() returned True.
    """
    import numpy as np
    import torch

    from workbench_engines.models.train import TrainConfig, _optimizer, causal_lm_loss, evaluate
    from workbench_engines.optim.schedule import learning_rate

    if precision not in PRECISIONS:
        raise EngineError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    config = TrainConfig(steps=settings.steps, batch_size=settings.batch_size, seq_len=settings.seq_len,
                         lr=settings.lr, warmup=settings.warmup, grad_clip=settings.grad_clip, seed=settings.seed)
    scaler = (LossScaler(scale=settings.init_scale, growth_interval=settings.growth_interval)
              if precision == "fp16-scaled" else None)
    rng = np.random.default_rng(settings.seed)
    optimizer = _optimizer(model, config)
    params = list(model.parameters())
    run = PrecisionRun(precision)
    started = time.perf_counter()
    model.train()
    for step in range(settings.steps):
        if should_stop is not None and should_stop():
            raise Cancelled(f"{LABELS[precision]} stopped at step {step} of {settings.steps}")
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        window = torch.from_numpy(data.windows("train", rng, settings.batch_size, settings.seq_len).astype(np.int64))
        optimizer.zero_grad(set_to_none=True)
        scale = scaler.scale if scaler is not None else 1.0
        with _autocast(precision):
            loss = causal_lm_loss(model, window)  # 0-d fp32: the loss is computed in fp32 under autocast
        (loss * (scale / settings.loss_divisor)).backward()
        grads = [p.grad for p in params]
        overflowed = count_overflowed(grads)
        if scaler is not None:
            scaler.unscale(grads)
        zeroed = nonzero = None
        every = settings.reference_every
        if every and precision != "fp32" and (step % every == 0 or step == settings.steps - 1):
            reference = torch.autograd.grad(causal_lm_loss(model, window) / settings.loss_divisor, params)  # fp32
            zeroed, nonzero = count_zeroed(grads, reference)
        value = loss.item()
        skipped = overflowed > 0 and scaler is not None
        if not skipped:
            if settings.loss_divisor != 1:  # the k micro-batches' sum: k times this one's (see Settings.loss_divisor)
                for grad in grads:
                    if grad is not None:
                        grad.mul_(settings.loss_divisor)
            if settings.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            optimizer.step()
        if scaler is not None:
            scaler.update(overflowed > 0)
        run.steps.append(StepCounts(step + 1, value, scale, overflowed, skipped, zeroed, nonzero))
        if on_step is not None:
            on_step(run)
        if not math.isfinite(value):
            break
    run.final_scale = scaler.scale if scaler is not None else None
    run.val_loss = evaluate(model, data, settings.seq_len, settings.eval_windows)
    run.seconds = time.perf_counter() - started
    model.eval()
    return run


def compare_precisions(settings: Settings | None = None, precisions: Iterable[str] = PRECISIONS, *, data=None,
                       model: dict | None = None, progress: Progress | None = None,
                       on_step: Callable[[list[PrecisionRun]], None] | None = None) -> list[PrecisionRun]:
    """Train the same GPT from the same initial weights on the same batches once per precision, one after another.

    One torch thread, so the figures are the same on every run (the lab and its tests read the same numbers).

    Args:
        settings: The runs' settings; None for the defaults.
        precisions: Which of PRECISIONS to run, in order.
        data: TokenData; None for the plays (``experiments.lesson_data()``).
        model: GPTConfig fields (the context is set to seq_len); None for MODEL.
        progress: progress(fraction, what) after every step; an exception it raises stops the runs.
        on_step: Called after every step with the runs so far, the one in progress last (to draw curves live).

    Returns:
        One PrecisionRun per precision, in order.

    Raises:
        EngineError: an unknown precision, or none.
    """
    import torch

    from workbench_engines.models.experiments import lesson_data
    from workbench_engines.models.gpt import GPT, GPTConfig

    settings = settings or Settings()
    precisions = list(precisions)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise EngineError(f"precisions must be some of {', '.join(PRECISIONS)}, got {precisions}")
    data = data if data is not None else lesson_data()
    shape = {**(model or MODEL), "context": settings.seq_len}
    runs = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i, precision in enumerate(precisions):
            report = sub_progress(progress, i / len(precisions), (i + 1) / len(precisions))

            def stepped(run: PrecisionRun, report=report) -> None:
                if report is not None:
                    report(len(run.steps) / settings.steps, f"{run.label}: step {len(run.steps)} of {settings.steps}")
                if on_step is not None:
                    on_step([*runs, run])

            torch.manual_seed(settings.seed)
            runs.append(train_precision(GPT(GPTConfig(**shape)), data, precision, settings, on_step=stepped))
    finally:
        torch.set_num_threads(threads)
    return runs
