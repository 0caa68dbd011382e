"""Labs of the long-context track: what one decoded token costs as the context grows, the selective scan raced,
RoPE stretched past the small GPT's training, and SmolLM2 reading a stream through a window with and without
attention sinks. (The tiny Mamba trained beside a GPT has its own module, mamba_labs.)

The first two race the cases of ``workbench bench longctx`` (workbench_engines.longctx.bench) through
:meth:`Lab.race`; the decode lab asks for fewer contexts, the scan lab for a smaller layer, so that a run takes
seconds. The RoPE lab scores long held-out windows with each scaling of engines.longctx.rope_scaling; the sinks
lab scores one held-out stream with each cache of engines.longctx.streaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.decoding_labs import load_model
from workbench.labs.evaluation_labs import TRAINED_WINDOW
from workbench.labs.knobs import paired_keys
from workbench.widgets.plots import Figure, Series
from workbench.widgets.profile_panel import ProfilePanel
from workbench_engines.longctx.bench import size_text

SHORTEST = 1024
"""The decode lab's first context; it doubles up to the ``longest`` knob."""
DECODE_METHODS = (("softmax, KV cache", "decode softmax, KV cache", "kv cache", "softmax"),
                  ("sliding window", "decode sliding window", "sliding window", "window"),
                  ("linear attention", "decode linear attention", "linear attention", "linear"),
                  ("selective scan", "decode selective scan", "selective scan", "scan"))
"""(label, prefix of its case names in longctx.bench.decode_cases, its key in longctx.state_bytes, its short name
in the profile table), in the order drawn."""
PLOTTED = "numpy 1T"
"""The contender the decode plot follows: every case has it (it is each case's reference), so the four curves
compare the methods on one library and one thread."""


def contexts_up_to(longest: int) -> list[int]:
    """SHORTEST, 2 SHORTEST, ... up to longest: the contexts the decode lab races."""
    contexts = [SHORTEST]
    while contexts[-1] * 2 <= longest:
        contexts.append(contexts[-1] * 2)
    return contexts


def kilo(tokens: int) -> str:
    """A context as the lab names it: 16k for 16,384 tokens; a count that is no multiple of 1,024 is written out."""
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else f"{tokens:,}"


@dataclass(frozen=True)
class MethodCost:
    """One method's decode step at every context of a race: NumPy's median seconds and the bytes it keeps."""

    label: str
    seconds: list[float]
    state: list[int]
    """Bytes the layer keeps to decode the next token at each context (longctx.state_bytes, the cases' shapes)."""


def decode_costs(result: RaceResult, contexts: Sequence[int]) -> list[MethodCost]:
    """The race's rows gathered per method (DECODE_METHODS), context by context, from the PLOTTED contender."""
    from workbench_engines.longctx import state_bytes

    by_case = result.by_case()
    kept = [state_bytes(context) for context in contexts]
    costs = []
    for label, prefix, key, _ in DECODE_METHODS:
        cases = [case for name, case in by_case.items() if name.startswith(prefix)]
        if len(cases) != len(contexts):
            raise ValueError(f"{label}: {len(cases)} cases for {len(contexts)} contexts")
        costs.append(MethodCost(label, [case[PLOTTED].wall_s for case in cases], [k[key] for k in kept]))
    return costs


def short_cases(result: RaceResult, contexts: Sequence[int]) -> list:
    """The race's rows with short case names ("softmax 16k") and notes ("64.00 MiB" for "state 64.00 MiB", the
    caption saying what the note is): the compact table sets a case's name in the contender column, and the
    engine's names ("decode selective scan (d 1536, n 16), context 16,384") would widen it past 80 columns."""
    short = {}
    for _, prefix, _, name in DECODE_METHODS:
        cases = [case for case in result.by_case() if case.startswith(prefix)]
        short.update({case: f"{name} {kilo(context)}" for case, context in zip(cases, contexts)})
    return [replace(row, case=short.get(row.case, row.case), note=row.note.removeprefix("state "))
            for row in result.rows]


