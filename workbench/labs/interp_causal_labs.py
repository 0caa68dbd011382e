"""Causal interpretability labs: knock components out (ablation) and copy activations between runs (patching)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Input, Static

from workbench.labs.base import Lab, Progress
from workbench.labs.decoding_labs import load_model
from workbench.labs.knobs import cycled
from workbench.labs.token_labels import token_text
from workbench.typed import unescape
from workbench.widgets.heat_grid import LEGEND, HeatGrid
from workbench.widgets.plots import Figure, Series

MODELS = ("small-gpt", "smollm2")
MODEL_NAMES = {"small-gpt": "the small GPT", "smollm2": "SmolLM2-135M"}
REMOVABLE = 0.01
"""Δloss (nats) below which a lab calls a head removable: under 1% more perplexity."""
PAIRS = {"small-gpt": ("**JULIET**  \\nWhere art thou, my lord? Where art thou",
                       "**JULIET**  \\nWhere art thou, my lord? Now art thou"),
         "smollm2": ("The Eiffel Tower is in the city of", "The Colosseum is in the city of")}
"""Each model's default (clean, corrupted) prompt pair, loaded when m switches to it (\\n as typed: a newline)."""
CURVE_STEPS = 7
"""Points on the removal curve: 0 heads, then equal steps up to every head."""


def ablation_windows(model, plays: int, windows: int, length: int):
    """(N, length + 1) windows of the plays' held-out ends, in the model's own tokens."""
    from workbench_engines.evaluation.heldout import held_out_plays
    from workbench_engines.interp import text_windows
    from workbench_engines.models import small_gpt

    text = held_out_plays(small_gpt.shipped_tokenizer(), plays).text
    return text_windows(model.tokenizer.encode(text), length, windows)


def ablation_verdict(grid) -> str:
    """In words: the head that matters most, how many hardly matter, and MLPs against heads."""
    heads = grid.heads
    layer, head = np.unravel_index(int(np.argmax(heads)), heads.shape)
    removable = int((heads < REMOVABLE).sum())
    words = [(f"{grid.mode.capitalize()}-ablating one head at a time: head {head} of layer {layer} matters most "
              f"(Δloss {heads[layer, head]:+.3f} nats on {grid.base_loss:.3f}); {removable} of {heads.size} heads "
              f"cost under {REMOVABLE} nats each"
              + (", as Michel et al. found for most heads." if removable > heads.size / 2 else "."))]
    mlp = int(np.argmax(grid.mlps))
    if grid.mlps[mlp] > heads.max():
        words.append(f"The MLPs matter more than any head: MLP {mlp} costs {grid.mlps[mlp]:+.3f}.")
    else:
        words.append(f"No MLP costs more than the top head (largest: MLP {mlp}, {grid.mlps[mlp]:+.3f}).")
    return " ".join(words)


def curve_verdict(counts: list[int], curves: dict[str, np.ndarray], base: float) -> str:
    """In words: how many heads go before the loss rises 0.05 nats, for each ordering."""
    words = []
    for name, losses in curves.items():
        within = [k for k, loss in zip(counts, losses) if loss - base < 0.05]
        words.append(f"by {name}: {max(within)} of {counts[-1]} heads go for under 0.05 nats "
                     f"(all: {losses[-1] - base:+.2f})")
    return "Removing the least important heads first, " + "; ".join(words) + "."


