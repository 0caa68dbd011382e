"""Labs of the softmax lesson: temperature with a kernel race, and numerical stability."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench_engines.softmax import choose_backend, entropy_bits, softmax, with_temperature
from workbench_engines.softmax.reference import naive_versus_stable
from workbench.labs.base import Lab, RaceResult, backend_caption
from workbench.labs.knobs import plus_minus_keys
from workbench.widgets.plots import Figure
from workbench.widgets.profile_panel import ProfilePanel

# The race allocates input and outputs of this many float32 each: keep it in memory.
MAX_RACE_ELEMENTS = 1 << 25


class TemperatureLab(Lab):
    """Plots softmax(logits / T) as T changes; races the kernels on a large batch."""

    DEFAULT_CSS = """
    TemperatureLab Figure PlotextPlot { height: 11; }
    """
    BINDINGS = [
        *plus_minus_keys("temperature(1.25)", "temperature(0.8)", "T ×÷1.25"),
        Binding("0", "reset", "T = 1"),
        Binding("r", "race", "Race"),
    ]
    temperature = reactive(Initialize(lambda lab: float(lab.params["temperature"])))
    """The softmax temperature T; the plot and readout follow it."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.logits = np.asarray(params["logits"], dtype=np.float32)
        labels = list(params["labels"])
        self.labels = labels if len(labels) == len(self.logits) else [str(i) for i in range(len(self.logits))]

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="readout")
        yield ProfilePanel("Press r to race the reference, native and torch softmax on a large batch.")

    def action_temperature(self, factor: float) -> None:
        self.temperature = float(np.clip(self.temperature * factor, 0.05, 20.0))

    def action_reset(self) -> None:
        self.temperature = 1.0

    def watch_temperature(self, temperature: float) -> None:
        probs = with_temperature(self.logits, temperature)
        # A fixed axis of 0 to 1, so heights compare as T changes; each bar's value is written above it.
        self.query_one(Figure).bars(f"softmax(logits / {temperature:.2f})", self.labels, probs.tolist(), top=1.0)
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
            "matches: every output within about 2e-6 + 1e-5·|p| of NumPy's, float32 round-off summed over a row "
            "(the same check `workbench bench softmax` makes)")


class StabilityLab(Lab):
    """Adds a constant to every logit: the naive softmax overflows or underflows, the stable one doesn't care."""

    BINDINGS = [
        *plus_minus_keys("shift(1)", "shift(-1)", "Shift ±"),
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
        table = Table(box=None, header_style="bold", title=f"float32 logits {'−' if shift < 0 else '+'} {abs(shift):g}", title_justify="left")
        for name in ("i", "logit", "exp(logit)", "naive p", "stable p", f"{choice.name} p"):
            table.add_column(name, justify="right")
        for i in range(len(x)):
            table.add_row(str(i), f"{x[i]:g}", f"{both.exps[i]:.3g}", f"{both.naive[i]:.4f}",
                          f"{both.stable[i]:.4f}", f"{kernel[i]:.4f}")
        self.readout(Group(table, Text(stability_verdict(both)),
                           Text(f"{backend_caption([choice])} (last column)", style="dim")))


FLOAT32_TINY = float(np.finfo(np.float32).tiny)
"""The smallest normal float32 (≈ 1.2e-38): below it exp's results keep fewer digits, down to 0 below ≈ 1.4e-45."""


def stability_verdict(both) -> str:
    """What happened to the naive softmax, in words that match its column (issue 20).

    It names the failure from the exps themselves: inf / inf after an
    overflow, 0 / 0 when every exp underflowed, and the quieter cases where
    the naive p are finite but wrong: some exps rounded to 0, or all of them
    subnormal and short of digits.
    """
    exps = np.asarray(both.exps, dtype=np.float64)
    if np.any(np.isinf(exps)):
        return "naive: exp overflowed float32 (above ≈ 3.4e38 it is inf) → inf / inf = nan"
    if np.all(exps == 0):
        return "naive: every exp underflowed to 0 (below ≈ 1.4e-45) → 0 / 0 = nan"
    with np.errstate(over="ignore"):
        summed = np.sum(np.asarray(both.exps, dtype=np.float32), dtype=np.float32)
    if np.isinf(summed):
        return "naive: every exp is finite but their float32 sum overflowed to inf → every p is 0 (or nan)"
    off = float(np.nanmax(np.abs(np.asarray(both.naive, dtype=np.float64) - both.stable)))
    if np.any(exps == 0):
        return f"naive: some exps underflowed to 0, so their p is 0, not small (off by up to {off:.2g})"
    if np.any(exps < FLOAT32_TINY) and off > 1e-6:
        return (f"naive: the exps are subnormal (below ≈ 1.2e-38) and keep fewer digits: p off by up to {off:.2g}, "
                "though not yet nan")
    if off > 1e-6:
        return f"naive and stable differ by up to {off:.2g}: round-off in exp and the sum"
    return "naive and stable agree: every exp(logit) is still a finite, non-zero float32"