def decode_verdict(contexts: Sequence[int], costs: Sequence[MethodCost]) -> str:
    """What the race showed, in words: how much each method's step and memory grew from the first context to the last.

    The lesson claims that the softmax step over a full cache grows with the
    context while the two recurrent steps do not; where the times say
    otherwise (a machine too busy to tell), the sentence says so instead of
    repeating the claim.
    """
    first, last = contexts[0], contexts[-1]
    by_label = {cost.label: cost for cost in costs}
    growth = {label: cost.seconds[-1] / cost.seconds[0] for label, cost in by_label.items()}
    words = [f"From {kilo(first)} to {kilo(last)} tokens ({last // first}× the context) the softmax step took "
             f"{growth['softmax, KV cache']:.1f}× as long; its cache grew to "
             f"{size_text(by_label['softmax, KV cache'].state[-1])}."]
    linear, scan = growth["linear attention"], growth["selective scan"]
    if growth["softmax, KV cache"] > 2 * max(linear, scan) and max(linear, scan) < 2:
        words.append(f"Linear attention ×{linear:.1f} and the scan ×{scan:.1f}: their states stay "
                     f"{size_text(by_label['linear attention'].state[-1])} and "
                     f"{size_text(by_label['selective scan'].state[-1])} at any length.")
    else:
        words.append(f"This time the times did not separate (linear attention ×{linear:.1f}, scan ×{scan:.1f}): "
                     "another program may be using the cores; r races again.")
    window = by_label["sliding window"].state
    if window[-1] < window[0] * last / first:
        words.append(f"The window's cache stopped at {size_text(window[-1])}.")
    return " ".join(words)


class DecodeCostLab(Lab):
    """One decoded token per method against context length: NumPy's milliseconds, and the state or cache read."""

    DEFAULT_CSS = "DecodeCostLab Figure PlotextPlot { height: 11; }"
    BINDINGS = [Binding("r", "race", "Race"),
                *paired_keys("plus,equals_sign", "minus", "longer", "shorter", "longest", display="+/-",
                             up_help="Double the longest context", down_help="Halve the longest context")]
    longest = reactive(Initialize(lambda lab: lab.params["longest"]))
    """The last context the race decodes at (the first is SHORTEST; each next one doubles)."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="readout")
        yield ProfilePanel("r decodes one token with each method at every context (one thread).")

    def action_longer(self) -> None:
        self._step(1)

    def action_shorter(self) -> None:
        self._step(-1)

    def _step(self, step: int) -> None:
        if self.busy():
            return
        choices = self.spec.params["longest"].choices
        index = choices.index(self.longest) + step
        if not 0 <= index < len(choices):
            self.status(f"{kilo(self.longest)} is already the {'longest' if step > 0 else 'shortest'} it goes.")
            return
        self.longest = choices[index]

    def watch_longest(self, longest: int) -> None:
        slow = " (64k: about 1.5 GiB at the peak)" if longest > 32768 else ""
        self.status(f"Contexts {', '.join(kilo(c) for c in contexts_up_to(longest))}: r races, +/- the longest{slow}.")

    def action_race(self) -> None:
        contexts = contexts_up_to(self.longest)

        def cases():
            from workbench_engines.longctx.bench import decode_cases

            return decode_cases(contexts=contexts)

        self.contexts = contexts
        """The contexts of the last race, in case order."""
        self.race(cases, "Racing", self._raced)

    def _raced(self, result: RaceResult) -> None:
        self.result = result
        self.costs = decode_costs(result, self.contexts)
        """The last race per method (MethodCost), in DECODE_METHODS' order."""
        xs = [c / 1024 for c in self.contexts]
        self.query_one(Figure).lines("ms per decoded token (NumPy, 1 thread; 8 heads of 64, d 1536 × 16)",
                                     [Series(cost.label, xs, [1e3 * s for s in cost.seconds]) for cost in self.costs],
                                     xlabel="context (thousands of tokens)")
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("method", f"ms at {kilo(self.contexts[0])}", f"ms at {kilo(self.contexts[-1])}",
                     f"state at {kilo(self.contexts[-1])}"):
            table.add_column(name, justify="left" if name == "method" else "right", no_wrap=True)
        for cost in self.costs:
            table.add_row(cost.label, f"{1e3 * cost.seconds[0]:.3f}", f"{1e3 * cost.seconds[-1]:.3f}",
                          size_text(cost.state[-1]))
        self.readout(table)
        self.query_one(ProfilePanel).show(short_cases(result, self.contexts), result.baselines,
                                          "note: the state or cache the step reads; the cases of "
                                          "`workbench bench longctx` at these contexts")
        self.status(decode_verdict(self.contexts, self.costs))