class AblationLab(Lab):
    """The layers × heads grid of Δloss when each head is ablated alone; the loss as heads are removed in order."""

    DEFAULT_CSS = "AblationLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("r", "run", "Run", tooltip="Ablate every head and MLP alone"),
                Binding("z", "mode", "Mode", tooltip="Zero- or mean-ablation"),
                Binding("m", "model", "Model"), Binding("c", "curve", "Remove", tooltip="Remove heads in order")]
    mode = reactive("zero", init=False)
    model = reactive("small-gpt", init=False)
    grid = reactive(None, always_update=True)
    """The last AblationGrid."""
    curve = reactive(None, always_update=True)
    """(counts, {ordering: losses}, intact loss) of the last removal run."""
    grid_model = "small-gpt"
    """The model the grid on screen was measured on."""

    def compose_lab(self) -> ComposeResult:
        yield HeatGrid("r ablates every head and MLP of the small GPT alone (z: zero/mean, m: model).")
        yield Figure()
        yield Static("c then removes heads from the least important up.", classes="readout")

    def on_mount(self) -> None:
        self.mode, self.model = self.params["mode"], self.params["m"]

    def action_mode(self) -> None:
        if self.running:  # the grid on screen must match the knobs: change them between runs only
            self.status("Already running (x cancels it).")
            return
        self.mode = cycled(["zero", "mean"], self.mode)
        self.status(f"{self.mode}-ablation: r to run it")

    def action_model(self) -> None:
        if self.running:
            self.status("Already running (x cancels it).")
            return
        self.model = cycled(list(MODELS), self.model)
        self.status(f"{MODEL_NAMES[self.model]}: r to run it")

    def _windows(self, model):
        p = self.params
        if self.model == "smollm2":
            return ablation_windows(model, p["plays"], p["smol_windows"], p["smol_length"])
        return ablation_windows(model, p["plays"], p["windows"], p["length"])

    def action_run(self) -> None:
        which, mode = self.model, self.mode

        def work(progress: Progress):
            from workbench_engines.interp import ablation_grid

            model = load_model(which, progress)
            return ablation_grid(model.model, self._windows(model), mode, progress=progress)

        def done(grid) -> None:
            self.grid_model = which
            self.grid = grid

        self.start(work, done, f"Ablating {MODEL_NAMES[which]}")

    def watch_grid(self, grid) -> None:
        if grid is None:
            return
        top = max(float(grid.heads.max()), 1e-9)
        layers = [f"L{i}" for i in range(grid.heads.shape[0])]
        self.query_one(HeatGrid).show(np.clip(grid.heads / top, 0, 1), row_labels=layers,
                                      title=f"{grid.mode}: Δloss ÷ {top:.3f}", caption="column = head")
        self.readout(Group(Text(ablation_verdict(grid)),
                           Text(f"{MODEL_NAMES[self.grid_model]}, {grid.mode}-ablation of each head alone on "
                                f"{grid.tokens} held-out tokens (loss {grid.base_loss:.3f} nats intact); a cell is "
                                f"its Δloss as a share of the largest. {LEGEND}. c removes heads in order.",
                                style="dim")))
        self.status(f"Most important: Δloss {top:+.3f}; c removes heads from the least important up")

    def action_curve(self) -> None:
        grid, which, mode = self.grid, self.model, self.mode
        if grid is None or grid.mode != mode or self.grid_model != which:
            self.status("r first: the order comes from the grid (of the same ablation and model)")
            return

        def work(progress: Progress):
            from workbench_engines.compress.prune import head_importance
            from workbench_engines.interp import removal_curve

            model = load_model(which, progress)
            windows = self._windows(model)
            n = grid.heads.size
            counts = sorted({round(i * n / (CURVE_STEPS - 1)) for i in range(CURVE_STEPS)})
            orders = {"Δloss": grid.ranked()}
            if which == "small-gpt":  # gradients need float weights: SmolLM2's here are quantised
                scores = head_importance(model.model, windows).ravel()
                orders["gradient"] = [divmod(int(i), grid.heads.shape[1])
                                      for i in np.lexsort((np.arange(n), scores))]
            curves = {}
            for i, (name, order) in enumerate(orders.items()):
                def step(fraction: float, what: str, i=i) -> None:
                    progress((i + fraction) / len(orders), what)
                curves[name] = removal_curve(model.model, windows, order, counts, mode, progress=step)
            return counts, curves, grid.base_loss

        self.start(work, lambda curve: setattr(self, "curve", curve), "Removing heads")

    def watch_curve(self, curve) -> None:
        if curve is None:
            return
        counts, curves, base = curve
        self.query_one(Figure).lines(
            "loss as heads are removed, least important first",
            [Series(f"by {name}", counts, list(losses)) for name, losses in curves.items()], xlabel="heads removed")
        self.readout(Text(curve_verdict(counts, curves, base)))


@dataclass(frozen=True)
class PatchView:
    """A patch map with what drawing it needs: the model's name and token labels."""

    model: str
    labels: list[str]
    answer: str
    result: object


