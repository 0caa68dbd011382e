"""Labs of the Interpretability track's first two lessons: the logit lens, and induction heads found live."""

from __future__ import annotations

import math

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Input, Static

from workbench.labs.base import Lab, Progress
from workbench.labs.decoding_labs import load_model
from workbench.labs.token_labels import token_label
from workbench.labs.knobs import cycled
from workbench.widgets.heat_grid import LEGEND, HeatGrid
from workbench.widgets.plots import Figure, Series

MODELS = ("small-gpt", "smollm2")
"""What m switches between."""
MODEL_NAMES = {"small-gpt": "the small GPT", "smollm2": "SmolLM2-135M"}
SHOWN_ROWS = 11
"""The most lens rows the table lists (every k-th row, plus the output and the row the answer first tops)."""


def escaped(text: str) -> str:
    """A prompt on one line of a text box: each newline written as \\n."""
    return text.replace("\n", "\\n")


def unescaped(text: str) -> str:
    """The prompt a text box's line stands for: each \\n a newline again."""
    return text.replace("\\n", "\n")


def names_of(model) -> list[str]:
    """Every token of the model's vocabulary as a short printable label."""
    tok = model.tokenizer
    return [token_label(tok.token_bytes(i)) for i in range(model.config.vocab_size)]


def row_name(label: str) -> str:
    """A lens row's name in prose: the embedding, or after block L."""
    return "the embedding" if label == "embed" else f"layer {label[1:]}"


def lens_verdict(lens, names: list[str]) -> str:
    """In words: where the final answer first becomes the lens's top token, and whether it stays there."""
    answer = names[lens.target]
    last = lens.rows[-1]
    if last.target_rank != 1:
        return (f"The tracked token {answer!r} is not the model's top token (rank {last.target_rank} at the output), "
                f"so no layer settles on it.")
    first, settled = lens.first_top, lens.settled
    words = [(f"The final answer {answer!r} ({last.target_prob:.1%} at the output) first becomes the top token at "
              f"{row_name(lens.rows[first].label)} (row {first} of {len(lens.rows) - 1})")]
    if settled != first:
        words.append(f", loses the top place again and holds it from {row_name(lens.rows[settled].label)} on")
    words.append(".")
    if first == len(lens.rows) - 1:
        earlier = min(row.target_rank for row in lens.rows[1:-1]) if len(lens.rows) > 2 else last.target_rank
        words.append(f" Only the last block puts it first; before that its best rank was {earlier}.")
    return "".join(words)


def shown_rows(n: int, first: int | None) -> list[int]:
    """Which of n lens rows the table lists: all of them when few, else every k-th, the first-top row and the last."""
    if n <= SHOWN_ROWS:
        return list(range(n))
    step = math.ceil(n / (SHOWN_ROWS - 1))
    rows = set(range(0, n, step)) | {n - 1} | ({first} if first is not None else set())
    return sorted(rows)