class ScanRaceLab(Lab):
    """The selective scan of one layer: the C kernel at 1 and all threads, the torch loop and parallel scan, NumPy."""

    BINDINGS = [Binding("r", "race", "Race"),
                *paired_keys("d", "D", "resize('d', 2)", "resize('d', 0.5)", "d ×2/÷2",
                             up_help="Double d, the channels", down_help="Halve d, the channels"),
                *paired_keys("l", "L", "resize('L', 2)", "resize('L', 0.5)", "L ×2/÷2",
                             up_help="Double L, the tokens", down_help="Halve L, the tokens")]

    @dataclass(frozen=True)
    class Layer:
        d: int
        """Channels (d_inner): each runs its own recurrence."""
        L: int
        """Tokens: the steps of each recurrence."""

    layer = reactive(Initialize(lambda lab: ScanRaceLab.Layer(lab.params["d"], lab.params["L"])))
    """The layer the next race scans."""

    def compose_lab(self) -> ComposeResult:
        yield ProfilePanel("r races the scan of one layer: every output checked against NumPy's.")
        yield Static("", classes="readout")

    def action_resize(self, knob: str, factor: float) -> None:
        if self.busy():
            return
        spec = self.spec.params[knob]
        value = int(min(spec.max, max(spec.min, getattr(self.layer, knob) * factor)))
        if value == getattr(self.layer, knob):
            self.status(f"{knob} = {value:,} is already the {'most' if factor > 1 else 'least'} this lab takes.")
            return
        self.layer = replace(self.layer, **{knob: value})

    def watch_layer(self, layer: Layer) -> None:
        self.status(f"d {layer.d:,} channels, L {layer.L:,} tokens (batch 1, n 16): r races.")

    def action_race(self) -> None:
        layer = self.layer

        def cases():
            from workbench_engines.longctx.bench import scan_case

            return [scan_case(d=layer.d, L=layer.L)]

        self.raced = layer
        """The layer of the last race."""
        self.race(cases, "Racing", self._raced)

    def _raced(self, result: RaceResult) -> None:
        from workbench_engines.longctx import LayerShape, state_bytes

        self.result = result
        layer = self.raced
        # 80 columns hold a short case name, two ratio columns (against the torch loop and NumPy, the reference;
        # the verdict sets the parallel scan against the loop) and no note (tokens/s, which is L ÷ ms).
        shown = [replace(row, case=f"d {layer.d:,}, L {layer.L:,}", note="") for row in result.rows]
        self.query_one(ProfilePanel).show(shown, tuple(b for b in result.baselines if "parallel" not in b),
                                          "the case of `workbench bench longctx` at this lab's d and L")
        state = state_bytes(0, LayerShape(d_inner=layer.d, d_state=16))["selective scan"]
        self.state_kib = state / 1024
        """KiB of the state h a decoder carries out of the scan (batch 1, d × 16, float32)."""
        self.readout(scan_verdict(result.rows) + f"\nThe state carried to the next token: (1, {layer.d:,}, 16) float32 "
                     f"= {self.state_kib:,.1f} KiB, at any L.")


