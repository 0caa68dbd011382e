"""Labs of the Attention track: attention by hand, a real model's heads, flash against naive, masks, GQA."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Input, Static

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.knobs import paired_keys, plus_minus_keys
from workbench.widgets.heat_grid import LEGEND, HeatGrid
from workbench.widgets.plots import Figure, Series
from workbench.widgets.profile_panel import ProfilePanel

MAX_TOKENS = 28


@dataclass(frozen=True)
class HeadChoice:
    layer: int
    head: int


class HeadsLab(Lab):
    """all-MiniLM-L6-v2's attention weights on the learner's sentence, layer by layer, head by head."""

    BINDINGS = [
        *paired_keys("right_square_bracket", "left_square_bracket", "move(1, 0)", "move(-1, 0)", "layer±",
                     display="]/[", up_help="Next layer", down_help="Previous layer"),
        *paired_keys("full_stop", "comma", "move(0, 1)", "move(0, -1)", "head±", display="./,",
                     up_help="Next head", down_help="Previous head"),
    ]
    shown = reactive(Initialize(lambda lab: HeadChoice(lab.params["layer"], lab.params["head"])))
    """The layer and head drawn."""
    maps = reactive(None, always_update=True)
    """The model's AttentionMaps on the sentence, once computed."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["text"], placeholder="a sentence; Enter runs the model")
        yield HeatGrid("Loading all-MiniLM-L6-v2…")
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self._analyse(self.params["text"])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._analyse(event.value)
        self.focus()  # hand the keys to the lab: [ ] and , . move through layers and heads

    def _analyse(self, text: str) -> None:
        def work(progress: Progress):
            from workbench_engines.attention.explain import minilm_attention

            progress(0.1, "running all-MiniLM-L6-v2")
            return minilm_attention(text, MAX_TOKENS)

        self.start(work, self._computed, "Running all-MiniLM-L6-v2")

    def _computed(self, maps) -> None:
        self.maps = maps
        self.status("[ ] change the layer, , . change the head (Tab here from the text box).")

    def action_move(self, layer: int, head: int) -> None:
        if self.maps is not None:
            layers, heads = self.maps.weights.shape[:2]
            self.shown = HeadChoice((self.shown.layer + layer) % layers, (self.shown.head + head) % heads)

    def watch_shown(self) -> None:
        self._draw()

    def watch_maps(self) -> None:
        self._draw()

    def _draw(self) -> None:
        maps, at = self.maps, self.shown
        if maps is None:
            return
        layers, heads = maps.weights.shape[:2]
        tokens = maps.tokens
        self.query_one(HeatGrid).show(
            maps.weights[at.layer, at.head], row_labels=tokens,
            title=f"layer {at.layer + 1} of {layers}, head {at.head + 1} of {heads}",
            caption=f"row = query, column = key (its row number's last digit); {LEGEND}")
        strongest = maps.strongest_keys(at.layer, at.head)
        readout = Text()
        readout.append(f"{len(tokens)} tokens; each row's strongest key: ", style="dim")
        readout.append(", ".join(f"{t}→{f}" for t, f in zip(tokens[:8], strongest[:8])) + ("…" if len(tokens) > 8 else ""))
        self.readout(readout)


class ByHandLab(Lab):
    """Attention for one query over a few keys, every intermediate shown; +/- scales the query."""

    BINDINGS = [
        *plus_minus_keys("scale(2.0)", "scale(0.5)", "Query ×2/÷2"),
        Binding("0", "reset", "Reset"),
    ]
    factor = reactive(1.0)
    """What the query is multiplied by."""

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def action_scale(self, factor: float) -> None:
        self.factor = float(np.clip(self.factor * factor, 1 / 64, 64))

    def action_reset(self) -> None:
        self.factor = 1.0

    def watch_factor(self, factor: float) -> None:
        from workbench_engines.attention.explain import one_query

        p = self.params
        steps = one_query(np.asarray(p["query"]) * factor, p["keys"], p["values"])
        d = len(steps.query)
        table = Table(box=None, header_style="bold", title=f"query q = {np.round(steps.query, 3).tolist()}  (d = {d})",
                      title_justify="left")
        for name in ("key", "k", "q·k", "q·k/√d", "weight", "v"):
            table.add_column(name, justify="right")
        labels = p["labels"] if len(p["labels"]) == len(steps.keys) else [str(i) for i in range(len(steps.keys))]
        for i, label in enumerate(labels):
            table.add_row(label, str(np.round(steps.keys[i], 2).tolist()), f"{steps.scores[i]:.3f}",
                          f"{steps.scaled[i]:.3f}", f"{steps.weights[i]:.3f}", str(np.round(steps.values[i], 2).tolist()))
        table.caption = (f"output = Σ weight·v = {np.round(steps.output, 3).tolist()}   "
                         "(workbench_engines.attention, reference backend)")
        self.readout(table)


