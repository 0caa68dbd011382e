"""Labs of the Positional encodings track: why order is invisible to attention, and each encoding plotted."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench.labs.base import Lab
from workbench.labs.knobs import plus_minus_keys
from workbench.widgets.plots import Figure, Series


def first_values(vector, count: int = 3) -> str:
    """The first values of an output vector to two decimals: float32's -0.38999998569488525 shows as -0.39."""
    return "[" + ", ".join(f"{round(float(v), 2) + 0.0:.2f}" for v in list(vector)[:count]) + "]"


def new_order(order: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
    """A shuffle of ``order`` that differs from it (a shuffle that changes nothing would show every output
    "same" and read as "positions don't matter"); one word has only its own order."""
    if len(set(order)) < 2:
        return tuple(order)
    while True:
        shuffled = tuple(order[i] for i in rng.permutation(len(order)))
        if shuffled != tuple(order):
            return shuffled


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
        self.state = replace(self.state, order=new_order(self.state.order, np.random.default_rng()))

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
                      title_justify="left", caption_justify="left")
        for name in ("word", "output in the original order", "same word after shuffling", "same?"):
            table.add_column(name)
        for slot, i in enumerate(state.order):
            table.add_row(words[i], first_values(result.original[i]), first_values(result.shuffled[slot]),
                          "same" if result.same[slot] else "DIFFERENT")
        table.caption = "first 3 of 16 dimensions shown; s shuffles, e adds or removes the encodings"
        self.readout(table)


KNOB_KEYS = {
    "sinusoidal": "middle dim ±",
    "similarity": "RoPE base ÷2/×2",
    "rope_scaling": "factor ×2/÷2",
    "alibi": "next/previous head",
}
"""What + and - do on each kind of plot, as the footer says it (issue 20: never a silent "More")."""


class EncodingPlotLab(Lab):
    """Plots of one encoding: its curves, or how the q·k of equal vectors falls with distance."""

    DEFAULT_CSS = """
    EncodingPlotLab Figure PlotextPlot { height: 12; }
    """
    # One pair of bindings per kind of plot, each saying what + and - change there; check_action keeps the
    # pair of this lab's kind.
    BINDINGS = [binding for kind, label in KNOB_KEYS.items()
                for binding in plus_minus_keys(f"change({kind!r}, 1)", f"change({kind!r}, -1)", label)]
    knob = reactive(Initialize(lambda lab: lab.params["knob"]))
    """The plot's adjustable quantity (its title says what it is); +/- doubles and halves it."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="readout")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "change":
            return parameters[0] == self.params["kind"]
        return super().check_action(action, parameters)

    def action_change(self, kind: str, step: int) -> None:
        self.knob = min(64, max(1, self.knob * 2 if step > 0 else self.knob // 2))

    def watch_knob(self, knob: int) -> None:
        from workbench_engines.positional.explain import encoding_curves

        kind = self.params["kind"]
        plot = encoding_curves(kind, self.params["positions"], knob)
        # RoPE's q·k swings faster than the canvas has columns: joined, its curves fill in to a hatch.
        points = kind == "rope_scaling"
        self.query_one(Figure).lines(plot.title, [Series(c.label, c.x, c.y, points=points) for c in plot.curves],
                                     xlabel=plot.xlabel)
        self.readout(plot.note)