def scan_verdict(rows: Sequence) -> str:
    """The race in words: whether every output matched, the fastest contender against each other, the C kernel's
    threads against each other and the torch parallel scan against the torch loop."""
    if not rows:
        return "Nothing raced."
    by_name = {row.name: row for row in rows}
    words = []
    wrong = [row.name for row in rows if row.matches is False]
    words.append(f"Outputs that did not match NumPy's: {', '.join(wrong)}." if wrong
                 else "Every output matched NumPy's.")
    fastest = min(rows, key=lambda row: row.wall_s)
    others = [row for row in rows if row is not fastest]
    if others:
        words.append(f"Fastest: {fastest.name}, " + ", ".join(
            f"{row.wall_s / fastest.wall_s:.1f}× {row.name}" for row in sorted(others, key=lambda r: r.wall_s)) + ".")
    c_rows = sorted((row for row in rows if row.name.startswith("C ")), key=lambda r: int(r.name[2:-1]))
    if not c_rows:
        words.append("The C kernel did not load (workbench doctor says why): no C rows.")
    elif len(c_rows) > 1:
        one, many = c_rows[0], c_rows[-1]
        words.append(f"{many.name} took {many.wall_s / one.wall_s:.2f}× the time of {one.name}: the channels split "
                     "between the threads" + (", each running its own recurrence." if many.wall_s < one.wall_s else
                                              ", but the split did not pay (busy cores, or too little work)."))
    loop = next((row for name, row in by_name.items() if name.startswith("torch loop")), None)
    parallel = next((row for name, row in by_name.items() if name.startswith("torch parallel")), None)
    if loop is not None and parallel is not None:
        words.append(f"The torch parallel scan took {parallel.wall_s / loop.wall_s:.1f}× the torch loop's time"
                     + (": more arithmetic, which a CPU pays for." if parallel.wall_s > loop.wall_s else "."))
    return " ".join(words)


# ---- RoPE past its training ----------------------------------------------------------------------------------

BUCKET = 256
"""Positions per point of the curve."""


@dataclass(frozen=True)
class RopeSweep:
    """Each method's loss by position over the same long held-out windows."""

    curves: list
    """engines.longctx.rope_scaling.PositionCurve, one per method."""
    window: int
    plays: int

    def buckets(self) -> list[tuple[int, int]]:
        """[lo, hi) position ranges of BUCKET positions, the last one ending at the window."""
        return [(lo, min(lo + BUCKET, self.window)) for lo in range(1, self.window, BUCKET)]

    def inside(self, curve) -> float:
        """Perplexity over the positions training showed (1 … TRAINED_WINDOW − 1)."""
        return curve.perplexity(1, TRAINED_WINDOW)

    def far(self, curve) -> float:
        """Perplexity over the last BUCKET positions of the window."""
        return curve.perplexity(self.window - BUCKET, self.window)


def rope_verdict(sweep: RopeSweep) -> str:
    """In words, from the sweep's own numbers: how far plain RoPE breaks, which method holds, what PI costs."""
    from workbench_engines.longctx.rope_scaling import LABELS

    by = {curve.method: curve for curve in sweep.curves}
    far_range = f"{sweep.window - BUCKET:,}–{sweep.window - 1:,}"
    words = []
    if "plain" in by:
        plain = by["plain"]
        words.append(f"Plain RoPE: perplexity {sweep.inside(plain):.1f} on the positions training showed (1–"
                     f"{TRAINED_WINDOW - 1}), {sweep.far(plain):.1f} at {far_range}, "
                     f"×{sweep.far(plain) / sweep.inside(plain):.2f}.")
    stretched = [by[m] for m in ("ntk", "yarn", "pi") if m in by]
    if stretched:
        best = min(stretched, key=sweep.far)
        words.append(f"At {far_range} {LABELS[best.method]} does best: {sweep.far(best):.1f}, "
                     f"×{sweep.far(best) / sweep.inside(best):.2f} its own near positions.")
    if "pi" in by and "plain" in by:
        pi, plain = by["pi"], by["plain"]
        change = sweep.inside(pi) / sweep.inside(plain)
        words.append(f"Position interpolation without fine-tuning {'raises' if change > 1 else 'lowers'} even the "
                     f"near positions' perplexity ×{change:.2f}"
                     + (": it squeezes every pair, the fast ones too." if change > 1 else "."))
    return " ".join(words)


