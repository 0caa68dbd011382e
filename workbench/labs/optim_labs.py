"""The lab of the optimiser-by-hand lesson: one small GPT trained twice, on torch's parts and on ours."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.knobs import cycled, paired_keys, shown_as_one, stepped
from workbench.widgets.plots import Figure, Series
from workbench.widgets.profile_panel import ProfilePanel

LEARNING_RATES = [1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2]
"""The peak rates l/L step through."""
STEPS = [20, 40, 60, 100, 200]
"""The run lengths s/S step through."""
CLIPS = [1.0, 0.25, 0.0]
"""The clipping thresholds c cycles through; 0 trains without clipping."""
AGREEMENT_ULPS = 64
"""How many float32 spacings (ulps) of the loss the runs may differ by and still count as agreeing.

Each step's loss is a mean over B·T = 8·128 = 1,024 positions, and the two parts sum them (and each position's
2,048 exponentials) in different orders. Rounding errors that fall either way add up like a random walk, to the
order of √1,024 = 32 ulps; 64 allows twice that, for differences carried over from earlier steps. The default run
(40 steps, lr 5e-3, clip 1) peaks at 3 ulps; 60 steps at lr 5e-2 without clipping part by about 80,000."""


@dataclass(frozen=True)
class Settings:
    """What the next run trains with."""

    steps: int
    lr: float
    clip: float
    """Global-norm threshold; 0 for none."""

    def describe(self) -> str:
        """The settings in words, for the status line: "40 steps, peak lr 0.005, clip at 1"."""
        clip = f"clip at {self.clip:g}" if self.clip else "no clipping"
        return f"{self.steps} steps, peak lr {self.lr:g}, {clip}"


def float32_spacing(x: float) -> float:
    """The gap between float32 numbers at x (one ulp): 4.8e-7 for x in [4, 8), half that in [2, 4)."""
    return float(np.spacing(np.float32(abs(x))))


def agreement_verdict(largest: float, step: int, loss: float) -> str:
    """In words: how far apart the two runs' losses came, against float32's resolution at that step's loss.

    Args:
        largest: The largest per-step |loss on our parts − loss on torch's|, in nats.
        step: The 1-based step where it occurred.
        loss: torch's loss at that step, whose float32 spacing sets the scale.

    Returns:
        One verdict: identical; within AGREEMENT_ULPS spacings (the parts compute the same thing); or past them.
    """
    if largest == 0.0:
        return "The two runs' losses are identical at every step: the same arithmetic in the same order."
    head = f"Largest per-step difference: {largest:.1e} nats, at step {step}"
    if not math.isfinite(largest) or not math.isfinite(loss):
        return f"{head}: a run diverged, so the curves cannot be compared there."
    ulp = float32_spacing(loss)
    ulps = largest / ulp
    where = f"float32 numbers near its loss of {loss:.2f} lie {ulp:.1e} apart"
    if ulps <= AGREEMENT_ULPS:
        count = f"{ulps:.2g}"
        roundings = "1 rounding's" if count == "1" else f"{count} roundings'"
        return (f"{head}; {where}. That is {roundings} worth, within the "
                f"{AGREEMENT_ULPS} allowed for summing in another order, so the parts compute the same thing.")
    return (f"{head}; {where}. That is {ulps:,.0f} roundings' worth, past the {AGREEMENT_ULPS} allowed for summing "
            "in another order. Either training amplified the last bits step after step (a high learning "
            "rate makes a run that sensitive), or the parts compute different things: a run at a lower learning "
            "rate tells which.")


class OptimiserByHandLab(Lab):
    """Train the draft-shaped GPT on torch's cross-entropy, AdamW and clipping, then on ours; plot both curves."""

    DEFAULT_CSS = "OptimiserByHandLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [
        Binding("r", "train", "Train", tooltip="Train the GPT twice: on torch's parts, then on ours"),
        *shown_as_one([
            *paired_keys("l", "L", "learning_rate(1)", "learning_rate(-1)", "peak learning rate"),
            *paired_keys("s", "S", "steps(1)", "steps(-1)", "training steps"),
            Binding("c", "clip", "clipping threshold: 1, 0.25, off"),
        ], "lLsSc", "knobs"),
        Binding("d", "difference", "Diff", tooltip="Plot the per-step difference instead of both curves"),
        Binding("b", "race", "Race", tooltip="Time our cross-entropy and AdamW against torch's at 1 thread"),
    ]
    settings = reactive(Initialize(lambda lab: Settings(lab.params["steps"], lab.params["lr"], lab.params["clip"])),
                        init=False)
    """The next run's steps, learning rate and clipping."""
    comparison = reactive(None, always_update=True)
    """The last PartsComparison."""
    show_difference = reactive(False, init=False)
    """Plot |ours − torch's| per step instead of the two loss curves."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r trains a 2-layer GPT on the plays twice with the same seed: on torch's parts, then on "
                     "ours. l/L lr, s/S steps, c clipping, b races the parts.", classes="readout")
        yield ProfilePanel("b races our cross-entropy and AdamW against torch's, both at 1 thread.")

    def on_mount(self) -> None:
        self.status(f"Next run: {self.settings.describe()}.")

    def action_learning_rate(self, step: int) -> None:
        self.settings = replace(self.settings, lr=stepped(LEARNING_RATES, self.settings.lr, step))

    def action_steps(self, step: int) -> None:
        self.settings = replace(self.settings, steps=stepped(STEPS, self.settings.steps, step))

    def action_clip(self) -> None:
        self.settings = replace(self.settings, clip=cycled(CLIPS, self.settings.clip))

    def watch_settings(self, settings: Settings) -> None:
        if not self.running:
            self.status(f"Next run: {settings.describe()} (r trains).")

    def action_train(self) -> None:
        settings = self.settings

        def work(progress: Progress):
            """Both runs, on the worker thread; a diverged run raises EngineError, shown as "Failed: …"."""
            from workbench_engines.optim.compare import compare_parts

            return compare_parts(steps=settings.steps, lr=settings.lr, grad_clip=settings.clip or None,
                                 progress=progress)

        self.start(work, lambda result: setattr(self, "comparison", result),
                   f"Training twice: {settings.describe()}")

    def action_difference(self) -> None:
        self.show_difference = not self.show_difference

    def watch_show_difference(self) -> None:
        self.watch_comparison(self.comparison)

    def watch_comparison(self, comparison) -> None:
        """Plot the last comparison (both curves, or their difference) and show its table and verdict."""
        if comparison is None:
            return
        ours, theirs = comparison.hand, comparison.torch
        steps = list(range(1, len(ours.losses) + 1))
        figure = self.query_one(Figure)
        if self.show_difference:
            figure.lines("|loss on our parts − loss on torch's|, per step", [
                Series("difference", steps, comparison.differences)], xlabel="step", hint="d: both curves")
        else:
            figure.lines("training loss on torch's parts and on ours", [
                Series("torch's", steps, theirs.losses), Series("ours", steps, ours.losses)],
                xlabel="step", hint="d: difference")
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("parts", "first loss", "last loss", "val loss"):
            table.add_column(name, justify="left" if name == "parts" else "right")
        for run in (theirs, ours):
            table.add_row("torch's" if run.parts == "torch" else "ours", f"{run.losses[0]:.4f}",
                          f"{run.losses[-1]:.4f}", f"{run.val_loss:.4f}" if run.val_loss is not None else "-")
        step = comparison.worst_step
        loss = theirs.losses[step - 1] if step else 0.0
        self.readout(Group(table, Text(agreement_verdict(comparison.largest_difference, step, loss))))

    def action_race(self) -> None:
        def cases():
            from workbench_engines.optim.bench import cases as optim_cases

            return optim_cases()

        self.race(cases, "Racing the parts", self._raced)

    def _raced(self, result: RaceResult) -> None:
        """Show the race's timings and checks in the profile panel."""
        self.query_one(ProfilePanel).show(
            result.rows, result.baselines,
            "both sides on torch's CPU kernels at 1 thread; matches: loss, gradient and updated weights within "
            "float32 rounding of torch's (the check `workbench bench finetune` makes)")
