"""Labs of the Training track: loss against model size, with a fitted power law."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.widgets.plots import Figure, Series

SIZES = {"tiny": {"d_model": 16, "n_layers": 1, "hidden": 48}, "small": {"d_model": 32, "n_layers": 1, "hidden": 96},
         "medium": {"d_model": 64, "n_layers": 2, "hidden": 176}}
"""The three mini-formers the scaling lab trains, 4 heads each: small enough that a few hundred steps take each
close to what its size allows, so loss falls with size on every seed (larger ones would still be learning the
same easy statistics, and the fit would measure the budget, not the size)."""


@dataclass(frozen=True)
class ScalingRun:
    curves: list
    sizes: list[int]
    """Parameters without the embedding table and the head, as Kaplan et al. (2020) count them."""
    fit: tuple[float, float]
    """(a, b) of loss ≈ a·N^(−b)."""


class ScalingLab(Lab):
    """Train three sizes for the same steps; plot validation loss against parameters with a fitted power law."""

    DEFAULT_CSS = "ScalingLab Figure PlotextPlot { height: 11; }"
    BINDINGS = [Binding("r", "train", "Train"), Binding("w", "view", "Size/wall-clock")]
    wall_clock = reactive(False, init=False)
    """Plot loss against seconds instead of against size."""
    run = reactive(None, always_update=True)
    """The last ScalingRun."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r trains tiny, small and medium mini-formers for the same number of steps.", classes="readout")

    def action_train(self) -> None:
        steps = self.params["steps"]

        def work(progress: Progress) -> ScalingRun:
            from workbench_engines.models.experiments import (
                Variant,
                fit_power_law,
                lesson_data,
                non_embedding_parameters,
                run_variants,
            )

            variants = [Variant(name, {"n_heads": 4, **size}) for name, size in SIZES.items()]
            names = [v.name for v in variants]

            def on_step(curve) -> None:
                progress((names.index(curve.name) + curve.steps[-1] / steps) / len(names),
                         f"{curve.name}: step {curve.steps[-1]}")

            curves = run_variants(variants, steps=steps, data=lesson_data(), on_step=on_step)
            sizes = [non_embedding_parameters(c.model) for c in curves]
            return ScalingRun(curves, sizes, fit_power_law(sizes, [c.val_loss for c in curves]))

        self.start(work, lambda run: setattr(self, "run", run), "Training three sizes")

    def action_view(self) -> None:
        self.wall_clock = not self.wall_clock

    def watch_wall_clock(self) -> None:
        self.watch_run(self.run)

    def watch_run(self, run: ScalingRun | None) -> None:
        if run is None:
            return
        (a, b), curves, sizes = run.fit, run.curves, run.sizes
        figure = self.query_one(Figure)
        if self.wall_clock:
            series = []
            for c in curves:
                losses = np.convolve(c.losses, np.ones(5) / 5, mode="valid")
                series.append(Series(c.name, c.elapsed[len(c.elapsed) - len(losses):], losses.tolist()))
            figure.lines("training loss against wall-clock time", series, xlabel="seconds", hint="w: against size")
            return
        logn = np.log10(sizes)
        line = np.linspace(logn.min(), logn.max() + 1, 30)
        figure.lines("validation loss against size, extrapolated ×10", [
            Series("measured", logn.tolist(), [c.val_loss for c in curves], points=True),
            Series(f"fit {a:.2f}·N^-{b:.3f}", line.tolist(), (a * (10 ** line) ** -b).tolist()),
        ], xlabel="log10 parameters (without embeddings)", hint="w: wall-clock")
        table = Table(box=None, header_style="bold")
        for name in ("size", "params", "val loss", "seconds"):
            table.add_column(name, justify="left" if name == "size" else "right")
        for c, n in zip(curves, sizes):
            table.add_row(c.name, f"{n:,}", f"{c.val_loss:.3f}", f"{c.seconds:.1f}")
        table.caption = f"fit predicts {a * (10 * sizes[-1]) ** -b:.3f} at 10× the medium model, same steps"
        self.readout(Group(table, Text(scaling_verdict([c.name for c in curves], [c.val_loss for c in curves], b))))


KAPLAN_ALPHA_N = 0.076
"""Kaplan et al. (2020)'s exponent of loss against non-embedding parameters, for models trained to convergence."""


def scaling_verdict(names: list[str], losses: list[float], b: float) -> str:
    """In words: did the loss fall at every step up in size, and how the fitted exponent compares with Kaplan's."""
    broken = [name for name, loss in zip(names, losses) if loss is None or not math.isfinite(loss)]
    if broken:
        return f"{', '.join(broken)} diverged or has no validation loss: no trend to fit on this run."
    rises = [f"{big} ({high:.3f}) is not below {small} ({low:.3f})"
             for small, big, low, high in zip(names, names[1:], losses, losses[1:]) if high >= low]
    if rises:
        return (f"This run contradicts the trend: {'; '.join(rises)}. Most likely the larger model had too few "
                f"steps to use its size (or the gap is noise), so the fitted exponent ({b:.3f}) measures the budget, "
                "not the size.")
    return (f"Loss fell at every step up in size; the fitted exponent is {b:.3f}, against Kaplan et al.'s "
            f"{KAPLAN_ALPHA_N} for models trained to convergence over about six orders of magnitude.")