class RopeScalingLab(Lab):
    """The small GPT (trained on 512-token windows) read over longer windows with each RoPE scaling."""

    DEFAULT_CSS = "RopeScalingLab Figure PlotextPlot { height: 11; }"
    BINDINGS = [Binding("r", "measure", "Measure")]
    sweep = reactive(None, always_update=True)
    """The last RopeSweep."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r scores long held-out windows with each method (about fifteen seconds).", classes="readout")

    def action_measure(self) -> None:
        window, windows, plays = self.params["window"], self.params["windows"], self.params["plays"]

        def work(progress: Progress) -> RopeSweep:
            from workbench_engines.evaluation.heldout import held_out_plays
            from workbench_engines.longctx.rope_scaling import perplexity_by_position

            loaded = load_model("small-gpt", progress)
            text = held_out_plays(loaded.tokenizer, plays)
            curves = perplexity_by_position(loaded.model, text.ids, window=window, windows=windows,
                                            trained_context=TRAINED_WINDOW, progress=progress)
            return RopeSweep(curves, window, plays)

        self.start(work, lambda sweep: setattr(self, "sweep", sweep), "Scoring long windows")

    def watch_sweep(self, sweep: RopeSweep | None) -> None:
        if sweep is None:
            return
        from workbench_engines.longctx.rope_scaling import LABELS

        buckets = sweep.buckets()
        middles = [(lo + hi) / 2 for lo, hi in buckets]
        self.query_one(Figure).lines(
            f"perplexity by position, {sweep.window:,}-token windows (trained on {TRAINED_WINDOW})",
            [Series(LABELS[c.method], middles, [c.perplexity(lo, hi) for lo, hi in buckets])
             for c in sweep.curves],
            xlabel="position in the window")
        table = Table(box=None, header_style="bold")
        for name in ("method", f"1–{TRAINED_WINDOW - 1}", f"last {BUCKET}", "×"):
            table.add_column(name, justify="left" if name == "method" else "right")
        for curve in sweep.curves:
            near, far = sweep.inside(curve), sweep.far(curve)
            table.add_row(LABELS[curve.method], f"{near:.1f}", f"{far:.1f}", f"{far / near:.2f}")
        source = Text(f"{sweep.curves[0].windows} windows of {sweep.window:,} tokens, each read from position 0: the "
                      f"held-out ends of the first {sweep.plays} plays, never trained on.", style="dim")
        self.readout(Group(table, Text(rope_verdict(sweep)), source))


# ---- attention sinks -----------------------------------------------------------------------------------------

SINK_POINTS = 16
"""Points of the perplexity curve: the stream is cut into this many equal ranges of positions."""


@dataclass(frozen=True)
class SinkRun:
    """dense, window and sinks + window read over the same stream of SmolLM2 tokens."""

    curves: list
    """engines.longctx.streaming.StreamCurve, in streaming.METHODS' order."""
    tokens: int
    cache: int
    sinks: int

    def by(self, method: str):
        return next(curve for curve in self.curves if curve.method == method)

    def ranges(self) -> list[tuple[int, int]]:
        """[lo, hi) ranges of the curve's points, SINK_POINTS of them over the scored positions."""
        step = max(1, (self.tokens - 1) // SINK_POINTS)
        return [(lo, min(lo + step, self.tokens - 1)) for lo in range(0, self.tokens - 1, step)]

    def before(self, curve) -> float:
        """Perplexity while nothing has been evicted: the predictions made at tokens 0 … cache − 1."""
        return curve.perplexity(0, self.cache)

    def after(self, curve) -> float:
        """Perplexity once the cache is full and evicting: the predictions made at tokens cache … the end."""
        return curve.perplexity(self.cache, self.tokens - 1)


def sinks_verdict(run: SinkRun) -> str:
    """In words, from the run's own numbers: what evicting the first tokens costs window attention, and the sinks."""
    dense, window, sinks = (run.after(run.by(m)) for m in ("dense", "window", "sinks"))
    words = [f"After token {run.cache:,}, when the cache starts evicting, window attention reads at perplexity "
             f"{window:.1f} against dense's {dense:.1f} (×{window / dense:.2f}).",
             f"Keeping the first {run.sinks} token{'s' if run.sinks > 1 else ''} as well: {sinks:.1f} "
             f"(×{sinks / dense:.2f}), in the same {run.cache:,}-token cache."]
    if sinks < window:
        words.append(f"{window / sinks:.2f}× lower than the window alone.")
    return " ".join(words)


class AttentionSinksLab(Lab):
    """SmolLM2 reading a long stream with a full cache, a sliding window, and the window plus the first tokens."""

    DEFAULT_CSS = "AttentionSinksLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("r", "measure", "Run"),
                *paired_keys("w", "W", "cache(1)", "cache(-1)", "cache±", up_help="A larger cache (tokens kept)",
                             down_help="A smaller cache"),
                *paired_keys("s", "S", "sinks(1)", "sinks(-1)", "sinks±", up_help="Keep one more first token",
                             down_help="Keep one first token fewer")]
    cache = reactive(Initialize(lambda lab: lab.params["cache"]))
    """Tokens the window and sink caches hold at once (the sinks included)."""
    sinks = reactive(Initialize(lambda lab: lab.params["sinks"]))
    """First tokens the sinks cache keeps."""
    run = reactive(None, always_update=True)
    """The last SinkRun."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static(f"r reads {self.params['tokens']:,} held-out tokens three ways (SmolLM2, about half a minute).",
                     classes="readout")

    def action_cache(self, step: int) -> None:
        if self.busy():
            return
        choices = self.spec.params["cache"].choices  # the sizes w/W step through
        index = choices.index(self.cache) + step
        if not 0 <= index < len(choices):
            self.status(f"A cache of {self.cache:,} tokens is already the {'largest' if step > 0 else 'smallest'}.")
            return
        self.cache = choices[index]

    def action_sinks(self, step: int) -> None:
        if self.busy():
            return
        spec = self.spec.params["sinks"]
        sinks = self.sinks + step
        if not spec.min <= sinks <= spec.max:
            self.status(f"{self.sinks} sink{'s' if self.sinks > 1 else ''} is already the "
                        f"{'most' if step > 0 else 'fewest'} this lab keeps.")
            return
        self.sinks = sinks

    def _knobs(self) -> None:
        self.status(f"Cache {self.cache:,} tokens (sinks: the first {self.sinks} + the last "
                    f"{self.cache - self.sinks:,}): r runs, w/W the cache, s/S the sinks.")

    def watch_cache(self) -> None:
        self._knobs()

    def watch_sinks(self) -> None:
        self._knobs()

    def action_measure(self) -> None:
        tokens, cache, sinks = self.params["tokens"], self.cache, self.sinks
        if cache >= tokens:
            self.status(f"A cache of {cache:,} tokens never evicts in a {tokens:,}-token stream: choose a smaller one.")
            return

        def work(progress: Progress) -> SinkRun:
            from workbench_engines.evaluation.heldout import held_out_plays
            from workbench_engines.longctx.streaming import compare

            loaded = load_model("smollm2", progress)
            ids = held_out_plays(loaded.tokenizer, min(38, tokens // 1000 + 1)).ids[:tokens]  # ~1,900 a play
            if len(ids) < tokens:
                raise ValueError(f"the held-out text holds {len(ids):,} SmolLM2 tokens; the lab needs {tokens:,}")
            return SinkRun(compare(loaded.model, ids, cache=cache, sinks=sinks, progress=progress), tokens, cache,
                           sinks)

        self.start(work, lambda run: setattr(self, "run", run), "Reading the stream")

    def watch_run(self, run: SinkRun | None) -> None:
        if run is None:
            return
        from workbench_engines.longctx.streaming import LABELS

        ranges = run.ranges()
        self.query_one(Figure).lines(
            f"SmolLM2 perplexity by position, cache {run.cache:,} (sinks {run.sinks})",
            [Series(LABELS[c.method], [(lo + hi) / 2 for lo, hi in ranges], [c.perplexity(lo, hi) for lo, hi in ranges])
             for c in run.curves],
            xlabel="position in the stream")
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("method", "cache", "K,V MiB", f"ppl <{run.cache}", "ppl after", "× dense"):
            table.add_column(name, justify="left" if name == "method" else "right", no_wrap=True)
        dense = run.after(run.by("dense"))
        for curve in run.curves:
            kept = "all" if curve.method == "dense" else f"{curve.sinks}+{curve.cache - curve.sinks}" \
                if curve.sinks else f"{curve.cache}"
            after = run.after(curve)
            table.add_row(LABELS[curve.method], kept, f"{curve.cache_bytes / 2**20:.2f}", f"{run.before(curve):.1f}",
                          f"{after:.1f}", f"{after / dense:.2f}")
        source = Text(f"{run.tokens:,} tokens of the plays' held-out ends; K,V: float32, all 30 layers, at the "
                      "stream's end.", style="dim")
        self.readout(Group(table, Text(sinks_verdict(run)), source))
