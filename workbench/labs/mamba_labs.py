"""The long-context track's Mamba lab: a tiny Mamba and a GPT of about its size trained side by side on the plays.

Both go through the project's training loop with the same settings (engines.longctx.mamba.compare_to_transformer);
the lab plots their training losses as they come and tabulates parameters, validation loss, training and decoding
speed and the bytes each keeps to decode the next token at 1k and 16k tokens of context.
"""

from __future__ import annotations


import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.labs.knobs import paired_keys
from workbench.widgets.plots import Figure, Series
from workbench_engines.longctx.bench import size_text

SMOOTHING = 10
"""Steps averaged per point of the plotted training loss: one batch's loss swings more than the two curves differ."""
MODELS = ("Mamba", "GPT")
REDRAW_S = 2.0
"""The least time between two redraws of the live curves. A plot takes the UI thread, and through the GIL the
training thread, tens of milliseconds to draw: at _ui_stream's ten a second the GPT's steps ran many times slower."""


def smoothed(losses: list[float]) -> tuple[list[float], list[float]]:
    """(steps, losses) averaged over SMOOTHING steps, each point at the window's last step (1-based)."""
    if len(losses) < SMOOTHING:
        return list(range(1, len(losses) + 1)), list(losses)
    mean = np.convolve(losses, np.ones(SMOOTHING) / SMOOTHING, mode="valid")
    return list(range(SMOOTHING, len(losses) + 1)), mean.tolist()


def kilo(tokens: int) -> str:
    """16k for 16,384 tokens; a count that is no multiple of 1,024 written out."""
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else f"{tokens:,}"


def mamba_verdict(comparison) -> str:
    """What the run showed, in words, from its own figures: which model reached the lower validation loss at equal
    steps, how much faster the GPT trained, and how the two decode states compare at the longest context."""
    mamba, gpt = comparison.mamba, comparison.gpt
    steps = comparison.settings["steps"]
    if mamba.val_loss is None or gpt.val_loss is None:
        return "A run ended without a validation loss: nothing to compare."
    lower, higher = (mamba, gpt) if mamba.val_loss < gpt.val_loss else (gpt, mamba)
    words = [f"After {steps} steps {lower.name} reached the lower validation loss, {lower.val_loss:.3f} against "
             f"{higher.val_loss:.3f} ({higher.val_loss - lower.val_loss:.3f} nats per token)."]
    ratio = gpt.train_tokens_per_s / mamba.train_tokens_per_s
    words.append(f"The GPT trained {ratio:.1f}× as fast: its work is a few large matrix products, the Mamba's "
                 "scan a loop over time." if ratio >= 1 else
                 f"The Mamba trained {1 / ratio:.1f}× as fast as the GPT.")
    longest = max(gpt.state_bytes)
    words.append(f"To decode token {longest:,} the GPT keeps {size_text(gpt.state_bytes[longest])} of keys and "
                 f"values, {gpt.state_bytes[longest] / mamba.state_bytes[longest]:,.0f}× the Mamba's "
                 f"{size_text(mamba.state_bytes[longest])}, which is the same at every length.")
    return " ".join(words)


class MambaVsTransformerLab(Lab):
    """Train a tiny Mamba and a same-size GPT with one loop and one set of settings; compare losses, speed, memory."""

    DEFAULT_CSS = "MambaVsTransformerLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("r", "train", "Train both"),
                *paired_keys("s", "S", "reseed(1)", "reseed(-1)", "seed±",
                             up_help="Next seed (initialisation and batches)", down_help="Previous seed")]
    seed = reactive(Initialize(lambda lab: lab.params["seed"]))
    """The seed of the next run: both models' initialisation and batch order."""
    comparison = reactive(None, always_update=True)
    """The last engines.longctx.mamba.Comparison."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="readout")

    def watch_seed(self, seed: int) -> None:
        self.status(f"Seed {seed}, {self.params['steps']} steps each: r trains both (under a minute), s/S the seed.")

    def action_reseed(self, step: int) -> None:
        if self.busy():
            return
        spec = self.spec.params["seed"]
        self.seed = int(min(spec.max, max(spec.min, self.seed + step)))

    def action_train(self) -> None:
        steps, seed = self.params["steps"], self.seed
        curves: dict[str, list[float]] = {name: [] for name in MODELS}

        def work(progress: Progress):
            from workbench_engines.longctx.mamba import compare_to_transformer

            def on_step(name: str, report) -> None:
                curves[name].append(report.loss)
                done = MODELS.index(name) + report.step / report.total
                progress(done / len(MODELS), f"{name}: step {report.step}/{report.total}, loss {report.loss:.2f}")
                self._ui_stream(self._draw_curves, {k: list(v) for k, v in curves.items()}, steps, every=REDRAW_S)

            return compare_to_transformer(steps, seed=seed, on_step=on_step)

        self.start(work, lambda comparison: setattr(self, "comparison", comparison), "Training")

    def _draw_curves(self, curves: dict[str, list[float]], steps: int) -> None:
        series = []
        for name, losses in curves.items():
            if losses:
                xs, ys = smoothed(losses)
                series.append(Series(name, xs, ys))
        if series:
            self.query_one(Figure).lines(f"training loss, mean of {SMOOTHING} steps (of {steps})", series,
                                         xlabel="step")

    def watch_comparison(self, comparison) -> None:
        if comparison is None:
            return
        self._draw_curves({run.name: run.train_losses for run in comparison.runs}, comparison.settings["steps"])
        decode_at = max(comparison.mamba.decode_tokens_per_s)
        first, last = min(comparison.gpt.state_bytes), max(comparison.gpt.state_bytes)
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("model", "params", "val loss", "train tok/s", f"decode@{kilo(decode_at)}",
                     f"state@{kilo(first)}", f"state@{kilo(last)}"):
            table.add_column(name, justify="left" if name == "model" else "right", no_wrap=True)
        for run in comparison.runs:
            table.add_row(run.name, f"{run.parameters:,}", f"{run.val_loss:.3f}", f"{run.train_tokens_per_s:,.0f}",
                          f"{run.decode_tokens_per_s[decode_at]:,.0f}", size_text(run.state_bytes[first]),
                          size_text(run.state_bytes[last]))
        s = comparison.settings
        source = Text(f"seed {s['seed']}, {s['steps']} steps of {s['batch_size']}×{s['seq_len']} tokens each, one "
                      f"schedule; decode: batch 1, {s['decode_tokens']} tokens after a {kilo(decode_at)}-token "
                      f"prefill, {s['threads']} thread{'' if s['threads'] == 1 else 's'}; state: float32.", style="dim")
        self.readout(Group(table, Text(mamba_verdict(comparison)), source))
