"""Labs of the Positional encodings track: why order is invisible to attention, and each encoding plotted."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

from workbench.labs.base import Lab, marker


class ShuffleLab(Lab):
    """Shuffle the tokens: without positions each output just moves with its token; with them it changes."""

    BINDINGS = [Binding("s", "shuffle", "Shuffle"), Binding("e", "toggle", "Encodings on/off")]

    @dataclass(frozen=True)
    class State:
        order: tuple[int, ...]
        """order[slot] = the original index of the word at that slot."""
        with_positions: bool

    state = reactive(Initialize(lambda lab: ShuffleLab.State(tuple(range(len(lab.params["words"]))), False)))

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def action_shuffle(self) -> None:
        order = list(self.state.order)
        np.random.default_rng().shuffle(order)
        self.state = replace(self.state, order=tuple(order))

    def action_toggle(self) -> None:
        self.state = replace(self.state, with_positions=not self.state.with_positions)

    def watch_state(self, state: State) -> None:
        from workbench_engines.positional.explain import shuffle_outputs

        words = list(self.params["words"])
        result = shuffle_outputs(words, list(state.order), with_positions=state.with_positions)
        self.same = result.same
        """Per slot of the shuffled order: does the word's output equal its unshuffled output?"""
        table = Table(box=None, header_style="bold",
                      title=f"self-attention outputs {'with' if state.with_positions else 'without'} sinusoidal positions",
                      title_justify="left")
        for name in ("word", "output in the original order", "same word after shuffling", "same?"):
            table.add_column(name)
        for slot, i in enumerate(state.order):
            table.add_row(words[i], str(np.round(result.original[i][:3], 2).tolist()),
                          str(np.round(result.shuffled[slot][:3], 2).tolist()), "same" if result.same[slot] else "DIFFERENT")
        table.caption = "first 3 of 16 dimensions shown; s shuffles, e adds or removes the encodings"
        self.readout(table)


class EncodingPlotLab(Lab):
    """Plots of one encoding: its curves, or how the q·k of equal vectors falls with distance."""

    DEFAULT_CSS = """
    EncodingPlotLab PlotextPlot { height: 14; }
    """
    BINDINGS = [Binding("plus,equals_sign", "change(1)", "More"), Binding("minus", "change(-1)", "Less")]
    knob = reactive(Initialize(lambda lab: lab.params["knob"]))
    """The plot's adjustable quantity (its title says what it is); +/- doubles and halves it."""

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("", classes="readout")

    def action_change(self, step: int) -> None:
        self.knob = min(64, max(1, self.knob * 2 if step > 0 else self.knob // 2))

    def watch_knob(self, knob: int) -> None:
        from workbench_engines.positional.explain import encoding_curves

        plot = encoding_curves(self.params["kind"], self.params["positions"], knob)
        plt = self.fresh_plot()
        for i, curve in enumerate(plot.curves):
            plt.plot(curve.x, curve.y, label=curve.label, marker=marker(i))
        plt.title(plot.title)
        plt.xlabel(plot.xlabel)
        self.refresh_plot()
        self.readout(plot.note)
