"""Labs of the KV cache and serving track: the cache's speed-up, its memory, paging, speculative decoding."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.knobs import cycled, paired_keys
from workbench.labs.decoding_labs import load_model, load_target
from workbench.widgets.plots import Figure, Series
from workbench.widgets.profile_panel import ProfilePanel

PROMPT = "**HAMLET**  \nTo be, or not to be, that is the question:  \n"


class CacheSpeedupLab(Lab):
    """Generate with and without a KV cache at growing lengths; plot milliseconds per token."""

    DEFAULT_CSS = "CacheSpeedupLab Figure PlotextPlot { height: 12; }"
    BINDINGS = [Binding("r", "race", "Race")]

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield ProfilePanel("r generates each length with and without the cache (the longest takes a few seconds).")

    def action_race(self) -> None:
        lengths = sorted({int(n) for n in self.params["lengths"]})

        def cases():
            from workbench_engines.generation.bench import generation_case

            pretrained = load_target()
            ids = pretrained.prompt_ids(PROMPT)
            return [generation_case(pretrained.model, ids, n, caches=("none", "contiguous")) for n in lengths]

        self.lengths = lengths
        """The lengths of the last race, in case order."""
        self.race(cases, "Racing", self._raced)

    def _raced(self, result: RaceResult) -> None:
        self.result = result
        cases = list(result.by_case().values())
        self.query_one(Figure).lines("milliseconds per generated token", [
            Series(name, self.lengths, [1e3 * case[name].wall_s / n for n, case in zip(self.lengths, cases)])
            for name in ("no cache", "contiguous cache")], xlabel="tokens generated")
        self.query_one(ProfilePanel).show(result.rows, result.baselines,
                                          "greedy: both must produce the same tokens (matches); the same cases as "
                                          "`workbench bench decode`")


class CacheMemoryLab(Lab):
    """KV-cache bytes against context length for published model shapes; keys change dtype and batch."""

    DEFAULT_CSS = "CacheMemoryLab Figure PlotextPlot { height: 12; }"
    BINDINGS = [Binding("d", "dtype", "Next dtype"), *paired_keys("b", "B", "batch(2)", "batch(0.5)", "batch ×2/÷2")]

    @dataclass(frozen=True)
    class State:
        dtype: str
        batch: int

    state = reactive(Initialize(lambda lab: CacheMemoryLab.State(lab.params["dtype"], lab.params["batch"])))

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="readout")

    def action_dtype(self) -> None:
        from workbench_engines.kvcache import DTYPE_BYTES

        dtypes = list(DTYPE_BYTES)
        self.state = replace(self.state, dtype=cycled(dtypes, self.state.dtype))

    def action_batch(self, factor: float) -> None:
        self.state = replace(self.state, batch=int(min(256, max(1, self.state.batch * factor))))

    def watch_state(self, state: State) -> None:
        from workbench_engines.kvcache import REAL_MODELS

        models = [REAL_MODELS[name] for name in self.params["models"]]
        lengths = [2**i for i in range(8, 16)]
        # A log axis: on a linear one the small models' lines lay in the same bottom row, one wholly hidden.
        gib = np.log10([[m.bytes_per_token(state.dtype) * n * state.batch / 2**30 for n in lengths] for m in models])
        decades = range(int(np.floor(gib.min())), int(np.ceil(gib.max())) + 1)
        self.query_one(Figure).lines(
            f"KV cache GiB (log scale), {state.dtype}, batch {state.batch}",
            [Series(model.name, [float(np.log2(n)) for n in lengths], row.tolist()) for model, row in zip(models, gib)],
            xlabel="context length (tokens, log scale)", hint="d: dtype, b/B: batch",
            xticks=([float(np.log2(n)) for n in lengths], [f"{n // 1024}k" if n >= 1024 else str(n) for n in lengths]),
            yticks=(list(decades), [f"{10.0 ** d:g}" for d in decades]))
        table = Table(box=None, header_style="bold")
        for name in ("model", "layers", "KV heads", "head dim", "KiB / token", "at its context"):
            table.add_column(name, justify="left" if name == "model" else "right")
        for m in models:
            per = m.bytes_per_token(state.dtype)
            table.add_row(m.name, str(m.layers), str(m.kv_heads), str(m.head_dim), f"{per / 1024:g}",
                          f"{per * m.context * state.batch / 2**30:.2f} GiB ({m.context // 1024}k)")
        self.readout(table)


REQUESTS = [
    "The King's court: answer briefly.\n**HAMLET**  \n",
    "The King's court: answer briefly.\n**OPHELIA**  \n",
    "The King's court: answer briefly.\n**HAMLET**  \nAy, my lord",
    "A wood near Athens.\n**PUCK**  \n",
    "The King's court: answer briefly.\n**POLONIUS**  \n",
    "A wood near Athens.\n**OBERON**  \n",
]


@dataclass(frozen=True)
class Live:
    sequence: int
    label: str


class PagedLab(Lab):
    """Requests arrive one by one into a paged cache run by the real model; watch block tables and sharing."""

    BINDINGS = [Binding("s", "send", "Send"), Binding("f", "finish", "Finish"),
                Binding("z", "reset", "Reset")]
    headline = reactive("s sends the next request (a prompt plus a few generated tokens); f finishes the oldest.",
                        always_update=True)
    """What just happened; the readout redraws the cache under it."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.cache = None
        self.live: list[Live] = []
        self.arrived = 0

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def action_reset(self) -> None:
        self.cache, self.live, self.arrived = None, [], 0
        self.headline = "Reset. s sends the first request."

    def action_send(self) -> None:
        index = self.arrived
        prompt_text = REQUESTS[index % len(REQUESTS)]
        block_size, new_tokens, blocks = self.params["block_size"], self.params["new_tokens"], self.params["blocks"]

        def work(progress: Progress):
            from workbench_engines.kvcache import PagedCache, serve_request

            pretrained = load_target(progress)
            if self.cache is None:
                self.cache = PagedCache(pretrained.config, blocks, block_size)
            progress(0.5, "prefill and decode")
            return serve_request(pretrained.model, self.cache, pretrained.prompt_ids(prompt_text), new_tokens)

        self.arrived += 1
        self.start(work, lambda served: self._arrived(served, index), "Serving")

    def _arrived(self, served, index: int) -> None:
        self.live.append(Live(served.sequence, f"req {index + 1}"))
        self.headline = (f"req {index + 1}: {served.prompt_tokens} prompt tokens, {served.cached_tokens} found in the "
                         "prefix cache")

    def action_finish(self) -> None:
        if not self.live or self.cache is None or self.running:
            self.status("Nothing to finish." if not self.live else "Wait for the request being served.")
            return
        oldest = self.live.pop(0)
        self.cache.free(oldest.sequence)
        self.headline = f"{oldest.label} finished: its blocks go back to the free list (full ones stay findable by hash)"

    def watch_headline(self, headline: str) -> None:
        cache = self.cache
        if cache is None:
            self.readout(headline)
            return
        shared = {b for b, r in enumerate(cache.pool.refs) if r > 1}
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("request", no_wrap=True)
        table.add_column("tokens", justify="right")
        table.add_column("block table (* = shared)", no_wrap=True)
        for live in self.live:
            cells = " ".join(f"{b}{'*' if b in shared else ''}" for b in cache.block_table(live.sequence))
            table.add_row(live.label, str(cache.sequences[live.sequence].length), cells[:58])
        memory, stats = cache.memory(), cache.stats
        summary = Text(
            f"{headline}\npool: {cache.pool.used} of {cache.pool.num_blocks} blocks in use, "
            f"{len(cache.pool.by_hash)} full blocks indexed by prefix hash\n"
            f"prefix cache: {stats.hits} block hits, {stats.misses} misses; copy-on-write copies: {stats.copies}\n"
            f"allocated {memory.allocated / 1024:.0f} KiB, holding tokens {memory.stored / 1024:.0f} KiB "
            f"({100 * memory.waste_fraction:.1f}% unused, all in last blocks)",
            style="bold",
        )
        self.readout(Group(table, summary))


