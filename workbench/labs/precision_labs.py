"""The labs of the mixed-precision lesson: the draft-sized GPT trained in fp32, bf16, and fp16 without and with
dynamic loss scaling, from the same weights on the same batches (workbench_engines.models.precision); and one
matrix product in the three formats, for what this CPU's 16-bit units buy (workbench_engines.profiling.machine)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.knobs import cycled, paired_keys, stepped
from workbench.widgets.plots import Figure, Series
from workbench.widgets.profile_panel import ProfilePanel

BATCH, SEQ_LEN = 8, 32
"""B and T of every step: 256 tokens, so four runs take about half a minute on one core."""
TAIL = 10
"""The table's loss is the mean of the last TAIL steps' losses: one 256-token batch is noisy."""


def power_of_two(value: float) -> str:
    """2^19 for 524,288; a value that is no power of two is written out (3e+05)."""
    exponent = math.log2(value) if value > 0 else math.nan
    return f"2^{exponent:.0f}" if math.isfinite(exponent) and exponent == round(exponent) else f"{value:.3g}"


def percent(share: float | None) -> str:
    """A share as a percentage with one decimal, "-" when it was not measured."""
    return "-" if share is None else f"{100 * share:.1f}%"


@dataclass(frozen=True)
class Knobs:
    """What the next run trains with besides the fixed batch, model and schedule."""

    loss_divisor: int
    """k: each step's loss is divided by k before the backward pass."""
    init_scale: float
    steps: int
    growth_interval: int

    def describe(self) -> str:
        """The knobs in words: "loss ÷ 1024 (as a 262,144-token step), first scale 2^16"."""
        tokens = self.loss_divisor * BATCH * SEQ_LEN
        return (f"{self.steps} steps, loss ÷ {self.loss_divisor} (as a {tokens:,}-token step), first scale "
                f"{power_of_two(self.init_scale)}")


def precision_verdict(runs: list) -> str:
    """In words, from the runs' own figures: what fp16 without scaling lost, and how far the others' validation
    losses ended from fp32's.

    Args:
        runs: PrecisionRun per precision (any subset of PRECISIONS; the sentences need fp32 and the row they name).
    """
    by = {run.precision: run for run in runs}
    if "fp32" not in by:
        return "No fp32 run to compare with."
    base = by["fp32"].val_loss
    words = []
    plain = by.get("fp16")
    if plain is not None:
        gap = plain.val_loss - base
        share = plain.zeroed_share or 0.0
        if not math.isfinite(plain.val_loss):
            words.append("fp16 without scaling diverged.")
        elif gap > 0.1:
            words.append(f"Without scaling, fp16 zeroed {percent(share)} of the gradient entries fp32 had, and its "
                         f"validation loss ended {gap:.2f} above fp32's.")
        else:
            words.append(f"Without scaling, fp16 zeroed {percent(share)} of the gradient entries and kept up with fp32 "
                         f"({gap:+.3f}): at this k the gradients clear fp16's floor; raise k.")
    for name in ("fp16-scaled", "bf16"):
        run = by.get(name)
        if run is None:
            continue
        gap = run.val_loss - base
        how = f"first scale {power_of_two(run.steps[0].scale)}, final {power_of_two(run.final_scale)}, " \
              f"{run.skipped} skipped" if name == "fp16-scaled" else "no scaling"
        where = ("fp32's to the third decimal" if abs(gap) < 0.0005
                 else f"{abs(gap):.3f} {'above' if gap > 0 else 'below'} fp32's")
        words.append(f"{run.label} ({how}): {where}.")
    return " ".join(words)