class FlashRaceLab(Lab):
    """Naive vs flash (and torch, NumPy) as the sequence grows: time and the memory each one needs."""

    DEFAULT_CSS = """
    FlashRaceLab Figure PlotextPlot { height: 11; }
    """
    BINDINGS = [Binding("r", "race", "Race")]

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield ProfilePanel("Press r to race the kernels (one thread each).")
        yield Static("", classes="readout")

    def action_race(self) -> None:
        seqs = sorted({int(s) for s in self.params["seqs"]})
        causal = self.params["causal"]

        def cases():
            from workbench_engines.attention.bench import race_case
            from workbench_engines.profiling.machine import matmul_case

            rng = np.random.default_rng()
            # torch's fp32 matmul last: the core's multiply-add rate, for the roofline point.
            return [race_case(seq, causal, (1,), rng) for seq in seqs] + [matmul_case((1,))]

        self.seqs = seqs
        """The sequence lengths of the last race, in case order."""
        self.race(cases, "Racing attention kernels", self._raced)

    def _raced(self, result: RaceResult) -> None:
        from workbench_engines.profiling.machine import PEAK_CASE

        self.result = result
        by_case = [case for name, case in result.by_case().items() if not name.startswith(PEAK_CASE)]
        races = [row for case in by_case for row in case.values()]
        peak = next((row for row in result.rows if row.case.startswith(PEAK_CASE)), None)
        # The native kernels (the lesson's naive and flash) first: where curves coincide, the first-named shows.
        names = sorted(dict.fromkeys(row.name for row in races), key=lambda name: not name.startswith("native"))
        # Times span three decades: log axes drawn by hand (textual-plotext draws no lines on log scales).
        series = []
        for name in names:
            points = [(seq, case[name].wall_s) for seq, case in zip(self.seqs, by_case) if name in case]
            series.append(Series(name, [float(np.log2(s)) for s, _ in points],
                                 [float(np.log10(t * 1e3)) for _, t in points]))
        decades = range(int(np.floor(np.log10(min(r.wall_s for r in races) * 1e3))),
                        int(np.ceil(np.log10(max(r.wall_s for r in races) * 1e3))) + 1)
        self.query_one(Figure).lines(
            "ms per forward, log scale (batch 1, 8 heads, dim 64, 1 thread)", series,
            xlabel="sequence length (log scale)",
            xticks=([float(np.log2(s)) for s in self.seqs], [str(s) for s in self.seqs]),
            yticks=(list(decades), [f"{10.0 ** d:g}" for d in decades]))
        self.query_one(ProfilePanel).show(result.rows, result.baselines,
                                          "the same cases as `workbench bench attention`, at one thread")
        self.status(memory_growth(self.seqs, by_case) + "\n" + roofline_point(self.seqs[-1], by_case[-1], peak))


def roofline_point(seq: int, case: dict, peak) -> str:
    """Where the flash kernel stands at the longest sequence: its GFLOP/s as a share of torch's fp32 matmul on
    the same core in the same run (flash attention does enough work per byte to be bound by the FMA units)."""
    flash, sdpa = case.get("native flash 1T"), case.get("torch SDPA 1T")
    if flash is None or peak is None or not peak.gflops:
        return "Roofline point: needs the native flash kernel and torch's matmul in the same race."
    text = (f"Roofline point at {seq:,} tokens: native flash {flash.gflops:.1f} GFLOP/s, "
            f"{100 * flash.gflops / peak.gflops:.0f}% of this core's fp32 matmul ({peak.gflops:.1f} GFLOP/s)")
    if sdpa is not None:
        text += f"; torch SDPA {100 * sdpa.gflops / peak.gflops:.0f}%"
    return text + "."