class SpeculativeLab(Lab):
    """Speculative decoding with the shipped draft and target: acceptance and speed against draft length."""

    DEFAULT_CSS = "SpeculativeLab Figure PlotextPlot { height: 11; }"
    BINDINGS = [Binding("r", "race", "Race"), Binding("t", "toggle", "Greedy/T=1")]
    sampled = reactive(False, init=False)
    """False: greedy; True: temperature 1."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        ks = ", ".join(f"{k:g}" for k in self.params["ks"])
        dynamic = ""
        if self.params["model"] == "smollm2":
            from workbench_engines.models.llm_bench import SPECULATIVE_DYNAMIC

            dynamic = (f", and up to {SPECULATIVE_DYNAMIC[0]} stopping after a token it gives less than "
                       f"{SPECULATIVE_DYNAMIC[1]:g}")
        yield ProfilePanel(f"r runs the target alone, then with the draft proposing k = {ks} tokens a round{dynamic}; "
                           "t switches greedy / temperature 1.")

    def action_toggle(self) -> None:
        self.sampled = not self.sampled

    def watch_sampled(self, sampled: bool) -> None:
        self.status(f"{'temperature 1' if sampled else 'greedy'}: r races")

    def action_race(self) -> None:
        sampled, tokens, ks = self.sampled, self.params["tokens"], tuple(int(k) for k in self.params["ks"])

        def cases():
            from workbench_engines.generation.bench import speculative_case
            from workbench_engines.models import small_gpt

            if self.params["model"] == "smollm2":
                from workbench_engines.models.llm_bench import speculative_race

                return [speculative_race(load_model("smollm2"), prompts=1, new=tokens, ks=ks, sampled=sampled)]
            target, draft = load_target(), small_gpt.load("draft")
            return [speculative_case(target.model, draft.model, [target.prompt_ids(PROMPT)], tokens, ks,
                                     sampled=sampled)]

        self.ks = ks
        """The draft lengths of the last race."""
        self.race(cases, "Racing", self._raced)

    def _raced(self, result: RaceResult) -> None:
        self.result = result
        rows = {row.name: row for row in result.rows}
        speculative = [rows[f"speculative, k={k}"] for k in self.ks]
        ks = list(self.ks)
        self.query_one(Figure).lines(f"speculative decoding, {'temperature 1' if self.sampled else 'greedy'}", [
            Series("acceptance rate", ks, [r.extra["acceptance"] for r in speculative]),
            Series("speed-up vs target alone", ks, [r.ratios["target alone"] for r in speculative]),
            Series("tokens per pass ÷ (k + 1)", ks,
                   [r.extra["tokens_per_round"] / (k + 1) for r, k in zip(speculative, self.ks)]),
        ], xlabel="draft length k")
        draft_speed = rows["draft alone"].ratios["target alone"]
        self.query_one(ProfilePanel).show(
            result.rows, result.baselines,
            f"the draft alone runs {draft_speed:.1f}× as fast as the target per token; greedy speculative output must "
            "equal the target's (matches)")
        self.status(speculative_verdict(self.ks, speculative, draft_speed))


def speculative_verdict(ks, rows, draft_speed: float) -> str:
    """What the race showed, in words: acceptance by k, the best speed-up against the simple estimate, any losses.

    The estimate (Leviathan et al., 2023) is tokens per target forward ÷
    (1 + k ÷ draft_speed): it charges the draft's k steps but costs checking
    k + 1 tokens at one forward as one decoding step, which a CPU does not quite manage.
    """
    if not ks:
        return "No draft length was raced."
    speedups = [r.ratios["target alone"] for r in rows]
    acceptance = [r.extra["acceptance"] for r in rows]
    shown = ", ".join(f"{100 * a:.0f}% at k = {k}" for k, a in zip(ks, acceptance))
    words = [f"Accepted: {shown}."]
    if len(ks) > 1 and acceptance[-1] < acceptance[0]:
        words.append("It falls with k: after the first rejection the rest of a draft counts as rejected.")
    best = max(range(len(ks)), key=lambda i: speedups[i])
    if speedups[best] > 1:
        estimate = rows[best].extra["tokens_per_round"] / (1 + ks[best] / draft_speed)
        words.append(f"Best: k = {ks[best]}, {speedups[best]:.2f}× the target alone (the estimate "
                     f"tokens per pass ÷ (1 + k ÷ {draft_speed:.1f}) gives {estimate:.2f}×).")
    lost = [str(k) for k, x in zip(ks, speedups) if x < 1]
    if lost:
        words.append(f"Slower than the target alone at k = {', '.join(lost)}.")
    if speedups[best] <= 1 and not lost:
        words.append("No draft length changed the speed.")
    return " ".join(words)