def patching_verdict(view: PatchView) -> str:
    """In words: where restoring one activation brings the answer back, early layers and late."""
    r = view.result.restored
    layers, t = r.shape
    layer, position, value = view.result.best()
    words = [(f"Patching one clean {view.result.kind} restores at most {value:.0%} of p({view.answer}) "
              f"(clean {view.result.p_clean:.3f}, corrupted {view.result.p_corrupt:.3f}): layer {layer} at "
              f"position {position} ({view.labels[position]}).")]
    changed = view.result.differing
    early = max(range(t), key=lambda p: r[0, p])
    late = max(range(t), key=lambda p: r[-1, p])
    if early in changed and late == t - 1 and late not in changed:
        words.append(f"In layer 0 the answer lives at the changed token ({view.labels[early]}); by layer "
                     f"{layers - 1} it has moved to the last position, where the prediction is read.")
    elif early in changed and late in changed:
        words.append(f"Through layer {layers - 1} it stays at the changed token ({view.labels[late]}): only the "
                     "last layers' attention carries it to the last position.")
    else:
        words.append(f"The most restoring position is {view.labels[early]} in layer 0 and {view.labels[late]} "
                     f"in layer {layers - 1}.")
    return " ".join(words)


class PatchingLab(Lab):
    """The layer × position map of restored probability for a clean and a corrupted prompt."""

    BINDINGS = [Binding("r", "run", "Patch all"), Binding("k", "kind", "Site"), Binding("m", "model", "Model")]
    model = reactive("small-gpt", init=False)
    kind = reactive("resid_pre", init=False)
    view = reactive(None, always_update=True)
    """The last PatchView."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["clean"], placeholder="clean prompt", id="clean")
        yield Input(value=self.params["corrupt"], placeholder="corrupted prompt, same token length", id="corrupt")
        yield HeatGrid("Enter or r patches every layer and position (k: site, m: model).")
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.model, self.kind = self.params["m"], self.params["kind"]
        self.action_run()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()
        self.focus()

    def action_model(self) -> None:
        if self.running:  # the map on screen must match the knobs: change them between runs only
            self.status("Already running (x cancels it).")
            return
        self.model = cycled(list(MODELS), self.model)
        clean, corrupt = ((self.params["clean"], self.params["corrupt"]) if self.model == self.params["m"]
                          else PAIRS[self.model])
        self.query_one("#clean", Input).value = clean
        self.query_one("#corrupt", Input).value = corrupt
        self.action_run()

    def action_kind(self) -> None:
        from workbench_engines.interp import PATCH_KINDS

        if self.running:
            self.status("Already running (x cancels it).")
            return
        self.kind = cycled(list(PATCH_KINDS), self.kind)
        self.action_run()

    def action_run(self) -> None:
        which, kind = self.model, self.kind
        clean = unescape(self.query_one("#clean", Input).value)
        corrupt = unescape(self.query_one("#corrupt", Input).value)

        def work(progress: Progress):
            from workbench_engines.errors import EngineError
            from workbench_engines.interp import patch_map

            model = load_model(which, progress)
            a, b = model.prompt_ids(clean), model.prompt_ids(corrupt)
            if len(a) != len(b):
                raise EngineError(f"the clean prompt is {len(a)} tokens and the corrupted one {len(b)}: patching "
                                  "compares them position by position, so change words for words of as many tokens")
            result = patch_map(model.model, a, b, kind=kind, progress=progress)
            labels = [token_text(model.tokenizer, i) for i in a]
            return PatchView(which, labels, token_text(model.tokenizer, result.answer), result)

        self.start(work, lambda view: setattr(self, "view", view), f"Patching {MODEL_NAMES[which]}")

    def watch_view(self, view: PatchView | None) -> None:
        if view is None:
            return
        r = view.result
        self.query_one(HeatGrid).show(np.clip(r.restored.T, 0, 1), row_labels=view.labels,
                                      title=f"{r.kind}: restored", caption="column = layer")
        self.readout(Group(Text(patching_verdict(view)),
                           Text(f"{MODEL_NAMES[view.model]}: the share of p({view.answer}) restored by patching one "
                                f"clean {r.kind} (row = position, column = layer, its last digit). {LEGEND}.",
                                style="dim")))
        layer, position, value = r.best()
        self.status(f"Best: layer {layer}, position {position}, {value:.0%} restored. k site, m model")
