"""The same training run twice, on torch's parts and on the hand-written ones: do they agree step for step?

Both runs build the same small GPT from the same seed, draw the same batches
in the same order and follow the same schedule; only ``TrainConfig.parts``
differs, so the loss curves differ by nothing but the parts' rounding. The
runs use one torch thread, so the figures are the same on every run of the lab.

Example::

    >>> result = compare_parts(steps=40)
    >>> result.largest_difference   # nats, at result.worst_step
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workbench_engines.errors import EngineError
from workbench_engines.progress import Progress, sub_progress

MODEL = {"vocab_size": 2048, "context": 128, "d_model": 64, "n_layers": 2, "n_heads": 2}
"""The shipped draft GPT's shape (small_gpt.RECIPES["draft"]) with a context of 128: 237,888 weights."""
BATCH_SIZE = 8
SEQ_LEN = 128
EVAL_WINDOWS = 16
"""Validation windows of SEQ_LEN + 1 tokens scored once, at the last step: 2,048 predictions."""


@dataclass
class PartsRun:
    """One run's curves, filled in step by step."""

    parts: str
    """"torch" or "hand"."""
    losses: list[float] = field(default_factory=list)
    """Training loss at each step."""
    grad_norms: list[float] = field(default_factory=list)
    """Global gradient norm at each step, before clipping."""
    rates: list[float] = field(default_factory=list)
    """Learning rate at each step."""
    val_loss: float | None = None


@dataclass(frozen=True)
class PartsComparison:
    """Both runs, and how far apart their losses came."""

    torch: PartsRun
    hand: PartsRun

    @property
    def differences(self) -> list[float]:
        """|loss on hand parts − loss on torch's| at each step."""
        return [abs(a - b) for a, b in zip(self.hand.losses, self.torch.losses)]

    @property
    def largest_difference(self) -> float:
        """The largest of ``differences``, in nats: nan if a run's loss was nan, 0.0 when no step was run."""
        step = self.worst_step
        return self.differences[step - 1] if step else 0.0

    @property
    def worst_step(self) -> int:
        """The 1-based step of the largest difference (the first, on a tie); 0 when no step was run.

        A nan difference (a run that diverged) counts as larger than any number, so it is found, not skipped:
        nan compares false with everything, and list.index(nan) never finds a nan.
        """
        ranks = [(math.isnan(d), 0.0 if math.isnan(d) else d) for d in self.differences]  # nan above every number
        if not ranks:
            return 0
        return 1 + max(range(len(ranks)), key=ranks.__getitem__)  # max keeps the first of equals


def compare_parts(*, steps: int = 40, lr: float = 5e-3, grad_clip: float | None = 1.0, warmup: int | None = None,
                  seed: int = 0, data=None, progress: Progress | None = None) -> PartsComparison:
    """Train the draft-shaped GPT on the plays twice, on torch's parts and then on the hand-written ones.

    Args:
        steps: Optimizer steps per run.
        lr: Peak learning rate.
        grad_clip: Global-norm clipping threshold; None trains without clipping.
        warmup: Warm-up steps; None for a tenth of the run.
        seed: Seeds both runs' initialisation and batches alike.
        data: TokenData; None for the plays (``experiments.lesson_data()``).
        progress: progress(fraction, what) after every step; it may raise to stop the runs.

    Returns:
        The two runs.

    Raises:
        EngineError: steps < 1 or another setting out of range (from TrainConfig); or a run's loss or gradient
            norm became nan or inf (from ``train``, which names the step).
    """
    import torch

    from workbench_engines.models.experiments import lesson_data
    from workbench_engines.models.gpt import GPT, GPTConfig
    from workbench_engines.models.train import StepReport, TrainConfig, train

    if steps < 1:
        raise EngineError(f"steps must be positive, got {steps}")
    data = data if data is not None else lesson_data()
    runs = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i, parts in enumerate(("torch", "hand")):
            run = PartsRun(parts)
            report_to = sub_progress(progress, i / 2, (i + 1) / 2)
            config = TrainConfig(steps=steps, batch_size=BATCH_SIZE, seq_len=SEQ_LEN, lr=lr, grad_clip=grad_clip,
                                 warmup=max(1, steps // 10) if warmup is None else warmup, eval_every=steps,
                                 eval_windows=EVAL_WINDOWS, checkpoint_every=steps, seed=seed, parts=parts)

            def on_step(report: StepReport, run: PartsRun = run, report_to=report_to) -> None:
                """Record the step's loss, gradient norm and rate in ``run``, and report the run's progress."""
                run.losses.append(report.loss)
                run.grad_norms.append(report.grad_norm)
                run.rates.append(report.lr)
                if report.val_loss is not None:
                    run.val_loss = report.val_loss
                if report_to is not None:
                    report_to(report.step / report.total, f"{run.parts}'s parts: step {report.step} of {steps}")

            torch.manual_seed(seed)
            model = GPT(GPTConfig(**MODEL))
            train(model, data, config, on_step=on_step)
            runs.append(run)
    finally:
        torch.set_num_threads(threads)
    return PartsComparison(*runs)
