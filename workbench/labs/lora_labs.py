"""Labs of LoRA: the rank sweep on the small GPT, and full fine-tuning's memory against LoRA's."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.labs.knobs import cycled, paired_keys, shown_as_one
from workbench.widgets.plots import Figure, Series


class LoraSweepLab(Lab):
    """Adapt the small GPT to one genre with LoRA at ranks 1 to 64 and with full fine-tuning; plot loss by rank."""

    DEFAULT_CSS = "LoraSweepLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("r", "run", "Run sweep"), Binding("v", "view", "Loss/ΔW")]
    result = reactive(None, always_update=True)
    """The last genre.SweepResult."""
    show_delta = reactive(False, init=False)
    """Plot the singular values of each regime's ΔW instead of loss against rank."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static(f"r adapts the small GPT to {self.params['genre']}: LoRA at ranks 1-64, then every weight "
                     f"({self.params['steps']} steps each).", classes="readout")

    def action_run(self) -> None:
        params = self.params

        def work(progress: Progress):
            from workbench_engines.finetune.genre import SweepConfig, run_sweep
            from workbench_engines.finetune.memory import small_gpt

            targets = small_gpt().targets(params["targets"])
            return run_sweep(SweepConfig(genre=params["genre"], steps=params["steps"], targets=targets,
                                         full=params["full"], seed=params["seed"]), progress, threads=1)

        self.start(work, lambda result: setattr(self, "result", result), "Running the rank sweep")

    def action_view(self) -> None:
        self.show_delta = not self.show_delta

    def watch_show_delta(self) -> None:
        self.watch_result(self.result)

    def watch_result(self, result) -> None:
        if result is None:
            return
        lora = [r for r in result.regimes if r.rank is not None]
        full = next((r for r in result.regimes if r.rank is None), None)
        figure = self.query_one(Figure)
        if self.show_delta:
            from workbench_engines.finetune.genre import WATCHED_LAYER

            figure.lines(f"singular values of ΔW at {WATCHED_LAYER}, largest 16",
                         [Series(r.name, list(range(1, 17)), r.delta_singular_values[:16])
                          for r in result.regimes if r.name in ("r=1", "r=8", "r=64", "full")],
                         xlabel="index, largest first", hint="v: loss by rank")
        else:
            ranks = [r.rank for r in lora]
            x = [float(r.bit_length() - 1) for r in ranks]  # log2 of a power of two; other ranks round down
            span = [min(x, default=0.0), max(x, default=0.0)]
            series = [Series("LoRA", x, [r.val_after for r in lora], points=True),
                      Series("before", span, [result.regimes[0].val_before] * 2)]
            if full is not None:
                series.append(Series("full fine-tuning", span, [full.val_after] * 2))
            figure.lines(f"held-out {result.data.genre} loss after {result.config.steps} steps",
                         series, xlabel="LoRA rank r (log scale)", hint="v: ΔW spectrum",
                         xticks=(x, [str(r) for r in ranks]))
        self.readout(Group(sweep_table(result), Text(sweep_verdict(result))))


def sweep_table(result) -> Table:
    """One row per regime: trainable parameters, AdamW bytes, loss after, its change, seconds."""
    from workbench_engines.finetune.memory import format_bytes

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("regime", "trainable", "AdamW state", "loss after", "change", "seconds"):
        table.add_column(name, justify="left" if name == "regime" else "right")
    for r in result.regimes:
        table.add_row(r.name, f"{r.trainable:,}", format_bytes(r.optimizer_bytes), f"{r.val_after:.4f}",
                      f"{r.val_after - r.val_before:+.4f}", f"{r.seconds:.1f}")
    return table


def sweep_verdict(result) -> str:
    """In words: what was held out, and the loss each end of the sweep and full fine-tuning took off."""
    lora = [r for r in result.regimes if r.rank is not None]
    full = next((r for r in result.regimes if r.rank is None), None)
    before = result.regimes[0].val_before
    text = (f"Held out: {', '.join(result.data.held_out)}, their last 5% ({len(result.data.val):,} tokens); "
            f"loss before {before:.4f}.")
    ends = [lora[0], lora[-1]] if len(lora) > 1 else lora
    gains = [f"{r.name} {before - r.val_after:+.4f}" for r in [*ends, *([full] if full else [])]]
    return f"{text} Loss taken off: {', '.join(gains)}."


