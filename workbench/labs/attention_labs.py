"""Labs of the Attention track: attention by hand, and a real model's heads on the learner's sentence."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static
from textual_plotext import PlotextPlot

from workbench.labs.base import Lab, Progress

# Shades for weights in [0, 1]: readable without colour, two cells wide.
SHADES = ((0.6, "██"), (0.35, "▓▓"), (0.15, "▒▒"), (0.05, "░░"), (0.0, "··"))
MAX_TOKENS = 28


def shade(weight: float) -> str:
    return next(cell for floor, cell in SHADES if weight >= floor)


def heatmap(weights: np.ndarray, tokens: list[str], title: str) -> Table:
    """Rows are queries, columns keys; each cell shades the weight the row gives the column."""
    table = Table(box=None, pad_edge=False, padding=(0, 0), title=title, title_justify="left", show_header=True)
    table.add_column("", no_wrap=True, max_width=10)
    for k, _ in enumerate(tokens):
        table.add_column(f" {k % 10}", no_wrap=True, width=2)
    for i, token in enumerate(tokens):
        table.add_row(f"{i:>2} {token[:7]}", *(shade(float(w)) for w in weights[i, : len(tokens)]))
    table.caption = "row = query, column = key (its row number's last digit); ██ ≥ .6 ▓▓ ≥ .35 ▒▒ ≥ .15 ░░ ≥ .05"
    return table


class HeadsLab(Lab):
    """all-MiniLM-L6-v2's attention weights on the learner's sentence, layer by layer, head by head."""

    BINDINGS = [
        Binding("right_square_bracket", "move(1, 0)", "Next layer"),
        Binding("left_square_bracket", "move(-1, 0)", "Prev layer"),
        Binding("full_stop", "move(0, 1)", "Next head"),
        Binding("comma", "move(0, -1)", "Prev head"),
    ]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.layer_index, self.head_index = params["layer"], params["head"]
        self.model = None
        self.result: tuple[np.ndarray, list[str]] | None = None

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["text"], placeholder="a sentence; Enter runs the model")
        yield Static("Loading all-MiniLM-L6-v2…", classes="readout")

    def on_mount(self) -> None:
        self._analyse(self.params["text"])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._analyse(event.value)
        self.focus()  # hand the keys to the lab: [ ] and , . move through layers and heads

    def _analyse(self, text: str) -> None:

        def work(progress: Progress):
            from workbench_engines.models.minilm import load

            progress(0.1, "loading all-MiniLM-L6-v2")
            model = load()
            progress(0.6, "running the encoder")
            ids, mask, tokens = model.encode_texts([text])
            out = model.forward(ids[:, :MAX_TOKENS], mask[:, :MAX_TOKENS], output_attentions=True)
            return np.stack([a[0] for a in out.attentions]), tokens[0][:MAX_TOKENS]

        self.start(work, self._shown, "Running all-MiniLM-L6-v2")

    def _shown(self, result: tuple[np.ndarray, list[str]]) -> None:
        self.result = result
        self.status("[ ] change the layer, , . change the head (Tab here from the text box).")
        self.redraw()

    def action_move(self, layer: int, head: int) -> None:
        if self.result is None:
            return
        weights = self.result[0]
        self.layer_index = (self.layer_index + layer) % weights.shape[0]
        self.head_index = (self.head_index + head) % weights.shape[1]
        self.redraw()

    def redraw(self) -> None:
        weights, tokens = self.result  # type: ignore[misc]
        w = weights[self.layer_index, self.head_index]
        focus = [tokens[int(np.argmax(w[i, : len(tokens)]))] for i in range(len(tokens))]
        title = f"layer {self.layer_index + 1} of {weights.shape[0]}, head {self.head_index + 1} of {weights.shape[1]}"
        readout = Text()
        readout.append(f"{len(tokens)} tokens; each row's strongest key: ", style="dim")
        readout.append(", ".join(f"{t}→{f}" for t, f in zip(tokens[:8], focus[:8])) + ("…" if len(tokens) > 8 else ""))
        self.query_one(".readout", Static).update(Group(heatmap(w, tokens, title), readout))


class ByHandLab(Lab):
    """Attention for one query over a few keys, every intermediate shown; +/- scales the query."""

    BINDINGS = [
        Binding("plus,equals_sign", "scale(2.0)", "Query ×2"),
        Binding("minus", "scale(0.5)", "Query ÷2"),
        Binding("0", "reset", "Reset"),
    ]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.factor = 1.0

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def action_scale(self, factor: float) -> None:
        self.factor = float(np.clip(self.factor * factor, 1 / 64, 64))
        self.redraw()

    def action_reset(self) -> None:
        self.factor = 1.0
        self.redraw()

    def redraw(self) -> None:
        from workbench_engines.attention import attention

        p = self.params
        keys = np.asarray(p["keys"], dtype=np.float64).reshape(-1, len(p["query"]))
        values = np.asarray(p["values"], dtype=np.float64).reshape(len(keys), -1)
        query = np.asarray(p["query"], dtype=np.float64) * self.factor
        d = len(query)
        scores = keys @ query
        scaled = scores / np.sqrt(d)
        weights = np.exp(scaled - scaled.max())
        weights /= weights.sum()
        out = weights @ values
        engine = attention(query[None, None, None], keys[None, None], values[None, None])[0, 0, 0]
        table = Table(box=None, header_style="bold", title=f"query q = {np.round(query, 3).tolist()}  (d = {d})",
                      title_justify="left")
        for name in ("key", "k", "q·k", "q·k/√d", "weight", "v"):
            table.add_column(name, justify="right")
        labels = p["labels"] if len(p["labels"]) == len(keys) else [str(i) for i in range(len(keys))]
        for i, label in enumerate(labels):
            table.add_row(label, str(np.round(keys[i], 2).tolist()), f"{scores[i]:.3f}", f"{scaled[i]:.3f}",
                          f"{weights[i]:.3f}", str(np.round(values[i], 2).tolist()))
        table.caption = (f"output = Σ weight·v = {np.round(out, 3).tolist()}   (workbench_engines.attention: "
                         f"{np.round(engine, 3).tolist()})")
        self.query_one(".readout", Static).update(table)


class FlashRaceLab(Lab):
    """Naive vs flash (and torch, NumPy) as the sequence grows: time and the memory each one needs."""

    DEFAULT_CSS = """
    FlashRaceLab PlotextPlot { height: 12; }
    """
    BINDINGS = [Binding("r", "race", "Race")]

    def compose_lab(self) -> ComposeResult:
        yield Static("Press r to race the kernels (one thread each).", classes="readout")
        yield PlotextPlot()

    def action_race(self) -> None:
        seqs = sorted({int(s) for s in self.params["seqs"]})
        causal = self.params["causal"]
        self.start(lambda progress: flash_race(seqs, causal, progress), self._raced, "Racing attention kernels")

    def _raced(self, rows: list[tuple[str, int, float, float | None]]) -> None:
        plt = self.fresh_plot()
        for name in dict.fromkeys(r[0] for r in rows):
            mine = [r for r in rows if r[0] == name]
            plt.plot([np.log2(r[1]) for r in mine], [r[2] * 1e3 for r in mine], label=name, marker="braille")
        seqs = sorted({r[1] for r in rows})
        plt.xticks([np.log2(s) for s in seqs], [str(s) for s in seqs])
        plt.xlabel("sequence length")
        plt.title("milliseconds per forward (batch 1, 8 heads, dim 64)")
        self.refresh_plot()
        table = Table(box=None, header_style="bold")
        for name in ("contender", "seq", "ms", "peak MiB"):
            table.add_column(name, justify="left" if name == "contender" else "right")
        for name, seq, seconds, peak in rows:
            table.add_row(name, str(seq), f"{seconds * 1e3:.2f}", "n/a" if peak is None else f"{peak / 2**20:.1f}")
        table.caption = "peak memory from tracemalloc: NumPy arrays incl. the C workspace; torch's allocator is not visible"
        self.query_one(".readout", Static).update(table)
        self.status("Flash keeps a few tiles per thread; naive holds every score. Compare the two peak columns.")


def flash_race(seqs: list[int], causal: bool, progress: Progress) -> list[tuple[str, int, float, float | None]]:
    """(contender, seq, median seconds of 3, peak bytes or None) on the same random q, k, v."""
    from workbench_engines.nativelib import native_status

    contenders: list[tuple[str, dict, bool]] = [("torch SDPA", {"backend": "torch"}, False)]
    if native_status().loaded:
        contenders += [("C naive", {"backend": "native", "kernel": "naive", "threads": 1}, True),
                       ("C flash", {"backend": "native", "kernel": "flash", "threads": 1}, True)]
    contenders.append(("NumPy", {"backend": "reference"}, True))
    import torch

    rng = np.random.default_rng()
    rows = []
    steps = len(seqs) * len(contenders)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread each, like the C kernels here
    try:
        _race_all(seqs, causal, contenders, rng, rows, steps, progress)
    finally:
        torch.set_num_threads(previous_threads)
    progress(1.0, "done")
    return rows


def _race_all(seqs, causal, contenders, rng, rows, steps, progress) -> None:
    import time

    from workbench_engines.attention import attention
    from workbench_engines.profiling.profile import peak_memory

    for s_index, seq in enumerate(seqs):
        q, k, v = (rng.standard_normal((1, 8, seq, 64)).astype(np.float32) for _ in range(3))
        for c_index, (name, kwargs, visible) in enumerate(contenders):
            progress((s_index * len(contenders) + c_index) / steps, f"{name} at {seq}")
            if name == "NumPy" and seq > 2048:
                continue
            run = lambda: attention(q, k, v, causal=causal, **kwargs)  # noqa: E731 - the timed call
            run()
            times = []
            for _ in range(3):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            peak = peak_memory(run)[1] if visible else None
            rows.append((name, seq, sorted(times)[1], peak))


def mask_grid(keep: np.ndarray, title: str) -> Table:
    """A boolean [lq, lk] mask drawn as ██ (may attend) and ·· (masked)."""
    table = Table(box=None, pad_edge=False, padding=(0, 0), title=title, title_justify="left")
    table.add_column("", no_wrap=True)
    for k in range(keep.shape[1]):
        table.add_column(f" {k % 10}", no_wrap=True, width=2)
    for i in range(keep.shape[0]):
        table.add_row(f"{i:>2} ", *("██" if a else "··" for a in keep[i]))
    return table


class MaskLab(Lab):
    """Masks drawn as grids, and the causal property checked live: change a future token, see what moves."""

    BINDINGS = [
        Binding("c", "toggle_causal", "Causal on/off"),
        Binding("plus,equals_sign", "window(1)", "Window +1"),
        Binding("minus", "window(-1)", "Window -1"),
        Binding("right", "token(1)", "Perturb later"),
        Binding("left", "token(-1)", "Perturb earlier"),
    ]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.causal = params["causal"]
        self.window = params["window"]
        self.perturbed = params["seq"] // 2

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def action_toggle_causal(self) -> None:
        self.causal = not self.causal
        self.redraw()

    def action_window(self, delta: int) -> None:
        self.window = max(0, min(self.params["seq"], self.window + delta))
        self.redraw()

    def action_token(self, delta: int) -> None:
        self.perturbed = (self.perturbed + delta) % self.params["seq"]
        self.redraw()

    def redraw(self) -> None:
        from workbench_engines.attention import attention
        from workbench_engines.attention.reference import allowed_mask

        n = self.params["seq"]
        window = self.window or None
        keep = allowed_mask(n, n, causal=self.causal, window=window)
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal((1, 1, n, 16)).astype(np.float32) for _ in range(3))
        before = attention(q, k, v, causal=self.causal, window=window)
        k2, v2 = k.copy(), v.copy()
        k2[0, 0, self.perturbed] += 3.0
        v2[0, 0, self.perturbed] += 3.0
        after = attention(q, k2, v2, causal=self.causal, window=window)
        change = np.abs(after - before).max(axis=-1)[0, 0]
        moved = Text()
        moved.append(f"Changed the key and value of token {self.perturbed}; outputs that moved: ", style="bold")
        moved.append(" ".join(str(i) for i in range(n) if change[i] > 1e-6) or "none")
        kind = ("causal" if self.causal else "full") + (f", window {self.window}" if self.window else "")
        self.query_one(".readout", Static).update(Group(mask_grid(keep, f"{kind}: row = query, column = key"), moved))
        self.status("c toggles causal, +/- the window (0 = none), ←/→ picks the token to change.")


class GroupedHeadsLab(Lab):
    """Multi-, grouped- and multi-query attention: the KV cache each needs and the time one decoding step takes."""

    DEFAULT_CSS = """
    GroupedHeadsLab PlotextPlot { height: 10; }
    """
    BINDINGS = [Binding("r", "race", "Measure")]

    def compose_lab(self) -> ComposeResult:
        yield Static("Press r to measure one decoding step for each number of key/value heads.", classes="readout")
        yield PlotextPlot()

    def action_race(self) -> None:
        params = dict(self.params)
        self.start(lambda progress: grouped_heads_race(params, progress), self._shown, "Timing decode steps")

    def _shown(self, rows: list[tuple[int, float, float]]) -> None:
        plt = self.fresh_plot()
        plt.bar([str(kv) for kv, _, _ in rows], [t * 1e3 for _, t, _ in rows])
        plt.xlabel("key/value heads (query heads fixed)")
        plt.title("ms for one query token against the cache")
        self.refresh_plot()
        heads = self.params["heads"]
        table = Table(box=None, header_style="bold")
        for name in ("kv heads", "kind", "ms / step", "KV cache MiB"):
            table.add_column(name, justify="right")
        for kv, seconds, mib in rows:
            kind = "MHA" if kv == heads else "MQA" if kv == 1 else f"GQA {heads // kv}:1"
            table.add_row(str(kv), kind, f"{seconds * 1e3:.3f}", f"{mib:.1f}")
        table.caption = f"{heads} query heads, cache of {self.params['cache']} tokens, head dim 64, fp32, one layer"
        self.query_one(".readout", Static).update(table)


def grouped_heads_race(params: dict[str, Any], progress: Progress) -> list[tuple[int, float, float]]:
    """(kv heads, median seconds of one decode step, KV cache MiB) for kv heads dividing the query heads."""
    import time

    from workbench_engines.attention import attention
    from workbench_engines.nativelib import native_status

    heads, cache = params["heads"], params["cache"]
    backend = "native" if native_status().loaded else "reference"
    rng = np.random.default_rng()
    options = [kv for kv in (1, 2, 4, 8, 16, 32) if kv <= heads and heads % kv == 0]
    rows = []
    for n, kv in enumerate(options):
        progress(n / len(options), f"{kv} key/value heads")
        q = rng.standard_normal((1, heads, 1, 64)).astype(np.float32)
        k, v = (rng.standard_normal((1, kv, cache, 64)).astype(np.float32) for _ in range(2))
        kwargs = {"backend": backend, **({"threads": 1} if backend == "native" else {})}
        attention(q, k, v, **kwargs)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            attention(q, k, v, **kwargs)
            times.append(time.perf_counter() - start)
        rows.append((kv, sorted(times)[2], 2 * kv * cache * 64 * 4 / 2**20))
    progress(1.0, "done")
    return rows
