"""Labs of the softmax lesson: temperature with a kernel race, and numerical stability."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static
from textual_plotext import PlotextPlot

from workbench_engines import native_status
from workbench_engines.profiling import Profile
from workbench_engines.softmax import entropy_bits, profile, reference, softmax, with_temperature
from workbench.labs.base import Lab, Progress
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

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.logits = np.asarray(params["logits"], dtype=np.float32)
        labels = list(params["labels"])
        self.labels = labels if len(labels) == len(self.logits) else [str(i) for i in range(len(self.logits))]
        self.temperature = float(params["temperature"])

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("", classes="readout")
        yield ProfilePanel("Press r to race the reference, native and torch softmax on a large batch.")

    def on_mount(self) -> None:
        self.redraw()

    def action_temperature(self, factor: float) -> None:
        self.temperature = float(np.clip(self.temperature * factor, 0.05, 20.0))
        self.redraw()

    def action_reset(self) -> None:
        self.temperature = 1.0
        self.redraw()

    def redraw(self) -> None:
        probs = with_temperature(self.logits, self.temperature)
        plt = self.fresh_plot()
        plt.bar(self.labels, probs.tolist())
        plt.ylim(0, 1)
        plt.title(f"softmax(logits / {self.temperature:.2f})")
        self.refresh_plot()
        top = int(np.argmax(probs))
        h = float(entropy_bits(probs))
        self.query_one(".readout", Static).update(
            f"T = {self.temperature:.2f} · top p = {probs[top]:.3f} ({self.labels[top]}) · "
            f"entropy {h:.2f} of at most {np.log2(len(probs)):.2f} bits"
        )

    def action_race(self) -> None:
        rows, cols = self.params["race_rows"], self.params["race_cols"]
        if rows * cols > MAX_RACE_ELEMENTS:
            self.status(f"race_rows × race_cols must be at most {MAX_RACE_ELEMENTS:,}")
            return
        self.start(lambda progress: race(rows, cols, progress), self._raced, f"Racing on {rows}×{cols} logits")

    def _raced(self, result: tuple[list[Profile], str]) -> None:
        profiles, note = result
        self.query_one(ProfilePanel).show(profiles, note)
        self.status("Race finished: figures are medians of wall-clock time; peak memory from tracemalloc.")


def race(rows: int, cols: int, progress: Progress) -> tuple[list[Profile], str]:
    """Softmax on the same (rows, cols) float32 logits on each backend, checked against the reference."""
    rng = np.random.default_rng()
    x = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)
    backends = ["reference", "native", "torch"]
    status = native_status()
    if not status.loaded:
        backends.remove("native")
    profiles, notes, expected = [], [], None
    for index, backend in enumerate(backends):
        progress(index / len(backends), f"{backend} softmax")
        out, prof = profile("softmax", x, backend=backend, repeats=3)
        profiles.append(prof)
        if expected is None:
            expected = out
        else:
            notes.append(f"{backend} max |Δ| = {float(np.max(np.abs(out - expected))):.1e}")
    progress(1.0, "done")
    if not status.loaded:
        notes.append(f"native not built: {status.error}")
    return profiles, "outputs vs reference: " + ", ".join(notes)


class StabilityLab(Lab):
    """Adds a constant to every logit: the naive softmax overflows, the stable one doesn't care."""

    BINDINGS = [
        Binding("plus,equals_sign", "shift(1)", "Shift up"),
        Binding("minus", "shift(-1)", "Shift down"),
        Binding("0", "reset", "No shift"),
    ]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.logits = np.asarray(params["logits"], dtype=np.float32)
        self.shift = float(params["shift"])

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def action_shift(self, direction: int) -> None:
        self.shift += direction * self.params["step"]
        self.redraw()

    def action_reset(self) -> None:
        self.shift = 0.0
        self.redraw()

    def redraw(self) -> None:
        x = self.logits + np.float32(self.shift)
        with np.errstate(over="ignore"):
            exps = np.exp(x)
        naive = reference.naive_softmax(x)
        stable = softmax(x)
        backend = "native" if native_status().loaded else "reference"
        kernel = softmax(x, backend=backend)
        table = Table(box=None, header_style="bold", title=f"float32 logits + {self.shift:g}")
        for name in ("i", "logit", "exp(logit)", "naive p", "stable p", f"{backend} p"):
            table.add_column(name, justify="right")
        for i in range(len(x)):
            table.add_row(str(i), f"{x[i]:g}", f"{exps[i]:.3g}", f"{naive[i]:.4f}", f"{stable[i]:.4f}", f"{kernel[i]:.4f}")
        broken = not np.all(np.isfinite(naive))
        table.caption = (
            "naive: exp overflowed float32 (max ≈ 3.4e38) → inf/inf = nan"
            if broken
            else "naive and stable agree: no exponent is large enough to overflow yet"
        )
        self.query_one(".readout", Static).update(table)
