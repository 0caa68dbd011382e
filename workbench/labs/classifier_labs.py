"""Lab of the fine-tuning track: a sentiment classifier on MiniLM trained three ways, side by side, while it trains.

The regimes (``finetune.classifier``): the head alone on the frozen encoder's
pooled vectors, LoRA adapters on every layer's W_q and W_v with the head, and
every weight. They train one after another on the same movie snippets with
the same seed, steps and batch size; a table fills in as each one runs
(trainable parameters, AdamW's state, the latest loss, held-out accuracy and
macro-F1, seconds) with the lexicon judge and the majority class beneath them,
and a plot draws the three training-loss curves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.labs.knobs import knob_keys, shown_as_one, stepped
from workbench.widgets.plots import Figure, Series

REGIMES = ("head", "lora", "full")
SIZES = ((200, 100), (400, 200), (1_000, 500), (2_000, 1_000))
"""(training, held-out) sentences the s key steps through."""
RANKS = (1, 2, 4, 8, 16, 64)
STEPS = (10, 20, 40, 60, 100, 200)
BATCH = 16
SEED = 0
THREADS = 1
"""torch threads for the lab's runs: one thread sums in one order, so a run repeats its figures on the same machine
(another CPU may pick other kernels and differ in the last digits; a step takes about 0.5 s with LoRA and 0.8 s in
full on one core of this project's CPU)."""
LOSS_WINDOW = 5
"""Steps the table's loss averages: one batch of 16 is a noisy sample."""


@dataclass(frozen=True)
class Setup:
    """The lab's knobs: subset size, LoRA's rank, steps per regime."""

    train: int
    held_out: int
    rank: int
    steps: int

    def words(self) -> str:
        return (f"{self.train:,} train / {self.held_out:,} held-out snippets, {self.steps} steps of {BATCH}, "
                f"LoRA r={self.rank}, seed {SEED}")


@dataclass(frozen=True)
class Row:
    """One regime as far as it has run."""

    regime: str
    label: str
    losses: tuple[float, ...] = ()
    result: object | None = None
    """Its classifier.Result once finished."""


@dataclass(frozen=True)
class Board:
    """What the readout draws: the setup, a row per regime asked for, and the two baselines."""

    setup: Setup
    rows: tuple[Row, ...]
    lexicon: object
    """classifier.Metrics of the lexicon judge on the held-out set."""
    majority: object
    described: str = ""
    running: str = ""
    """The regime training now, or empty."""


def train_board(setup: Setup, regimes: tuple[str, ...], progress: Progress, show) -> Board:
    """Run each regime in turn on one subset, calling show(board) as the table fills in; the finished Board."""
    from workbench_engines.finetune.classifier import (
        Settings,
        finetune,
        lexicon_baseline,
        majority_baseline,
        split,
    )

    data = split(setup.train, setup.held_out, seed=SEED)
    settings = {r: Settings(r, rank=setup.rank, steps=setup.steps, batch_size=BATCH, seed=SEED) for r in regimes}
    rows = [Row(r, settings[r].label()) for r in regimes]
    board = Board(setup, tuple(rows), lexicon_baseline(data.held_out),
                  majority_baseline(data.train, data.held_out), data.describe())
    show(board)
    for i, regime in enumerate(regimes):
        losses: list[float] = []

        def on_step(step: int, loss: float, metrics: object, i: int = i) -> None:
            losses.append(loss)
            rows[i] = replace(rows[i], losses=tuple(losses))
            show(replace(board, rows=tuple(rows), running=regime))

        def part(fraction: float, what: str, i: int = i) -> None:
            progress((i + fraction) / len(regimes), what)

        result = finetune(data, settings[regime], progress=part, on_step=on_step, threads=THREADS)
        rows[i] = replace(rows[i], losses=tuple(result.losses), result=result)
        board = replace(board, rows=tuple(rows), running="")
        show(board)
    return board


def board_table(board: Board) -> Table:
    """Regimes and baselines: what each trains, AdamW's bytes, the recent loss, held-out scores, seconds."""
    from workbench_engines.finetune.memory import format_bytes

    table = Table(box=None, header_style="bold", pad_edge=False,
                  caption=f"loss: mean of the last {LOSS_WINDOW} steps; acc, F1: on the held-out set",
                  caption_justify="left")
    for name in ("regime", "trains", "AdamW", "loss", "acc", "F1", "s"):
        table.add_column(name, justify="left" if name == "regime" else "right", no_wrap=True)
    for row in board.rows:
        r = row.result
        recent = row.losses[-LOSS_WINDOW:]
        loss = f"{sum(recent) / len(recent):.3f}" if recent else ("running" if board.running == row.regime else "-")
        if r is None:
            table.add_row(row.label, "", "", loss, "", "", "")
            continue
        table.add_row(row.label, f"{r.trainable:,}", format_bytes(r.optimizer_state_bytes), loss,
                      f"{100 * r.metrics.accuracy:.1f}%", f"{r.metrics.macro_f1:.3f}", f"{r.seconds:.1f}")
    for label, m in (("lexicon judge", board.lexicon), ("majority class", board.majority)):
        table.add_row(label, "0", "-", "-", f"{100 * m.accuracy:.1f}%", f"{m.macro_f1:.3f}", "-")
    return table


def verdict(board: Board) -> str:
    """In words: which regime scored best, against the lexicon judge, and what the cheap one cost."""
    done = [row for row in board.rows if row.result is not None]
    if not done:
        return ""
    best = max(done, key=lambda row: row.result.metrics.macro_f1)
    m = best.result.metrics
    gain = 100 * (m.accuracy - board.lexicon.accuracy)
    line = (f"Best macro-F1: {best.label} ({m.macro_f1:.3f}), {gain:+.1f} points of accuracy over the lexicon "
            f"judge, which learned nothing from these sentences.")
    by = {row.regime: row.result for row in done}
    if "head" in by and "full" in by:
        line += (f" The head trains {by['head'].trainable:,} numbers, full fine-tuning "
                 f"{by['full'].trainable:,} ({by['full'].trainable / by['head'].trainable:,.0f}x).")
    return line


class ClassifierLab(Lab):
    """Fine-tune a sentiment classifier on MiniLM three ways and watch the table and the loss curves fill in."""

    DEFAULT_CSS = "ClassifierLab Figure PlotextPlot { height: 9; }"
    BINDINGS = [
        Binding("a", "train('all')", "All 3", tooltip="Train head only, LoRA and full, one after another"),
        *shown_as_one([Binding("1", "train('head')", "Head only"), Binding("2", "train('lora')", "LoRA only"),
                       Binding("3", "train('full')", "Full only")], "1 2 3", "one"),
        *shown_as_one([*knob_keys("s", "size", "size"), *knob_keys("k", "rank", "rank"),
                       *knob_keys("t", "steps", "steps")], "sS kK tT", "knobs±"),
    ]
    setup: reactive[Setup | None] = reactive(None, init=False)
    """The knobs for the next run."""
    board: reactive[Board | None] = reactive(None, always_update=True, init=False)
    """The run drawn (finished or filling in)."""

    def compose_lab(self) -> ComposeResult:
        yield Static("a trains all three regimes; 1, 2, 3 one of them; s/S subset size, k/K LoRA rank, t/T steps.",
                     classes="readout")
        yield Figure()

    def on_mount(self) -> None:
        p = self.params
        self.setup = Setup(p["train"], p["held_out"], p["rank"], p["steps"])

    def watch_setup(self, setup: Setup | None) -> None:
        if setup is not None:
            self.status(f"Next run: {setup.words()}. a trains all three.")

    def action_knob(self, name: str, step: int) -> None:
        if self.busy() or self.setup is None:
            return
        s = self.setup
        if name == "size":
            sizes = sorted({*SIZES, (s.train, s.held_out)})
            train, held_out = stepped(sizes, (s.train, s.held_out), step)
            new = replace(s, train=train, held_out=held_out)
        elif name == "rank":
            new = replace(s, rank=stepped(sorted({*RANKS, s.rank}), s.rank, step))
        else:
            new = replace(s, steps=stepped(sorted({*STEPS, s.steps}), s.steps, step))
        if new == s:
            self.status(f"{name} is already at its {'highest' if step > 0 else 'lowest'} setting")
            return
        self.setup = new

    def action_train(self, which: str) -> None:
        if self.setup is None:
            return
        setup, regimes = self.setup, REGIMES if which == "all" else (which,)
        self.start(lambda progress: train_board(setup, regimes, progress, self._show_live),
                   lambda board: setattr(self, "board", board), f"Training {len(regimes)} regime(s)")

    def _show_live(self, board: Board) -> None:
        """From the worker: draw a board filling in, at most ten times a second (a finished regime always)."""
        if board.running:
            self._ui_stream(setattr, self, "board", board)
        else:
            self._ui(setattr, self, "board", board)

    def watch_board(self, board: Board | None) -> None:
        if board is None:
            return
        parts = [Text(f"{board.described}; {board.setup.steps} steps of {BATCH}, LoRA r={board.setup.rank} "
                      "on W_q, W_v", style="bold"), board_table(board)]
        said = verdict(board)
        if said:
            parts.append(Text(said))
        self.readout(Group(*parts))
        series = [Series(row.label, list(range(1, len(row.losses) + 1)), list(row.losses))
                  for row in board.rows if row.losses]
        if series:
            self.query_one(Figure).lines("training loss per step (cross-entropy; ln 2 = 0.693 is a coin)", series,
                                         xlabel="step")
