"""Sentence embeddings lab: the cosine of two typed sentences, the Lee benchmark, and InfoNCE training."""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Input, Static
from workbench_engines.profiling.bench import one_blas_thread
from workbench_engines.progress import sub_progress

from workbench.labs.base import Lab, Progress
from workbench.widgets.plots import Figure, Series

STOCK = (
    "A woman is playing the violin.",
    "The stock market fell sharply today.",
    "A child is riding a bicycle in the park.",
    "Shares dropped after the company's profit warning.",
    "The orchestra performed a symphony last night.",
    "It is raining heavily in the city.",
)
"""The sentences the first one is compared with."""


def compare_pair(first: str, second: str, stock: tuple[str, ...] = STOCK):
    """(cosine of the two sentences, the three stock sentences nearest the first), from one MiniLM pass over all
    the sentences; NumPy's BLAS on one thread, which is faster where the app shares two cores with it."""
    from workbench_engines.embeddings.sentence import pair_and_nearest

    with one_blas_thread():
        return pair_and_nearest(first, second, stock, 3)


def run_lee(progress: Progress | None = None) -> list:
    """The Lee benchmark for MiniLM, TF-IDF and mean GloVe (MiniLM's pass reports progress)."""
    from workbench_engines.embeddings.sentence import LEE_METHODS, lee_benchmark

    with one_blas_thread():
        results = [lee_benchmark("MiniLM", progress=sub_progress(progress, 0.0, 0.9))]
    for method in LEE_METHODS[1:]:
        if progress is not None:
            progress(0.95, f"scoring {method}")
        results.append(lee_benchmark(method))
    return results


def lee_verdict(results) -> str:
    """In words: which method follows the human ratings best, by how much."""
    best = max(results, key=lambda r: r.pearson)
    rest = ", ".join(f"{r.method} {r.pearson:.3f}" for r in results if r is not best)
    return (f"{best.method} follows the students' ratings best: Pearson {best.pearson:.3f} "
            f"(Spearman {best.spearman:.3f}) against {rest}.")


def run_contrastive(progress: Progress | None = None):
    from workbench_engines.embeddings.sentence import contrastive_demo

    return contrastive_demo(progress=progress)


def contrastive_verdict(result) -> str:
    """In words: where the loss started and ended, and what held-out recall@1 did."""
    peak = max(range(len(result.recall)), key=lambda i: (result.recall[i], -i))
    return (f"InfoNCE, batch {result.batch}: ln B = {result.ln_batch:.2f}; the first batch scored "
            f"{result.losses[0]:.2f}, the last epoch {result.epoch_losses[-1]:.2f} (scale s {result.scales[-1]:.1f}). "
            f"Held-out recall@1 over {result.test_pairs} ledes: {result.recall[0]:.1%} untrained (plain mean GloVe), "
            f"{result.recall[-1]:.1%} after {result.epochs} epochs" +
            (f", best {result.recall[peak]:.1%} at epoch {peak}." if result.recall[peak] > result.recall[-1] else "."))


class SentenceLab(Lab):
    """Two sentences in, their MiniLM cosine out; ctrl+l runs the Lee benchmark, ctrl+t trains InfoNCE."""

    DEFAULT_CSS = "SentenceLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("ctrl+l", "lee", "Lee benchmark", tooltip="Correlate cosines with human ratings"),
                Binding("ctrl+t", "contrastive", "Train InfoNCE", tooltip="Train a map with in-batch negatives")]
    pair = reactive(None, always_update=True)
    """(first, second, cosine, nearest stock sentences) of the last Enter."""
    lee = reactive(None, always_update=True)
    """The LeeResults of the last ctrl+l."""
    contrastive = reactive(None, always_update=True)
    """The ContrastiveResult of the last ctrl+t."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["first"], placeholder="first sentence", id="first")
        yield Input(value=self.params["second"], placeholder="second sentence", id="second")
        yield Static("", classes="readout")
        yield Figure()

    def on_mount(self) -> None:
        self._compare()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._compare()

    def _compare(self) -> None:
        first, second = (self.query_one(f"#{name}", Input).value for name in ("first", "second"))
        if not first.strip() or not second.strip():
            self.status("Type a sentence in both boxes, then Enter.")
            return

        def work(progress: Progress):
            progress(0.0, "embedding the sentences")
            return (first, second, *compare_pair(first, second))

        self.start(work, lambda pair: setattr(self, "pair", pair), "Embedding with MiniLM")

    def action_lee(self) -> None:
        self.focus()  # so that x reaches the lab rather than a text box
        self.start(run_lee, lambda results: setattr(self, "lee", results), "Lee benchmark")

    def action_contrastive(self) -> None:
        self.focus()
        self.start(run_contrastive, lambda result: setattr(self, "contrastive", result), "Training with InfoNCE")

    def watch_pair(self) -> None:
        self._draw()

    def watch_lee(self) -> None:
        self._draw()

    def watch_contrastive(self, result) -> None:
        if result is not None:
            steps = list(range(1, len(result.losses) + 1))
            self.query_one(Figure).lines(
                f"InfoNCE loss per step, batch {result.batch} (ln B = {result.ln_batch:.2f})",
                [Series("training loss", steps, result.losses),
                 Series("ln B", [steps[0], steps[-1]], [result.ln_batch, result.ln_batch])],
                xlabel="step", ylim=(0.0, math.ceil(result.ln_batch)))
        self._draw()

    def _draw(self) -> None:
        parts = []
        if self.pair is not None:
            cos, near = self.pair[2:]
            parts.append(Text(f"cos(first, second) = {cos:.3f}", style="bold"))
            parts.append(Text("Nearest stock sentences to the first:"))
            parts.extend(Text(f"  {n.cosine:.3f}  {n.text}") for n in near)
        if self.lee is not None:
            table = Table(box=None, header_style="bold")
            for name in ("method", "Pearson", "Spearman"):
                table.add_column(name, justify="left" if name == "method" else "right")
            for r in self.lee:
                table.add_row(r.method, f"{r.pearson:.3f}", f"{r.spearman:.3f}")
            parts += [Text("Lee benchmark: 1,225 document pairs rated by people", style="bold"), table,
                      Text(lee_verdict(self.lee))]
        if self.contrastive is not None:
            parts.append(Text(contrastive_verdict(self.contrastive)))
        parts.append(Text("Enter compares the two sentences; ctrl+l runs the Lee benchmark; ctrl+t trains "
                          "InfoNCE on BBC headlines (non-commercial research text).", style="dim"))
        self.readout(Group(*parts))
        if self.pair is not None:
            self.status(f"cosine {self.pair[2]:.3f}. Enter re-embeds, ctrl+l Lee, ctrl+t InfoNCE")