class PeftMemoryLab(Lab):
    """Bytes of weights, gradients and AdamW state for full fine-tuning against LoRA, from the model's shapes."""

    DEFAULT_CSS = "PeftMemoryLab Figure PlotextPlot { height: 9; }"
    # Shown as one footer item: with "x Cancel" and the lesson's keys, four items would not fit 80 columns.
    BINDINGS = shown_as_one([Binding("m", "model", "Next model"),
                             *paired_keys("r", "R", "rank(2)", "rank(0.5)", "Rank ×2", down_help="Rank ÷2"),
                             Binding("t", "targets", "Next target set"),
                             Binding("f", "precision", "fp32 or mixed precision")], "m rR t f", "knobs")

    @dataclass(frozen=True)
    class State:
        model: str
        rank: int
        targets: str
        precision: str

    state = reactive(Initialize(lambda lab: held_rank(PeftMemoryLab.State(
        lab.params["model"], lab.params["rank"], lab.params["targets"], lab.params["precision"]))[0]))

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="readout")

    def action_model(self) -> None:
        from workbench_engines.finetune.memory import MODELS

        self._set(replace(self.state, model=cycled(list(MODELS), self.state.model)))

    def action_rank(self, factor: float) -> None:
        self._set(replace(self.state, rank=int(max(1, self.state.rank * factor))))

    def action_targets(self) -> None:
        from workbench_engines.finetune.memory import model_shape

        presets = list(model_shape(self.state.model).target_presets)
        self._set(replace(self.state, targets=cycled(presets, self.state.targets)))

    def action_precision(self) -> None:
        from workbench_engines.finetune.memory import PRECISIONS

        self._set(replace(self.state, precision=cycled(list(PRECISIONS), self.state.precision)))

    def _set(self, state: State) -> None:
        self.state, note = held_rank(state)
        self.status(note)

    def watch_state(self, state: State) -> None:
        from workbench_engines.finetune.memory import format_bytes, full_finetune, lora_finetune, model_shape

        shape = model_shape(state.model)
        full = full_finetune(shape, state.precision)
        lora = lora_finetune(shape, shape.targets(state.targets), state.rank, state.precision)
        gib = 2**30
        self.query_one(Figure).bars(
            f"{shape.name}, {state.precision}: GiB to train (activations not counted)",
            ["full", f"LoRA r={state.rank}"], [full.total / gib, lora.total / gib],
            hint="m model, r/R rank, t targets, f precision")
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("regime", "trainable", "weights", "gradients", "optimiser", "total"):
            table.add_column(name, justify="left" if name == "regime" else "right")
        for row in (full, lora):
            table.add_row(row.regime.split(" (")[0], f"{row.trainable:,}", format_bytes(row.weights),
                          format_bytes(row.gradients), format_bytes(row.optimizer), format_bytes(row.total))
        share = lora.trainable / full.parameters
        self.readout(Group(table, Text(
            f"{shape.parameters:,} parameters. LoRA on {shape.label(state.targets)} "
            f"({', '.join(shape.targets(state.targets))}) "
            f"trains {share:.3%} of them; its total is {lora.total / full.total:.1%} of full fine-tuning's.")))


def held_rank(state: PeftMemoryLab.State) -> tuple[PeftMemoryLab.State, str]:
    """The state with its rank held at the most the targeted layers allow, and a note when it was."""
    from workbench_engines.finetune.memory import max_rank, model_shape

    shape = model_shape(state.model)
    most = max_rank(shape, shape.targets(state.targets))
    if state.rank <= most:
        return state, ""
    return (replace(state, rank=most),
            f"Rank held at {most}: B·A cannot have rank above the smallest min(in, out) of these layers.")
