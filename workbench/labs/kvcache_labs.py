"""Labs of the KV cache and serving track: the cache's speed-up, its memory, paging, speculative decoding."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static
from textual_plotext import PlotextPlot

from workbench.labs.base import Lab, Progress, marker
from workbench.labs.decoding_labs import load_target

PROMPT = "**HAMLET**  \nTo be, or not to be, that is the question:  \n"


class CacheSpeedupLab(Lab):
    """Generate with and without a KV cache at growing lengths; plot milliseconds per token."""

    DEFAULT_CSS = "CacheSpeedupLab PlotextPlot { height: 14; }"
    BINDINGS = [Binding("r", "race", "Race")]

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("r generates each length with and without the cache (the longest takes a few seconds).",
                     classes="readout")

    def action_race(self) -> None:
        lengths = [int(n) for n in self.params["lengths"]]

        def work(progress: Progress):
            from workbench_engines.generation import generate

            pretrained = load_target(progress)
            ids = pretrained.tokenizer.encode_ordinary(PROMPT)
            generate(pretrained.model, ids, 8)  # warm up torch's kernels
            rows = []
            for i, n in enumerate(lengths):
                progress(0.1 + 0.9 * i / len(lengths), f"{n} tokens")
                plain = generate(pretrained.model, ids, n, cache="none")
                cached = generate(pretrained.model, ids, n, cache="contiguous")
                if plain.tokens != cached.tokens:
                    raise RuntimeError(f"cached and uncached outputs differ at {n} tokens")
                rows.append((n, plain.seconds, cached.seconds))
            return rows

        self.start(work, self._shown, "Racing")

    def _shown(self, rows: list[tuple[int, float, float]]) -> None:
        self.rows = rows
        plt = self.fresh_plot()
        ns = [r[0] for r in rows]
        plt.plot(ns, [1e3 * r[1] / r[0] for r in rows], label="no cache", marker=marker(0))
        plt.plot(ns, [1e3 * r[2] / r[0] for r in rows], label="KV cache", marker=marker(1))
        plt.xlabel("tokens generated")
        plt.title("milliseconds per generated token")
        self.refresh_plot()
        table = Table(box=None, header_style="bold")
        for name in ("tokens", "no cache s", "cache s", "speed-up", "same tokens"):
            table.add_column(name, justify="right")
        for n, plain, cached in rows:
            table.add_row(str(n), f"{plain:.2f}", f"{cached:.2f}", f"{plain / cached:.1f}×", "yes")
        self.query_one(".readout", Static).update(table)


class CacheMemoryLab(Lab):
    """KV-cache bytes against context length for published model shapes; keys change dtype and batch."""

    DEFAULT_CSS = "CacheMemoryLab PlotextPlot { height: 14; }"
    BINDINGS = [Binding("d", "dtype", "Next dtype"), Binding("b", "batch(2)", "Batch×2"),
                Binding("B", "batch(0.5)", "Batch÷2")]
    DTYPES = ["fp16", "fp8", "int4", "fp32"]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.dtype, self.batch = params["dtype"], params["batch"]

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def action_dtype(self) -> None:
        self.dtype = self.DTYPES[(self.DTYPES.index(self.dtype) + 1) % len(self.DTYPES)]
        self.redraw()

    def action_batch(self, factor: float) -> None:
        self.batch = int(min(256, max(1, self.batch * factor)))
        self.redraw()

    def redraw(self) -> None:
        from workbench_engines.kvcache import REAL_MODELS

        models = [REAL_MODELS[name] for name in self.params["models"]]
        lengths = [2**i for i in range(8, 16)]
        plt = self.fresh_plot()
        for i, model in enumerate(models):
            gib = [model.bytes_per_token(self.dtype) * n * self.batch / 2**30 for n in lengths]
            plt.plot([float(np.log2(n)) for n in lengths], gib, label=model.name, marker=marker(i))
        plt.xticks([float(np.log2(n)) for n in lengths], [f"{n // 1024}k" if n >= 1024 else str(n) for n in lengths])
        plt.xlabel("context length (tokens, log scale)")
        plt.title(f"KV cache GiB, {self.dtype}, batch {self.batch} (d: dtype, b/B: batch)")
        self.refresh_plot()
        table = Table(box=None, header_style="bold")
        for name in ("model", "layers", "KV heads", "head dim", "KiB / token", "at its context"):
            table.add_column(name, justify="left" if name == "model" else "right")
        for m in models:
            per = m.bytes_per_token(self.dtype)
            table.add_row(m.name, str(m.layers), str(m.kv_heads), str(m.head_dim), f"{per / 1024:g}",
                          f"{per * m.context * self.batch / 2**30:.2f} GiB ({m.context // 1024}k)")
        self.query_one(".readout", Static).update(table)


REQUESTS = [
    "The King's court: answer briefly.\n**HAMLET**  \n",
    "The King's court: answer briefly.\n**OPHELIA**  \n",
    "The King's court: answer briefly.\n**HAMLET**  \nAy, my lord",
    "A wood near Athens.\n**PUCK**  \n",
    "The King's court: answer briefly.\n**POLONIUS**  \n",
    "A wood near Athens.\n**OBERON**  \n",
]


class PagedLab(Lab):
    """Requests arrive one by one into a paged cache run by the real model; watch block tables and sharing."""

    BINDINGS = [Binding("n", "next_request", "Next request"), Binding("f", "finish", "Finish oldest"),
                Binding("z", "reset", "Reset")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.cache = None
        self.live: list[tuple[int, str, int]] = []  # (sequence id, label, prompt tokens cached)
        self.arrived = 0

    def compose_lab(self) -> ComposeResult:
        yield Static("n sends the next request (a prompt plus a few generated tokens); f finishes the oldest.",
                     classes="readout")

    def action_reset(self) -> None:
        self.cache, self.live, self.arrived = None, [], 0
        self.query_one(".readout", Static).update("Reset. n sends the first request.")

    def action_next_request(self) -> None:
        index = self.arrived
        prompt_text = REQUESTS[index % len(REQUESTS)]
        block_size, new_tokens = self.params["block_size"], self.params["new_tokens"]

        def work(progress: Progress):
            import torch

            from workbench_engines.kvcache import PagedCache

            pretrained = load_target(progress)
            if self.cache is None:
                self.cache = PagedCache(pretrained.config, self.params["blocks"], block_size)
            cache = self.cache
            ids = pretrained.tokenizer.encode_ordinary(prompt_text)
            seq, cached = cache.add_sequence(ids)
            progress(0.5, "prefill and decode")
            with torch.inference_mode():
                logits = pretrained.model(torch.tensor([ids[cached:]]), cache)[0, -1]
                for _ in range(new_tokens):
                    token = int(logits.argmax())
                    logits = pretrained.model(torch.tensor([[token]]), cache)[0, -1]
            return seq, cached, len(ids)

        self.arrived += 1
        self.start(work, lambda result: self._arrived(result, index), "Serving")

    def _arrived(self, result, index: int) -> None:
        seq, cached, prompt_tokens = result
        self.live.append((seq, f"req {index + 1}", cached))
        self.redraw(f"req {index + 1}: {prompt_tokens} prompt tokens, {cached} found in the prefix cache")

    def action_finish(self) -> None:
        if not self.live or self.cache is None or self.running:
            self.status("Nothing to finish." if not self.live else "Wait for the request being served.")
            return
        seq, label, _ = self.live.pop(0)
        self.cache.free(seq)
        self.redraw(f"{label} finished: its blocks go back to the free list (full ones stay findable by hash)")

    def redraw(self, headline: str) -> None:
        cache = self.cache
        shared = {b for b, r in enumerate(cache.pool.refs) if r > 1}
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("request", no_wrap=True)
        table.add_column("tokens", justify="right")
        table.add_column("block table (* = shared)", no_wrap=True)
        for seq, label, _ in self.live:
            blocks = cache.block_table(seq)
            cells = " ".join(f"{b}{'*' if b in shared else ''}" for b in blocks)
            table.add_row(label, str(cache.sequences[seq].length), cells[:58])
        memory = cache.memory()
        stats = cache.stats
        summary = Text(
            f"{headline}\npool: {cache.pool.used} of {cache.pool.num_blocks} blocks in use, "
            f"{len(cache.pool.by_hash)} full blocks indexed by prefix hash\n"
            f"prefix cache: {stats.hits} block hits, {stats.misses} misses; copy-on-write copies: {stats.copies}\n"
            f"allocated {memory.allocated / 1024:.0f} KiB, holding tokens {memory.stored / 1024:.0f} KiB "
            f"({100 * memory.waste_fraction:.1f}% unused, all in last blocks)",
            style="bold",
        )
        self.query_one(".readout", Static).update(Group(table, summary))


class SpeculativeLab(Lab):
    """Speculative decoding with the shipped draft and target: acceptance and speed against draft length."""

    DEFAULT_CSS = "SpeculativeLab PlotextPlot { height: 13; }"
    BINDINGS = [Binding("r", "race", "Race"), Binding("t", "toggle", "Greedy/T=1")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.sampled = False

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("r runs the target alone, then with the draft proposing k = 1 … 6 tokens a round; "
                     "t switches greedy / temperature 1.", classes="readout")

    def action_toggle(self) -> None:
        self.sampled = not self.sampled
        self.status(f"{'temperature 1' if self.sampled else 'greedy'}: r races")

    def action_race(self) -> None:
        sampled, tokens, ks = self.sampled, self.params["tokens"], [int(k) for k in self.params["ks"]]

        def work(progress: Progress):
            from workbench_engines.generation import generate, speculative_generate
            from workbench_engines.models import small_gpt
            from workbench_engines.sampling.settings import GREEDY, Sampler

            target = load_target(progress)
            draft = small_gpt.load("draft")
            sampler = Sampler(temperature=1.0) if sampled else GREEDY
            ids = target.tokenizer.encode_ordinary(PROMPT)
            generate(target.model, ids, 8)
            alone = generate(target.model, ids, tokens, sampler=sampler, seed=1)
            draft_alone = generate(draft.model, ids, tokens, sampler=sampler, seed=1)
            rows = []
            for i, k in enumerate(ks):
                progress(0.2 + 0.8 * i / len(ks), f"k = {k}")
                result = speculative_generate(target.model, draft.model, ids, tokens, k=k, sampler=sampler, seed=1)
                if not sampled and result.tokens != alone.tokens:
                    raise RuntimeError("greedy speculative decoding differs from the target's own output")
                rows.append((k, result.acceptance_rate, result.tokens_per_round, alone.seconds / result.seconds))
            return rows, alone.seconds / draft_alone.seconds

        self.start(work, self._shown, "Racing")

    def _shown(self, outcome) -> None:
        rows, draft_speed = outcome
        self.rows = rows
        plt = self.fresh_plot()
        ks = [r[0] for r in rows]
        plt.plot(ks, [r[1] for r in rows], label="acceptance rate", marker=marker(0))
        plt.plot(ks, [r[3] for r in rows], label="speed-up vs target alone", marker=marker(1))
        plt.plot(ks, [r[2] / (r[0] + 1) for r in rows], label="tokens per pass ÷ (k + 1)", marker=marker(2))
        plt.xlabel("draft length k")
        plt.title(f"speculative decoding, {'temperature 1' if self.sampled else 'greedy'}")
        self.refresh_plot()
        table = Table(box=None, header_style="bold")
        for name in ("k", "accepted", "tokens / target pass", "speed-up"):
            table.add_column(name, justify="right")
        for k, rate, per_pass, speedup in rows:
            table.add_row(str(k), f"{100 * rate:.0f}%", f"{per_pass:.2f}", f"{speedup:.2f}×")
        table.caption = f"the draft alone runs {draft_speed:.1f}× faster than the target per token"
        self.query_one(".readout", Static).update(table)
