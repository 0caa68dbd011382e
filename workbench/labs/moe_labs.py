"""Labs of the Mixture-of-experts track: a router on a sentence, and sparse against dense training steps."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Input, Static

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.knobs import paired_keys
from workbench.typed import unescape
from workbench.widgets.plots import Figure
from workbench.widgets.profile_panel import ProfilePanel


class RouterLab(Lab):
    """Train a 2-expert MoE mini-former briefly, then see which expert each token of a sentence goes to."""

    BINDINGS = [Binding("r", "train", "Train"), *paired_keys("c", "C", "capacity(0.25)", "capacity(-0.25)", "capacity±")]
    model = reactive(None, always_update=True)
    """The trained MoE mini-former."""
    capacity_factor = reactive(1.0)
    """Tokens an expert may take, as a multiple of an even share."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["text"], placeholder="a line of text; Enter routes it")
        yield Static("r trains a 2-expert model (about 20 s); then type a line and press Enter.", classes="readout")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self._route()

    def action_capacity(self, step: float) -> None:
        self.capacity_factor = float(min(2.0, max(0.25, self.capacity_factor + step)))

    def action_train(self) -> None:
        steps = self.params["steps"]

        def work(progress: Progress):
            from workbench_engines.models.experiments import Variant, run_variants

            variant = Variant("2 experts", {"d_model": 64, "n_heads": 4, "hidden": 176, "ffn": "moe", "n_experts": 2,
                                            "top_k": 1, "n_layers": 2}, balance=0.05)
            curves = run_variants([variant], steps=steps,
                                  on_step=lambda c: progress(c.steps[-1] / steps, f"step {c.steps[-1]}"))
            return curves[0].model

        self.start(work, lambda model: setattr(self, "model", model), "Training the router")

    def watch_model(self) -> None:
        self._route()

    def watch_capacity_factor(self) -> None:
        self._route()

    def _route(self) -> None:
        if self.model is None:
            return
        from workbench_engines.models.explain import route
        from workbench_engines.models.small_gpt import shipped_tokenizer

        tokenizer = shipped_tokenizer()
        ids = tokenizer.encode_ordinary(unescape(self.query_one(Input).value))[:64] or [0]
        self.routing = route(self.model, ids, self.capacity_factor)
        """The Routing drawn last."""
        choice = self.routing.experts
        line = Text()
        for token, expert in zip(ids, choice):
            line.append(tokenizer.decode([token]).replace("\n", "⏎"), style="bold reverse" if expert == 1 else "")
            line.append("│" if expert == 0 else "┃")
        self.readout(Group(line, Text(
            f"expert 0: plain, │ ; expert 1: reverse video, ┃.  Tokens: {choice.count(0)} / {choice.count(1)}. "
            f"Capacity factor {self.capacity_factor:g} (c/C): {self.routing.dropped} of {self.routing.assignments} "
            "assignments dropped.")))


class SparseDenseLab(Lab):
    """Time one training step of a dense, an equally active sparse, and an equally large dense mini-former."""

    DEFAULT_CSS = "SparseDenseLab Figure PlotextPlot { height: 11; }"
    BINDINGS = [Binding("r", "race", "Race")]

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield ProfilePanel("r times a training step of each (the moe benchmark's last case, smaller).")

    def action_race(self) -> None:
        def cases():
            from workbench_engines.moe.bench import training_case

            return [training_case(16, 64, 64, 128, n_layers=2)]

        self.race(cases, "Timing", self._raced, repeats=5)

    def _raced(self, result: RaceResult) -> None:
        self.result = result
        self.query_one(Figure).bars("ms per training step (16 × 64 tokens)", [row.name for row in result.rows],
                                    [row.wall_s * 1e3 for row in result.rows])
        self.query_one(ProfilePanel).show(
            result.rows, result.baselines,
            "6 FLOPs per active weight per token (forward and backward); embeddings left out")
