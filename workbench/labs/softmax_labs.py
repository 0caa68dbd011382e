"""Labs of the softmax lesson: temperature with a kernel race, and numerical stability."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

from workbench_engines.softmax import choose_backend, entropy_bits, softmax, with_temperature
from workbench_engines.softmax.reference import naive_versus_stable
from workbench.labs.base import Lab, RaceResult, backend_caption
from workbench.widgets.profile_panel import ProfilePanel

# The race allocates input and outputs of this many float32 each: keep it in memory.
MAX_RACE_ELEMENTS = 1 << 25


class TemperatureLab(Lab):
    """Plots softmax(logits / T) as T changes; races the kernels on a large batch."""

    DEFAULT_CSS = """
    TemperatureLab PlotextPlot { height: 12; }
    """
    BINDINGS = [
        Binding("plus,equals_sign", "temperature(1.25)", "T up"),
        Binding("minus", "temperature(0.8)", "T down"),
        Binding("0", "reset", "T = 1"),
        Binding("r", "race", "Race kernels"),
    ]
    temperature = reactive(Initialize(lambda lab: float(lab.params["temperature"])))
    """The softmax temperature T; the plot and readout follow it."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.logits = np.asarray(params["logits"], dtype=np.float32)
        labels = list(params["labels"])
        self.labels = labels if len(labels) == len(self.logits) else [str(i) for i in range(len(self.logits))]

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("", classes="readout")
        yield ProfilePanel("Press r to race the reference, native and torch softmax on a large batch.")

    def action_temperature(self, factor: float) -> None:
        self.temperature = float(np.clip(self.temperature * factor, 0.05, 20.0))

    def action_reset(self) -> None:
        self.temperature = 1.0

    def watch_temperature(self, temperature: float) -> None:
        probs = with_temperature(self.logits, temperature)
        plt = self.fresh_plot()
        plt.bar(self.labels, probs.tolist())
        plt.ylim(0, 1)
        plt.title(f"softmax(logits / {temperature:.2f})")
        self.refresh_plot()
        top = int(np.argmax(probs))
        self.readout(
            f"T = {temperature:.2f} · top p = {probs[top]:.3f} ({self.labels[top]}) · "
            f"entropy {float(entropy_bits(probs)):.2f} of at most {np.log2(len(probs)):.2f} bits"
        )

    def action_race(self) -> None:
        rows, cols = self.params["race_rows"], self.params["race_cols"]
        if rows * cols > MAX_RACE_ELEMENTS:
            self.status(f"race_rows × race_cols must be at most {MAX_RACE_ELEMENTS:,}")
            return

        def cases():
            from workbench_engines.softmax.bench import race_case

            return [race_case("softmax", rows, cols, np.random.default_rng(), measure_memory=True)]

        self.race(cases, f"Racing on {rows}×{cols} logits", self._raced)

    def _raced(self, result: RaceResult) -> None:
        self.query_one(ProfilePanel).show(
            result.rows, result.baselines,
            "matches: within float32 round-off of NumPy's output (the same check `workbench bench softmax` makes)")


class StabilityLab(Lab):
    """Adds a constant to every logit: the naive softmax overflows or underflows, the stable one doesn't care."""

    BINDINGS = [
        Binding("plus,equals_sign", "shift(1)", "Shift up"),
        Binding("minus", "shift(-1)", "Shift down"),
        Binding("0", "reset", "No shift"),
    ]
    shift = reactive(Initialize(lambda lab: float(lab.params["shift"])))
    """The constant added to every logit."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.logits = np.asarray(params["logits"], dtype=np.float32)

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def action_shift(self, direction: int) -> None:
        self.shift += direction * self.params["step"]

    def action_reset(self) -> None:
        self.shift = 0.0

    def watch_shift(self, shift: float) -> None:
        x = self.logits + np.float32(shift)
        both = naive_versus_stable(x)
        choice = choose_backend(x)
        kernel = softmax(x, backend=choice.name)
        table = Table(box=None, header_style="bold", title=f"float32 logits + {shift:g}", title_justify="left")
        for name in ("i", "logit", "exp(logit)", "naive p", "stable p", f"{choice.name} p"):
            table.add_column(name, justify="right")
        for i in range(len(x)):
            table.add_row(str(i), f"{x[i]:g}", f"{both.exps[i]:.3g}", f"{both.naive[i]:.4f}",
                          f"{both.stable[i]:.4f}", f"{kernel[i]:.4f}")
        verdict = {
            None: "naive and stable agree: every exp(logit) is still a finite, non-zero float32",
            "overflow": "naive: exp overflowed float32 (above ≈ 3.4e38 it is inf) → inf / inf = nan",
            "underflow": "naive: every exp underflowed to 0 (below ≈ 1e-45) → 0 / 0 = nan",
        }[both.failure]
        table.caption = f"{verdict}\n{backend_caption([choice])} (last column)"
        self.readout(table)