class MixedPrecisionLab(Lab):
    """Four runs of the same GPT from the same weights on the same batches: fp32, bf16, fp16 plain, fp16 scaled."""

    DEFAULT_CSS = "MixedPrecisionLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [
        Binding("r", "train", "Train", tooltip="Train the GPT four times: fp32, bf16, fp16 without and with scaling"),
        *paired_keys("k", "K", "divisor(1)", "divisor(-1)", "k±", up_help="Divide the loss by more (a larger batch)",
                     down_help="Divide the loss by less"),
        Binding("i", "init_scale", "1st scale", tooltip="The loss scaler's first scale: 2^16, 2^24, 2^32"),
        Binding("v", "view", "View", tooltip="Plot the share of gradient entries zeroed instead of the losses"),
    ]
    knobs = reactive(Initialize(lambda lab: Knobs(lab.params["loss_divisor"], lab.params["init_scale"],
                                                  lab.params["steps"], lab.params["growth_interval"])), init=False)
    """The next run's settings."""
    runs = reactive(None, always_update=True)
    """The last run's PrecisionRuns, in PRECISIONS' order."""
    show_zeroed = reactive(False, init=False)
    """Plot the share of gradient entries zeroed per step instead of the loss curves."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r trains the 2-layer GPT four times from the same weights on the same batches. k/K divide "
                     "the loss by more or less, i the scaler's first scale, v the view.", classes="readout")

    def on_mount(self) -> None:
        self.status(f"Next run: {self.knobs.describe()} (r trains).")

    def action_divisor(self, step: int) -> None:
        if self.busy():
            return
        divisor = stepped(list(self.spec.params["loss_divisor"].choices), self.knobs.loss_divisor, step)
        if divisor == self.knobs.loss_divisor:
            self.status(f"k = {divisor} is already the {'largest' if step > 0 else 'smallest'} this lab takes.")
            return
        self.knobs = replace(self.knobs, loss_divisor=divisor)

    def action_init_scale(self) -> None:
        if self.busy():
            return
        self.knobs = replace(self.knobs, init_scale=cycled(list(self.spec.params["init_scale"].choices),
                                                                self.knobs.init_scale))

    def watch_knobs(self, knobs: Knobs) -> None:
        self.status(f"Next run: {knobs.describe()} (r trains).")

    def action_view(self) -> None:
        self.show_zeroed = not self.show_zeroed

    def watch_show_zeroed(self) -> None:
        self.watch_runs(self.runs)

    def action_train(self) -> None:
        knobs = self.knobs

        def work(progress: Progress) -> list:
            from workbench_engines.models.precision import Settings, compare_precisions

            settings = Settings(steps=knobs.steps, batch_size=BATCH, seq_len=SEQ_LEN,
                                warmup=max(1, knobs.steps // 10), loss_divisor=knobs.loss_divisor,
                                init_scale=knobs.init_scale, growth_interval=knobs.growth_interval)
            return compare_precisions(settings, progress=progress,
                                      on_step=lambda runs: self._ui_stream(self._draw_losses, _curves(runs)))

        self.ran_with = knobs
        """The knobs of the last run started."""
        self.start(work, lambda runs: setattr(self, "runs", runs), f"Training four times: {knobs.describe()}")

    def _draw_losses(self, curves: list[tuple[str, list[float]]]) -> None:
        """The loss curves of (label, losses) pairs, against the step."""
        self.query_one(Figure).lines(
            "training loss per step (same weights, same batches)",
            [Series(label, list(range(1, len(losses) + 1)), losses) for label, losses in curves],
            xlabel="step", hint="v: zeroed")

    def watch_runs(self, runs: list | None) -> None:
        """Draw the last runs (loss curves or zeroed shares), their table and the verdict."""
        if runs is None:
            return
        from workbench_engines.models.precision import FORMATS

        figure = self.query_one(Figure)
        if self.show_zeroed:
            figure.lines("% of gradient entries zeroed, per step", [
                Series(run.label, [s.step for s in run.measured], [100 * s.zeroed_share for s in run.measured])
                for run in runs if run.measured], xlabel="step", hint="v: losses")
        else:
            self._draw_losses(_curves(runs))
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("run", f"loss {TAIL}", "val", "zeroed", "overflow", "skipped", "scale"):
            table.add_column(name, justify="left" if name == "run" else "right", no_wrap=True)
        for run in runs:
            scale = power_of_two(run.final_scale) if run.final_scale is not None else "-"
            table.add_row(run.label, f"{run.tail_loss(TAIL):.3f}", f"{run.val_loss:.3f}", percent(run.zeroed_share),
                          f"{run.overflowed:,}", f"{run.skipped}", scale)
        fp16, bf16 = FORMATS["fp16"], FORMATS["bf16"]
        source = Text(f"{self.ran_with.describe()}. loss {TAIL}: mean of the last {TAIL} steps; zeroed: of the "
                      f"entries nonzero in fp32's backward. fp16's smallest subnormal is {fp16.smallest_subnormal:.3g} "
                      f"(bf16's {bf16.smallest_subnormal:.3g}).", style="dim")
        self.readout(Group(table, Text(precision_verdict(runs)), source))


def _curves(runs: list) -> list[tuple[str, list[float]]]:
    """(label, a copy of the losses so far) per run: taken on the worker thread, drawn on the UI thread."""
    return [(run.label, list(run.losses)) for run in runs]


def units_verdict(rows: list, units: dict[str, list[str]]) -> str:
    """In words, from a units race's rows: each 16-bit format's speed against fp32's, and why, from the CPU flags.

    Args:
        rows: Profiles of workbench_engines.profiling.machine.units_case, named "torch <format> <n>T".
        units: sixteen_bit_units(): per format, this CPU's flags of instructions that multiply it.
    """
    from workbench_engines.profiling.machine import SIXTEEN_BIT_FLAGS

    by = {row.name.split()[1]: row for row in rows}
    fp32 = by.get("fp32")
    if fp32 is None:
        return "No fp32 row to compare with."
    words = []
    for fmt, flags in SIXTEEN_BIT_FLAGS.items():
        row = by.get(fmt)
        if row is None:
            continue
        ratio = fp32.wall_s / row.wall_s
        speed = f"{ratio:.2f}x fp32's speed" if ratio >= 0.5 else f"1/{1 / ratio:.0f} of fp32's speed"
        why = (f"this CPU multiplies {fmt} itself ({', '.join(units[fmt])})" if units.get(fmt) else
               f"this CPU has no x86 instruction that multiplies {fmt} (no {' or '.join(flags)}), so each {fmt} "
               "number is widened to fp32 before it is multiplied")
        words.append(f"{fmt} ran at {row.gflops:.1f} GFLOP/s, {speed} ({fp32.gflops:.1f}): {why}.")
    return " ".join(words)


class MatrixUnitsLab(Lab):
    """One matrix product in fp32, bf16 and fp16 at one thread: what this CPU's 16-bit units buy, measured."""

    DEFAULT_CSS = "MatrixUnitsLab Figure PlotextPlot { height: 9; }"
    BINDINGS = [
        Binding("r", "race", "Race"),
        Binding("s", "size", "Size", tooltip="The matrices' size n, the next of the lab's choices"),
    ]
    n = reactive(Initialize(lambda lab: int(lab.params["n"])), init=False)
    """The next race's matrices are n × n."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield ProfilePanel("r multiplies two n × n matrices in fp32, bf16 and fp16 at one thread; s changes n.")
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.watch_n(self.n)

    def action_size(self) -> None:
        if self.busy():
            return
        self.n = cycled(list(self.spec.params["n"].choices), self.n)

    def watch_n(self, n: int) -> None:
        self.status(f"Next race: {n} × {n} matrices (r races, s changes n).")

    def action_race(self) -> None:
        n = self.n

        def cases():
            from workbench_engines.profiling.machine import units_case

            return [units_case(n)]

        self.race(cases, f"Multiplying {n} × {n} matrices in fp32, bf16 and fp16", self._raced)

    def _raced(self, result: RaceResult) -> None:
        from workbench_engines.profiling.machine import sixteen_bit_units

        rows = result.rows
        self.query_one(Figure).bars("GFLOP/s at one thread (higher is faster)",
                                    [row.name.split()[1] for row in rows], [row.gflops for row in rows])
        self.query_one(ProfilePanel).show(rows, result.baselines, "matches: each 16-bit product within 2^-5·√n (bf16) "
                                          "or 2^-8·√n (fp16) of fp32's, the rounding of 8 or 11 significant bits")
        self.readout(Text(units_verdict(rows, sixteen_bit_units())))
