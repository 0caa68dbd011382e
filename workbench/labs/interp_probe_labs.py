"""Interpretability labs: linear probes with their control task by layer, and integrated gradients per token."""

from __future__ import annotations

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.labs.decoding_labs import load_target
from workbench.labs.knobs import cycled
from workbench.labs.token_labels import token_text
from workbench.widgets.plots import Figure, Series

PROBE_MODELS = ("small GPT", "MiniLM")
"""The models the probes lab reads, in the order m cycles them."""
ATTRIBUTION_MODELS = ("small GPT", "SmolLM2")
STEPS = (4, 8, 16, 32, 64, 128)
"""The quadrature points s steps through."""
BASELINES = ("mean", "zero")
BAR = 16
"""Columns of a full attribution bar on either side of the axis."""


_FEATURES: dict[tuple[str, int], tuple] = {}
"""probe_features' results by (model, per_genre): a model's layers are read once per process."""


def probe_features(model: str, per_genre: int, progress: Progress | None = None) -> tuple:
    """(the ProbeData, each layer's mean-pooled features) for one model, computed once per process.

    progress(fraction, what) follows the batches (it may raise to cancel; nothing is kept then).
    """
    from workbench_engines.interp.probing import genre_lines, gpt_features, minilm_features

    key = (model, per_genre)
    if key not in _FEATURES:
        data = genre_lines(per_genre)
        if model == "MiniLM":
            from workbench_engines.models import minilm

            features = minilm_features(minilm.load(), data.texts, progress=progress)
        else:
            features = gpt_features(load_target(), data.texts, progress=progress)
        _FEATURES[key] = data, tuple(features)
    return _FEATURES[key]


def run_probes(model: str, per_genre: int, progress: Progress | None = None):
    """The lab's run: the ProbeResult of every layer of model on the genre task and its control."""
    from workbench_engines.interp.probing import probe_by_layer

    def reading(fraction: float, what: str) -> None:
        progress(0.8 * fraction, what)

    def fitting(fraction: float, what: str) -> None:
        progress(0.8 + 0.2 * fraction, what)

    data, features = probe_features(model, per_genre, reading if progress else None)
    return probe_by_layer(list(features), data.labels, data.control, len(data.genres),
                          progress=fitting if progress else None)


def probes_verdict(model: str, result) -> str:
    """In words: the layer of highest selectivity, and whether the probe beat its control there."""
    best = result.best
    where = "the embeddings (layer 0)" if best.layer == 0 else f"layer {best.layer}"
    words = [f"{model}: selectivity peaks at {where}: {best.accuracy:.1%} on genre against {best.control_accuracy:.1%} "
             f"on the control task, {best.selectivity:+.1%}."]
    rival = max((p for p in result.layers if p.layer != best.layer), key=lambda p: (p.accuracy, -p.layer))
    if rival.accuracy >= best.accuracy:
        words.append(f"Layer {rival.layer} is as accurate or more ({rival.accuracy:.1%}), but its control probe "
                     f"reaches {rival.control_accuracy:.1%}: selectivity {rival.selectivity:+.1%}.")
    if best.selectivity <= 0:
        words.append("No layer beats its control: nothing here says the genre is linearly readable.")
    return " ".join(words)