class LensLab(Lab):
    """The logit lens on the learner's prompt: each layer's top next tokens and the final answer's rank by layer."""

    DEFAULT_CSS = "LensLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("m", "model", "Model")]
    model_name = reactive(Initialize(lambda lab: lab.params["m"]), init=False)
    lens = reactive(None, always_update=True)
    """(LogitLens, token names) of the last run."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=escaped(self.params["text"]), placeholder="a prompt (\\n for a new line); Enter reads it")
        yield Figure()
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self._read(self.params["text"])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._read(unescaped(event.value))
        self.focus()

    def action_model(self) -> None:
        if self.running:
            self.status("Still running: wait for it, or x cancels it, then m.")
            return
        self.model_name = cycled(list(MODELS), self.model_name)

    def watch_model_name(self) -> None:
        self._read(unescaped(self.query_one(Input).value))

    def _read(self, text: str) -> None:
        name = self.model_name
        if not text.strip():
            self.status("Type a prompt first: the lens reads the next token after it.")
            return

        def work(progress: Progress):
            from workbench_engines.interp import logit_lens

            model = load_model(name, progress)
            ids = model.prompt_ids(text)[-model.config.context:]
            progress(0.1, "reading every layer")
            return logit_lens(model.model, ids, progress=progress), names_of(model), name

        self.start(work, lambda result: setattr(self, "lens", result), f"Reading {MODEL_NAMES[name]}")

    def watch_lens(self, result) -> None:
        if result is None:
            return
        lens, names, name = result
        rows = lens.rows
        answer = names[lens.target]
        self.query_one(Figure).lines(
            f"{MODEL_NAMES[name]}: p({answer!r}) read after each layer",
            [Series(f"p({answer})", list(range(len(rows))), [row.target_prob for row in rows])],
            xlabel="row: 0 embedding, L + 1 after block L")
        table = Table(box=None, header_style="bold", title=f"next token after {names[lens.ids[lens.position]]!r}",
                      title_justify="left")
        for column in ("row", "top tokens (p)", "rank", "p"):
            table.add_column(column, justify="left" if column != "rank" and column != "p" else "right",
                             no_wrap=True, overflow="ellipsis", max_width=44 if column.startswith("top") else None)
        for i in shown_rows(len(rows), lens.first_top):
            row = rows[i]
            tops = "  ".join(f"{names[t][:10]} {p:.2f}" for t, p in zip(row.top_tokens, row.top_probs))
            table.add_row(row.label, tops, str(row.target_rank), f"{row.target_prob:.3f}")
        self.readout(Group(table, Text(f"rank and p: of {answer!r}, the model's answer", style="dim"),
                           Text(lens_verdict(lens, names))))
        self.status(f"{MODEL_NAMES[name]}: m switches model; edit the prompt and press Enter.")


def induction_verdict(scan, top: int = 3) -> str:
    """In words: how much the repeat lowered the loss and which heads prefix-match (and copy), or that none do."""
    first, second = scan.first_loss, scan.second_loss
    best = scan.top_heads(top)
    heads = scan.induction_heads()
    named = ", ".join(f"L{l}H{h} ({p:.2f}, copying {c:+.2f})" for l, h, p, c in best)
    if not heads:
        l, h, p, _ = best[0]
        drop = ("no lower than" if second >= first - 0.5 else "only a little below" if second >= 0.5 * first
                else "well below")
        loss = f"the second repeat's loss ({second:.2f} nats) is {drop} the first's ({first:.2f})"
        if p < 0.4:
            return (f"No head prefix-matches: the best, L{l}H{h}, puts {p:.2f} of its attention on the token after "
                    f"the earlier copy, and {loss}. This model has no induction heads.")
        return (f"Heads prefix-match ({named}) but none also copies (OV score > 0), and {loss}: no head here "
                "passes both tests of an induction head.")
    both = ", ".join(f"L{l}H{h}" for l, h, _, _ in heads)
    return (f"The repeat lowered the loss from {first:.2f} to {second:.2f} nats per token. Heads that both "
            f"prefix-match (score ≥ 0.4) and copy (OV score > 0): {both}. The top heads by prefix matching: {named}.")


class InductionLab(Lab):
    """Repeated random tokens through a model: the loss on each repeat and every head's prefix-matching score."""

    DEFAULT_CSS = "InductionLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("m", "model", "Model"), Binding("s", "seed", "New tokens")]
    model_name = reactive(Initialize(lambda lab: lab.params["m"]), init=False)
    seed = reactive(Initialize(lambda lab: lab.params["seed"]), init=False)
    scan = reactive(None, always_update=True)
    """(InductionScan, model name) of the last run."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield HeatGrid()
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self._scan()

    def action_model(self) -> None:
        if self.running:
            self.status("Still running: wait for it, or x cancels it, then m.")
            return
        self.model_name = cycled(list(MODELS), self.model_name)

    def action_seed(self) -> None:
        if self.running:
            self.status("Still running: wait for it, or x cancels it, then s.")
            return
        self.seed += 1

    def watch_model_name(self) -> None:
        self._scan()

    def watch_seed(self) -> None:
        self._scan()

    def _scan(self) -> None:
        name, n, batch, seed = self.model_name, self.params["n"], self.params["batch"], self.seed

        def work(progress: Progress):
            from workbench_engines.interp import induction_scan

            model = load_model(name, progress)
            specials = model.tokenizer.special_tokens
            return induction_scan(model.model, n=n, batch=batch, seed=seed, start=specials["<|endoftext|>"],
                                  avoid=specials.values(), progress=progress), name

        self.start(work, lambda result: setattr(self, "scan", result), f"Scanning {MODEL_NAMES[name]}")

    def watch_scan(self, result) -> None:
        if result is None:
            return
        scan, name = result
        n = scan.n
        x = list(range(2, n + 1))
        self.query_one(Figure).lines(
            f"loss per token: first repeat {scan.first_loss:.2f}, second {scan.second_loss:.2f} nats",
            [Series("first repeat", x, list(scan.loss_by_token[1:n])),
             Series("second repeat", x, list(scan.loss_by_token[n + 1:]))],
            xlabel="token of the repeat")
        self.query_one(HeatGrid).show(
            np.clip(scan.prefix, 0, 1),
            title="prefix matching")
        table = Table(box=None, header_style="bold")
        for column in ("head", "prefix", "copying"):
            table.add_column(column, justify="left" if column == "head" else "right")
        for l, h, p, c in scan.top_heads(5):
            table.add_row(f"L{l}H{h}", f"{p:.2f}", f"{c:+.2f}")
        source = Text(f"{MODEL_NAMES[name]}: {scan.batch} sequences of {n} random tokens, each repeated once, "
                      f"seed {scan.seed}. Grid: row = layer, column = head; {LEGEND}.", style="dim")
        self.readout(Group(table, Text(induction_verdict(scan)), source))
        self.status(f"{MODEL_NAMES[name]}: m switches model, s draws new tokens.")
