"""Labs of the Positional encodings track: why order is invisible to attention, and each encoding plotted."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static
from textual_plotext import PlotextPlot

from workbench_engines.attention import attention
from workbench_engines.positional import alibi_bias, rope, sinusoidal
from workbench.labs.base import Lab


class ShuffleLab(Lab):
    """Shuffle the tokens: without positions each output just moves with its token; with them it changes."""

    BINDINGS = [Binding("s", "shuffle", "Shuffle"), Binding("p", "toggle", "Positions on/off")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.words = list(params["words"])
        self.order = list(range(len(self.words)))
        self.with_positions = False
        rng = np.random.default_rng(7)
        self.embeddings = {w: rng.standard_normal(16).astype(np.float32) for w in dict.fromkeys(self.words)}

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def action_shuffle(self) -> None:
        np.random.default_rng().shuffle(self.order)
        self.redraw()

    def action_toggle(self) -> None:
        self.with_positions = not self.with_positions
        self.redraw()

    def outputs(self, order: list[int]) -> np.ndarray:
        x = np.stack([self.embeddings[self.words[i]] for i in order])
        if self.with_positions:
            x = x + sinusoidal(len(order), 16) * 2
        h = x[None, None]
        return attention(h, h, h)[0, 0]

    def redraw(self) -> None:
        original = self.outputs(list(range(len(self.words))))
        shuffled = self.outputs(self.order)
        table = Table(box=None, header_style="bold",
                      title=f"self-attention outputs {'with' if self.with_positions else 'without'} sinusoidal positions",
                      title_justify="left")
        for name in ("word", "output in the original order", "same word after shuffling", "same?"):
            table.add_column(name)
        self.same: list[bool] = []
        """Per slot of the shuffled order: does the word's output equal its unshuffled output?"""
        for slot, i in enumerate(self.order):
            a, b = original[i], shuffled[slot]
            same = bool(np.allclose(a, b, atol=1e-5))
            self.same.append(same)
            table.add_row(self.words[i], str(np.round(a[:3], 2).tolist()), str(np.round(b[:3], 2).tolist()),
                          "same" if same else "DIFFERENT")
        table.caption = "first 3 of 16 dimensions shown; s shuffles, p adds or removes the positions"
        self.query_one(".readout", Static).update(table)


class EncodingPlotLab(Lab):
    """Plots of one encoding: its curves, or how the q·k of equal vectors falls with distance."""

    DEFAULT_CSS = """
    EncodingPlotLab PlotextPlot { height: 14; }
    """
    BINDINGS = [Binding("plus,equals_sign", "change(1)", "More"), Binding("minus", "change(-1)", "Less")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.knob = params["knob"]

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def action_change(self, step: int) -> None:
        self.knob = max(1, self.knob * 2 if step > 0 else self.knob // 2)
        self.redraw()

    def redraw(self) -> None:
        plt = self.fresh_plot()
        kind, n = self.params["kind"], self.params["positions"]
        readout = ""
        if kind == "sinusoidal":
            dim = 64
            pe = sinusoidal(n, dim)
            index = min(2 * self.knob, dim - 2)
            for column in sorted({0, index, dim - 2}):
                plt.plot(list(range(n)), pe[:, column].tolist(), label=f"dim {column}", marker="braille")
            plt.title("sinusoidal encoding: fast and slow waves (+/- moves the middle curve)")
            readout = f"wavelength of dim {index}: {2 * np.pi * 10000 ** (index / dim):.1f} positions"
        elif kind == "similarity":
            dim = 64
            rng = np.random.default_rng(0)
            v = rng.standard_normal(dim)
            distances = np.arange(n)
            sin = sinusoidal(n, dim).astype(np.float64)
            sin_dot = sin @ sin[0] / dim
            x = np.tile(v, (n, 1))
            r = rope(x, base=10000.0 / self.knob if self.knob > 1 else 10000.0)
            rope_dot = r @ r[0] / (v @ v)
            plt.plot(distances.tolist(), sin_dot.tolist(), label="sinusoidal PE[0]·PE[d]", marker="braille")
            plt.plot(distances.tolist(), rope_dot.tolist(), label="RoPE q·k, same vector", marker="braille")
            plt.title("similarity against distance d")
            readout = "Both decay (unevenly) with distance; RoPE's depends only on the distance by construction."
        elif kind == "rope_scaling":
            dim, factor = 64, float(self.knob)
            positions = np.arange(n) * factor
            v = np.ones((n, dim))
            for label, kwargs in (("no scaling", {}), (f"linear ×{factor:g}", {"scaling": "linear", "factor": factor}),
                                  (f"NTK ×{factor:g}", {"scaling": "ntk", "factor": factor})):
                r = rope(v, positions=positions, **kwargs)
                plt.plot(positions.tolist(), (r @ r[0] / dim).tolist(), label=label, marker="braille")
            plt.title(f"q·k against position up to {int(positions[-1])} (+/- changes the factor)")
            readout = "Linear scaling squeezes positions back into the trained range; NTK stretches only the slow frequencies."
        else:
            heads = 8
            bias = alibi_bias(heads, n)
            for h in sorted({0, min(self.knob, heads) - 1, heads - 1}):
                plt.plot(list(range(n)), bias[h, n - 1, ::-1].tolist(), label=f"head {h + 1}", marker="braille")
            plt.title("ALiBi: the bias on the score against distance, per head")
            readout = "Each head penalises distance with its own slope: steep heads look local, shallow ones far."
        plt.xlabel("position" if kind == "sinusoidal" else "distance or position")
        self.refresh_plot()
        self.query_one(".readout", Static).update(readout)