class ProbesLab(Lab):
    """Accuracy of a genre probe and of its control-task probe at every layer of the small GPT or MiniLM."""

    DEFAULT_CSS = "ProbesLab Figure PlotextPlot { height: 12; }"
    BINDINGS = [Binding("m", "model", "Model")]
    model = reactive("small GPT", init=False)
    result = reactive(None, always_update=True)
    """The last ProbeResult."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("m switches the small GPT and MiniLM (each model's layers are read once, then kept).",
                     classes="readout")

    def on_mount(self) -> None:
        self._probe(self.model)

    def action_model(self) -> None:
        if self.busy():
            return
        self.model = cycled(PROBE_MODELS, self.model)

    def watch_model(self, model: str) -> None:
        self._probe(model)

    def _probe(self, model: str) -> None:
        per_genre = self.params["per_genre"]
        self.start(lambda progress: run_probes(model, per_genre, progress),
                   lambda result: setattr(self, "result", result), f"Probing {model}")

    def watch_result(self, result) -> None:
        if result is None:
            return
        layers = [p.layer for p in result.layers]
        shown = [v for p in result.layers for v in (p.accuracy, p.control_accuracy)]
        low, high = min(shown), max(shown)
        self.query_one(Figure).lines(
            f"{self.model}: genre probe vs control probe, test accuracy by layer",
            [Series("genre", layers, [p.accuracy for p in result.layers]),
             Series("control", layers, [p.control_accuracy for p in result.layers])],
            xlabel="layer (0 = embeddings)", ylim=(max(0.0, low - 0.05), min(1.0, high + 0.05)))
        table = Table(box=None, header_style="bold")
        for name in ("layer", *(str(l) for l in layers)):
            table.add_column(name, justify="right")
        table.add_row("genre", *(f"{p.accuracy:.0%}" for p in result.layers))
        table.add_row("control", *(f"{p.control_accuracy:.0%}" for p in result.layers))
        table.add_row("select.", *(f"{100 * p.selectivity:+.1f}" for p in result.layers))
        source = Text(f"{result.train} passages fitted, {result.test} tested, 4 spoken lines each from the held-out "
                      "ends of the comedies, tragedies and histories; mean-pooled. Always guessing the most common "
                      f"class scores {result.chance:.0%} on genre, {result.control_chance:.0%} on the control task.",
                      style="dim")
        self.readout(Group(table, Text(probes_verdict(self.model, result)), source))
        best = result.best
        self.status(f"{self.model}: best selectivity at layer {best.layer}, {best.selectivity:+.1%}. "
                    "m switches model")


def attribution_model(name: str, progress: Progress | None = None):
    """The small GPT, or SmolLM2 with fp32 weights: its quantised linears' C kernels cut the gradient."""
    if name == "small GPT":
        return load_target(progress)
    from workbench_engines.models.llama import bundled

    if progress is not None:
        progress(0.02, "loading SmolLM2-135M (fp32: gradients need torch's matmuls)")
    return bundled("fp32")


def run_attribution(model: str, prompt: str, steps: int, baseline: str, keep_first: bool = False,
                    progress: Progress | None = None):
    """(the Attribution of the model's top next token, each prompt token's text, the top token's text).

    keep_first leaves the first token at its input along the path (SmolLM2's attention sink; see
    engines/interp/attribution.py).
    """
    from workbench_engines.interp.attribution import integrated_gradients

    pretrained = attribution_model(model, progress)
    ids = pretrained.prompt_ids(prompt)[-pretrained.config.context:]
    result = integrated_gradients(pretrained.model, ids, steps=steps, baseline=baseline, keep_first=keep_first,
                                  progress=progress)
    tokenizer = pretrained.tokenizer
    return result, [token_text(tokenizer, i) for i in ids], token_text(tokenizer, result.target)


def bar(value: float, high: float) -> str:
    """A diverging bar: negative values grow left of the axis │, positive ones right."""
    cells = int(round(abs(value) / max(high, 1e-12) * BAR))
    left = ("░" * cells).rjust(BAR) if value < 0 else " " * BAR
    right = ("█" * cells).ljust(BAR) if value > 0 else " " * BAR
    return f"{left}│{right}"


def most_influential(result, tokens: list[str], k: int = 3) -> list[tuple[str, float]]:
    """The k tokens of largest |integrated gradient|, largest first, as (text, score)."""
    order = np.argsort(-np.abs(result.scores), kind="stable")[:k]
    return [(tokens[i], float(result.scores[i])) for i in order]


def gap_text(gap: float) -> str:
    """The completeness gap as a percentage, or as a multiple where the quadrature is off by orders of magnitude."""
    return f"{gap:.2%}" if gap < 10 else f"{gap:.3g} times F(x) − F(x')"


