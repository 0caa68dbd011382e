"""Labs of the Training track: loss against model size, with a fitted power law."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.widgets.plots import Figure, Series

SIZES = {"tiny": {"d_model": 32, "n_layers": 1, "hidden": 96}, "small": {"d_model": 64, "n_layers": 2, "hidden": 176},
         "medium": {"d_model": 96, "n_layers": 3, "hidden": 256}}
"""The three mini-formers the scaling lab trains, 4 heads each."""


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
        self.readout(table)
