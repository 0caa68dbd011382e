"""The payoff of Build a GPT: the learner's own GPT trained on the plays, live, then raced against the engine's.

The learner's code runs only in the exercise sandbox
(:mod:`workbench.exercises.buildgpt.payoff`); this lab streams its losses and
samples as they arrive, then trains the engine's GPT of the same shape on the
same batches and shows both measured by the engine on the same held-out
windows.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static
from textual.worker import get_current_worker

from workbench.exercises.buildgpt.payoff import Payoff, PayoffError, Settings, Step, payoff_verdict, run_payoff
from workbench.exercises.catalog import BUILD_A_GPT, unsolved
from workbench.labs.base import Lab, LabCancelled, Progress
from workbench.labs.mamba_labs import REDRAW_S, SMOOTHING, smoothed
from workbench.widgets.plots import Figure, Series

YOURS, ENGINE = "yours", "engine"


class TrainYourGPTLab(Lab):
    """Train the learner's mygpt on the plays with their own loop; race it against the engine's GPT."""

    DEFAULT_CSS = "TrainYourGPTLab Figure PlotextPlot { height: 10; } TrainYourGPTLab .gpt-sample { height: auto; }"
    BINDINGS = [Binding("r", "train", "Train yours", tooltip="Train your GPT, then the engine's on the same batches")]
    result = reactive(None, always_update=True)
    """The last Payoff."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="gpt-sample")
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.status(self._ready_text())

    def _missing(self) -> list[str]:
        store = self.app.store
        return unsolved(lambda eid: store.exercise_state(eid).solved_at is not None)

    def _ready_text(self) -> str:
        missing = self._missing()
        if missing:
            names = ", ".join(BUILD_A_GPT[m].title for m in missing[:3]) + (" …" if len(missing) > 3 else "")
            return (f"{len(missing)} of {len(BUILD_A_GPT)} steps still to solve ({names}); "
                    "`workbench exercises` checks them.")
        return (f"Every step solved: r trains your GPT for {self.params['steps']:,} steps on one thread, "
                "then the engine's on the same batches.")

    def action_train(self) -> None:
        if self.busy():
            return
        missing = self._missing()
        if missing:
            self.status(self._ready_text())
            return
        from workbench.exercises.workspace import workspace_path

        workspace = workspace_path(self.app.store)
        settings = Settings.of(self.params["steps"], self.params["seed"])
        curves: dict[str, list[float]] = {YOURS: [], ENGINE: []}

        def work(progress: Progress) -> Payoff | str:
            worker = get_current_worker()

            def mine(step: Step) -> None:
                curves[YOURS].append(step.loss)
                progress(0.5 * (step.step + 1) / settings.steps,
                         f"your GPT: step {step.step + 1}/{settings.steps}, loss {step.loss:.2f}, "
                         f"gradient norm {step.norm:.2f}")
                if step.sample is not None:
                    self._ui(self._show_sample, step.step + 1, step.sample)
                self._ui_stream(self._draw, {k: list(v) for k, v in curves.items()}, every=REDRAW_S)

            def engine(step: int, loss: float) -> None:
                curves[ENGINE].append(loss)
                progress(0.5 + 0.5 * step / settings.steps, f"engine GPT: step {step}/{settings.steps}")
                self._ui_stream(self._draw, {k: list(v) for k, v in curves.items()}, every=REDRAW_S)

            try:
                return run_payoff(workspace, settings, on_learner_step=mine, on_engine_step=engine,
                                  should_stop=lambda: worker.is_cancelled)
            except PayoffError as exc:
                if str(exc) == "cancelled":
                    raise LabCancelled from None
                return str(exc)

        self.start(work, lambda run: setattr(self, "result", run), "Training your GPT")

    def _show_sample(self, step: int, text: str) -> None:
        sample = Text(f"Your model at step {step:,}, from \"ROMEO:\" (temperature 0.8, top-k 20):\n", style="bold")
        sample.append(text.strip()[:300])
        self.query_one(".gpt-sample", Static).update(sample)

    def _draw(self, curves: dict[str, list[float]]) -> None:
        series = [Series(name, *smoothed(losses)) for name, losses in curves.items() if losses]
        if series:
            self.query_one(Figure).lines(f"training loss, mean of {SMOOTHING} steps", series, xlabel="step")

    def watch_result(self, run: Payoff | str | None) -> None:
        if run is None:
            return
        if isinstance(run, str):
            self.readout(Text(f"Your training stopped: {run}", style="bold"))
            return
        self._draw({YOURS: run.learner.losses, ENGINE: run.engine.losses})
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("model", "params", "ms/step", "train loss", "val loss"):
            table.add_column(name, justify="left" if name == "model" else "right", no_wrap=True)
        for side in (run.learner, run.engine):
            table.add_row(side.name, f"{side.parameters:,}", f"{side.seconds_per_step * 1e3:.0f}",
                          f"{side.final_train_loss:.3f}", f"{side.val_loss:.3f}")
        s = run.settings
        source = Text(f"{s.steps:,} steps of {s.batch}×{s.seq_len} tokens, AdamW at {s.max_lr:g} (warm-up {s.warmup}, "
                      f"cosine to {s.min_lr_ratio:g}×), seed {s.seed}, one thread each; train loss: mean of the last "
                      f"20 steps; val loss: the engine's, {s.eval_windows} held-out windows.", style="dim")
        self.readout(Group(table, Text(payoff_verdict(run)), source))