def attribution_verdict(model: str, result, tokens: list[str], top: str) -> str:
    """In words: which tokens moved the top token's logit most, and how well completeness held."""
    named = ", ".join(f"'{t}' ({s:+.2f})" for t, s in most_influential(result, tokens))
    words = [f"{model}'s top next token is '{top}'. The tokens that moved its logit most: {named}."]
    held = (f"Completeness: the scores sum to {result.total:.4g} against F(x) − F(x') = {result.delta:.3f}, "
            f"a gap of {gap_text(result.gap)} at {result.steps} steps")
    if result.gap <= 0.01:
        words.append(held + ".")
    elif result.gap > 1 and not result.keep_first and result.baseline == "mean":
        words.append(held + ": the output jumps along this path, and more steps will not fix it. f keeps the "
                     "first token in place: a model that makes it an attention sink switches the sink on and off "
                     "as it moves.")
    else:
        words.append(held + f": too few steps for this path from the {result.baseline} baseline.")
    return " ".join(words)


class AttributionLab(Lab):
    """Integrated gradients and gradient × input of each prompt token for the model's top next token."""

    BINDINGS = [Binding("m", "model", "Model"), Binding("s", "steps", "Steps"), Binding("b", "baseline", "Baseline"),
                Binding("f", "keep_first", "Sink", tooltip="Keep the first token, an attention sink, in place or move it")]
    model = reactive("small GPT", init=False)
    steps = reactive(32, init=False)
    baseline = reactive("mean", init=False)
    keep_first = reactive(False, init=False)
    """Whether the first token stays at its input along the path."""
    outcome = reactive(None, always_update=True)
    """(Attribution, token texts, top token's text) of the last run."""

    def compose_lab(self) -> ComposeResult:
        yield Static("m switches the small GPT and SmolLM2; s steps through 4 to 128 quadrature points; b switches "
                     "the baseline: the average token or zero; f keeps the first token in place or moves it.",
                     classes="readout")

    def on_mount(self) -> None:
        self.steps = int(self.params["steps"])
        self._attribute()

    def action_model(self) -> None:
        if self.busy():
            return
        self.model = cycled(ATTRIBUTION_MODELS, self.model)

    def action_steps(self) -> None:
        if self.busy():
            return
        self.steps = cycled(STEPS, self.steps) if self.steps in STEPS else STEPS[0]

    def action_baseline(self) -> None:
        if self.busy():
            return
        self.baseline = cycled(BASELINES, self.baseline)

    def action_keep_first(self) -> None:
        if self.busy():
            return
        self.keep_first = not self.keep_first

    def watch_model(self) -> None:
        self._attribute()

    def watch_keep_first(self) -> None:
        self._attribute()

    def watch_steps(self) -> None:
        self._attribute()

    def watch_baseline(self) -> None:
        self._attribute()

    def _attribute(self) -> None:
        model, prompt, steps, baseline = self.model, self.params["prompt"], self.steps, self.baseline
        keep = self.keep_first
        self.start(lambda progress: run_attribution(model, prompt, steps, baseline, keep, progress),
                   lambda outcome: setattr(self, "outcome", outcome), f"Integrating gradients on {model}")

    def watch_outcome(self, outcome) -> None:
        if outcome is None:
            return
        result, tokens, top = outcome
        high = float(np.abs(result.scores).max())
        table = Table(box=None, header_style="bold", padding=(0, 1))
        for name, justify in (("token", "left"), ("IG", "right"), ("g×x", "right"), ("−".rjust(BAR) + "│+ IG", "left")):
            table.add_column(name, justify=justify, no_wrap=True)
        for text, score, gxi in zip(tokens, result.scores, result.grad_x_input):
            table.add_row(text[:12], f"{score:+.2f}", f"{gxi:+.2f}", bar(float(score), high))
        head = Text(f"{self.model}: attributions of the logit of '{top}', {result.steps} trapezoid steps from the "
                    f"{result.baseline} baseline" + (", first token kept" if result.keep_first else ""), style="bold")
        self.readout(Group(head, table, Text(attribution_verdict(self.model, result, tokens, top))))
        self.status(f"Σ IG {result.total:.4g} vs F(x) − F(x') {result.delta:.4g}: gap {gap_text(result.gap)}. "
                    "m model, s steps, b baseline, f first token")