def memory_growth(seqs: list[int], by_case: list[dict]) -> str:
    """Each contender's measured peak memory growth per doubling of the sequence, and what 4× and 2× mean.

    Between lengths s0 and s1 the factor per doubling is (peak1 / peak0)^(1 / log2(s1 / s0)). Scores are
    S×S (×4 per doubling), the output S×d (×2): a factor near 4 means the scores dominate its memory.
    """
    lines = []
    for name in dict.fromkeys(name for case in by_case for name in case):
        peaks = [(seq, case[name].peak_bytes) for seq, case in zip(seqs, by_case)
                 if name in case and case[name].peak_bytes]
        factors = [f"×{(b / a) ** (1 / math.log2(s1 / s0)):.1f}" for (s0, a), (s1, b) in zip(peaks, peaks[1:])
                   if s1 > s0]
        if factors:
            lines.append(f"{name} {' '.join(factors)}")
    if not lines:
        if len(seqs) < 2:
            return "Race two or more sequence lengths to see how each kernel's memory grows."
        return "No peak memory was measured (torch's allocations are invisible to tracemalloc)."
    return ("Peak memory per doubling: " + "; ".join(lines) + ". Scores grow ×4 per doubling, the output ×2: "
            "near 4 the S×S scores dominate a kernel's memory, near 2 only the output grows.")


class MaskLab(Lab):
    """Masks drawn as grids, and the causal property checked live: change a token, see which outputs move."""

    BINDINGS = [
        Binding("c", "toggle_causal", "Causal", tooltip="Causal mask on/off"),
        *plus_minus_keys("window(1)", "window(-1)", "window±"),
        *paired_keys("right_square_bracket", "left_square_bracket", "token(1)", "token(-1)", "token±",
                     display="]/[", up_help="Change a later token", down_help="Change an earlier token"),
    ]

    @dataclass(frozen=True)
    class State:
        causal: bool
        window: int
        """0 = no window."""
        changed_token: int

    state = reactive(Initialize(lambda lab: MaskLab.State(lab.params["causal"], lab.params["window"],
                                                          lab.params["seq"] // 2)))

    def compose_lab(self) -> ComposeResult:
        yield HeatGrid()
        yield Static("", classes="readout")

    def action_toggle_causal(self) -> None:
        self.state = replace(self.state, causal=not self.state.causal)

    def action_window(self, delta: int) -> None:
        self.state = replace(self.state, window=max(0, min(self.params["seq"], self.state.window + delta)))

    def action_token(self, delta: int) -> None:
        self.state = replace(self.state, changed_token=(self.state.changed_token + delta) % self.params["seq"])

    def watch_state(self, state: State) -> None:
        from workbench_engines.attention.explain import mask_effect

        effect = mask_effect(self.params["seq"], causal=state.causal, window=state.window or None,
                             changed_token=state.changed_token)
        self.effect = effect
        """The last MaskEffect drawn."""
        kind = ("causal" if state.causal else "full") + (f", window {state.window}" if state.window else "")
        self.query_one(HeatGrid).show(effect.keep, title=f"{kind}: row = query, column = key",
                                      caption="██ may attend   ·· masked")
        moved = Text()
        moved.append(f"Changed the key and value of token {effect.changed_token}; outputs that moved: ", style="bold")
        moved.append(" ".join(map(str, effect.moved)) or "none")
        self.readout(moved)
        self.status("c toggles causal, +/- the window (0 = none), [ ] picks the token to change.")


class GroupedHeadsLab(Lab):
    """Multi-, grouped- and multi-query attention: the KV cache each needs and the time one decoding step takes."""

    DEFAULT_CSS = """
    GroupedHeadsLab Figure PlotextPlot { height: 9; }
    """
    BINDINGS = [Binding("r", "race", "Measure")]

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield ProfilePanel("Press r to time one decoding step for each number of key/value heads.")

    def action_race(self) -> None:
        heads, cached = self.params["heads"], self.params["cache"]
        options = tuple(kv for kv in (heads, 32, 16, 8, 4, 2, 1) if kv <= heads and heads % kv == 0)
        self.options = tuple(dict.fromkeys(options))
        """The key/value head counts of the last race, in contender order."""

        def cases():
            from workbench_engines.attention.bench import decode_step_case

            return [decode_step_case(heads, cached, self.options, np.random.default_rng())]

        self.race(cases, "Timing decode steps", self._raced, repeats=7)

    def _raced(self, result: RaceResult) -> None:
        self.result = result
        self.query_one(Figure).bars("ms for one query token against the cache", [str(kv) for kv in self.options],
                                    [row.wall_s * 1e3 for row in result.rows],
                                    xlabel="key/value heads (query heads fixed)")
        self.query_one(ProfilePanel).show(
            result.rows, result.baselines,
            "one layer, head dim 64, fp32; the K/V heads are copies of one set, so every output matches "
            "exactly and only the bytes read differ")
