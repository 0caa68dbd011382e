"""Labs of the Transformer blocks track: norms, activations, variants trained side by side, the residual stream.

The training labs run real, short trainings (seconds to a minute on a laptop
CPU) on the plays with the shipped 2,048-token tokenizer, in the lab's worker:
curves update live, x cancels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.labs.knobs import paired_keys, plus_minus_keys
from workbench.typed import unescape
from workbench.widgets.plots import Figure, Series


class NormsLab(Lab):
    """One vector through LayerNorm and RMSNorm: what each removes, and what survives a shift."""

    BINDINGS = [*paired_keys("s", "S", "shift(1)", "shift(-1)", "shift±"),
                *paired_keys("m", "M", "scale(2)", "scale(0.5)", "scale×÷2"), Binding("z", "reset", "Reset")]

    @dataclass(frozen=True)
    class State:
        shift: float = 0.0
        scale: float = 1.0

    state = reactive(State())

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def action_shift(self, step: float) -> None:
        self.state = replace(self.state, shift=self.state.shift + step)

    def action_scale(self, factor: float) -> None:
        self.state = replace(self.state, scale=self.state.scale * factor)

    def action_reset(self) -> None:
        self.state = NormsLab.State()

    def watch_state(self, state: State) -> None:
        from workbench_engines.models.explain import norm_outputs

        base = np.asarray(self.params["vector"], dtype=np.float64)
        x = base * state.scale + state.shift
        now, before = norm_outputs(x), norm_outputs(base)
        self.outputs = now
        """The NormOutputs drawn last."""
        table = Table(box=None, header_style="bold", title=f"input = vector × {state.scale:g} + {state.shift:g}",
                      title_justify="left")
        for name in ("", "values", "mean", "RMS", "same as unshifted?"):
            table.add_column(name, justify="left" if name in ("", "values") else "right")
        for name, v, v0 in (("input", x, base), ("LayerNorm", now.layer, before.layer), ("RMSNorm", now.rms, before.rms)):
            same = "—" if name == "input" else ("yes" if np.allclose(v, v0, atol=1e-3) else "no")
            table.add_row(name, " ".join(f"{a:+.2f}" for a in v[:6]), f"{v.mean():+.3f}",
                          f"{np.sqrt((v ** 2).mean()):.3f}", same)
        table.caption = ("LayerNorm subtracts the mean then divides by the std; RMSNorm only divides by the RMS. "
                         "s/S shift, m/M scale, z resets")
        self.readout(table)


class ActivationCurvesLab(Lab):
    """GELU (exact and tanh), ReLU and SiLU plotted; the gap between the two GELUs measured."""

    DEFAULT_CSS = "ActivationCurvesLab Figure PlotextPlot { height: 12; }"
    BINDINGS = plus_minus_keys("zoom(0.5)", "zoom(2)", "Zoom in/out")
    span = reactive(4.0)
    """The plot shows [−span, span]."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="readout")

    def action_zoom(self, factor: float) -> None:
        self.span = float(min(16.0, max(0.5, self.span * factor)))

    def watch_span(self, span: float) -> None:
        from workbench_engines.models.explain import activation_curves, feed_forward_sizes

        curves = activation_curves(span)
        self.query_one(Figure).lines(f"activations on [−{span:g}, {span:g}]",
                                     [Series(name, curves.x.tolist(), y.tolist()) for name, y in curves.curves.items()],
                                     hint="+/- zoom")
        self.gap = curves.gelu_tanh_gap
        sizes = feed_forward_sizes(self.params["d_model"], self.params["hidden"])
        d = self.params["d_model"]
        self.readout(Text(
            f"largest |GELU − tanh-GELU| on [−8, 8]: {self.gap:.1e}. GELU is x·Φ(x): near 0 for large negative x, "
            f"x for large positive x, smooth and slightly negative in between.\n"
            f"Parameters at d_model {d}: GELU MLP (hidden {sizes.gelu_hidden}) {sizes.gelu_weights:,} weights; SwiGLU "
            f"with 8/3·d = {sizes.swiglu_hidden} hidden units, three matrices: {sizes.swiglu_weights:,}."))


@dataclass(frozen=True)
class Trained:
    """What a TrainCompareLab run produced: the curves, and what the readout adds for its preset."""

    curves: list
    samples: list[tuple[str, str]]
    """(variant, text it wrote), for the objectives preset."""
    expert_shares: list[list[float]]
    """Per variant, each expert's share of held-out tokens in percent, for the balance preset."""
    seed: int = 0


class TrainCompareLab(Lab):
    """Train a few mini-former variants on the plays, the loss curves drawn as they train."""

    DEFAULT_CSS = "TrainCompareLab Figure PlotextPlot { height: 12; }"
    BINDINGS = [Binding("r", "train", "Train"), Binding("s", "next_seed", "Next seed")]
    curves = reactive(list, always_update=True)
    """The Curves so far, redrawn live while training."""
    trained = reactive(None, always_update=True)
    """The finished run."""
    seed = 0
    """The seed the next r trains with; s moves on to a new one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.val_by_seed: dict[int, dict[str, float]] = {}
        """Each finished seed's validation loss per variant: the spread between seeds, measured."""

    def action_next_seed(self) -> None:
        if self.running:
            self.status("Already running (x cancels it).")
            return
        self.seed = max(self.val_by_seed, default=-1) + 1
        self.action_train()

    def compose_lab(self) -> ComposeResult:
        from workbench_engines.models.experiments import PRESETS

        yield Figure()
        names = ", ".join(v["name"] for v in PRESETS[self.params["preset"]])
        yield Static(f"r trains: {names} ({self.params['steps']} steps each; x cancels).", classes="readout")

    def action_train(self) -> None:
        from workbench_engines.models.experiments import preset_variants

        preset, steps, seed = self.params["preset"], self.params["steps"], self.seed
        variants = preset_variants(preset)

        def work(progress: Progress) -> Trained:
            from workbench_engines.models.experiments import expert_histogram, lesson_data, run_variants
            from workbench_engines.models.explain import objective_samples
            from workbench_engines.models.small_gpt import shipped_tokenizer

            progress(0.02, "encoding the plays")
            data = lesson_data()
            names = [v.name for v in variants]
            shown: dict[str, object] = {}

            def on_step(curve) -> None:
                shown[curve.name] = curve
                progress((names.index(curve.name) + curve.steps[-1] / steps) / len(names),
                         f"{curve.name}: step {curve.steps[-1]}")
                self._ui(setattr, self, "curves", list(shown.values()))

            curves = run_variants(variants, steps=steps, data=data, on_step=on_step, seed=seed)
            samples = objective_samples(curves, shipped_tokenizer()) if preset == "objectives" else []
            shares = []
            if preset == "balance":
                for curve in curves:
                    histogram = expert_histogram(curve.model, data)
                    shares.append((100 * histogram.sum(axis=0) / histogram.sum()).tolist())
            return Trained(curves, samples, shares, seed)

        self.start(work, lambda trained: setattr(self, "trained", trained), f"Training (seed {seed})")

    def watch_curves(self, curves: list) -> None:
        if not curves:
            return
        series = []
        for curve in curves:
            losses = np.minimum(np.asarray(curve.losses, dtype=float), 12.0)
            smooth = np.convolve(losses, np.ones(5) / 5, mode="valid") if len(losses) >= 5 else losses
            series.append(Series(curve.name, curve.steps[len(curve.steps) - len(smooth):], smooth.tolist()))
        self.query_one(Figure).lines("training loss (5-step mean, capped at 12)", series, xlabel="step")

    def watch_trained(self, trained: Trained | None) -> None:
        if trained is None:
            return
        self.curves = trained.curves
        self.val_by_seed[trained.seed] = {c.name: c.val_loss for c in trained.curves}
        table = Table(box=None, header_style="bold", title=f"seed {trained.seed}", title_justify="left")
        for name in ("variant", "params", "last loss", "val loss", "max |grad|", "seconds"):
            table.add_column(name, justify="left" if name == "variant" else "right")
        for c in trained.curves:
            table.add_row(c.name, f"{c.parameters:,}", "diverged" if c.diverged else f"{float(np.mean(c.losses[-10:])):.3f}",
                          f"{c.val_loss:.3f}" if c.val_loss is not None and np.isfinite(c.val_loss) else "-",
                          f"{max(c.grad_norms):.1f}", f"{c.seconds:.1f}")
        parts: list[Any] = [table]
        if len(self.val_by_seed) > 1:
            parts.append(Text(seed_summary(self.val_by_seed)))
        if self.params["preset"] == "depth":
            parts.append(Text(depth_verdict(trained.curves, self.val_by_seed)))
        parts.append(Text("s trains the same variants with another seed (new initial weights and batch order).",
                          style="dim"))
        if trained.samples:
            parts.append(Text("Losses are of different tasks: masked LM predicts 15% of tokens seeing both sides.",
                              style="dim"))
            parts += [Text(f"{name}: {text}") for name, text in trained.samples]
        if trained.expert_shares:
            experts = [f"e{e}" for e in range(len(trained.expert_shares[0]))]
            self.query_one(Figure).grouped_bars(
                "share of held-out tokens per expert (both layers), %", experts,
                {c.name: share for c, share in zip(trained.curves, trained.expert_shares)})
            for curve, share in zip(trained.curves, trained.expert_shares):
                parts.append(Text(f"{curve.name}: tokens per expert " + " ".join(f"{s:.0f}%" for s in share)))
        self.readout(Group(*parts))


SEED_SPREAD = 0.05
"""Nats: how far one variant's validation loss moved between seeds 0 and 1 at the depth preset's 150 steps in our
runs (0.04 for one block, 0.02 for two); the yardstick until a learner has measured a spread of their own."""


def seed_spread(val_by_seed: dict[int, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Per variant over the seeds run so far: (mean, half the range) of the validation loss, finite runs only."""
    names = dict.fromkeys(name for run in val_by_seed.values() for name in run)
    spread = {}
    for name in names:
        losses = [run[name] for run in val_by_seed.values() if run.get(name) is not None and math.isfinite(run[name])]
        if losses:
            spread[name] = (float(np.mean(losses)), (max(losses) - min(losses)) / 2)
    return spread


def seed_summary(val_by_seed: dict[int, dict[str, float]]) -> str:
    """One line: each variant's mean validation loss ± half its range over the seeds run so far."""
    seeds = sorted(val_by_seed)
    parts = [f"{name} {mean:.3f} ± {half:.3f}" for name, (mean, half) in seed_spread(val_by_seed).items()]
    return f"Over seeds {', '.join(map(str, seeds))}: " + "; ".join(parts) + " (mean ± half the range)."


def depth_verdict(curves: list, val_by_seed: dict[int, dict[str, float]] | None = None) -> str:
    """In words: did more blocks lower the loss at this budget, beyond the seed-to-seed spread, and at what cost.

    With two or more seeds run, the means are compared against the spread measured between them; with one,
    against SEED_SPREAD, our own measurement.
    """
    if len(curves) < 2:
        return ""
    broken = [c.name for c in curves if c.diverged or c.val_loss is None or not math.isfinite(c.val_loss)]
    if broken:
        return f"{', '.join(broken)} diverged or has no validation loss, so depths cannot be compared on this run."
    runs = val_by_seed or {}
    if len(runs) > 1:
        stats = seed_spread(runs)
        losses = {c.name: stats[c.name][0] for c in curves}
        spread = max(2 * half for _, half in stats.values())
        yardstick = f"the spread between your {len(runs)} seeds ({spread:.3f})"
    else:
        losses = {c.name: c.val_loss for c in curves}
        spread, yardstick = SEED_SPREAD, f"the seed spread we measured ({SEED_SPREAD})"
    first = curves[0].name
    words, better = [], []
    for curve in curves[1:]:
        change = losses[curve.name] - losses[first]
        side = "lower" if change < 0 else "higher"
        if abs(change) < spread:
            words.append(f"{curve.name} {abs(change):.3f} {side}, within {yardstick}")
        else:
            words.append(f"{curve.name} {abs(change):.3f} {side}")
            if change < 0:
                better.append(curve.name)
    if len(better) == len(curves) - 1:
        why = "More blocks lowered the validation loss."
    elif better:
        why = f"Depth has begun to pay: {' and '.join(better)} below {first}, the rest not yet."
    else:
        why = (f"After {len(curves[0].steps)} steps depth has not paid yet: every depth is still learning the same "
               "easy statistics, and a deeper model has more to set up.")
    per_step = [c.seconds / max(1, len(c.steps)) for c in curves]
    cost = ", ".join(f"×{t / per_step[0]:.1f}" for t in per_step[1:])
    return f"{why} Validation loss against {first}: {'; '.join(words)}. Time per step {cost} with depth."


class ResidualStatsLab(Lab):
    """The residual stream's size layer by layer in a pre-LN and a post-LN mini-former, and its histogram."""

    DEFAULT_CSS = "ResidualStatsLab Figure PlotextPlot { height: 11; }"
    BINDINGS = [Binding("t", "train", "Train both"), Binding("h", "histogram", "Hist/RMS"),
                *paired_keys("right_square_bracket", "left_square_bracket", "layer_step(1)", "layer_step(-1)",
                             "layer±", display="]/[")]

    @dataclass(frozen=True)
    class View:
        histogram: bool
        layer: int
        """Which point of the stack the histogram shows (0 = the embedding)."""
        trained: bool

    view = reactive(None, always_update=True)

    def on_mount(self) -> None:
        import torch

        from workbench_engines.models.miniformer import MiniConfig, MiniFormer

        self.models: dict[str, Any] = {}
        """The pre-LN and post-LN mini-formers, initialised from the same seed."""
        for placement in ("pre", "post"):
            torch.manual_seed(0)
            self.models[placement] = MiniFormer(MiniConfig(vocab_size=2048, context=64, d_model=64,
                                                           n_layers=self.params["layers"], placement=placement))
        self.view = ResidualStatsLab.View(False, self.params["layers"], False)

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("", classes="readout")

    def action_histogram(self) -> None:
        self.view = replace(self.view, histogram=not self.view.histogram)

    def action_layer_step(self, step: int) -> None:
        self.view = replace(self.view, layer=int(min(self.params["layers"], max(0, self.view.layer + step))))

    def action_train(self) -> None:
        steps = self.params["steps"]

        def work(progress: Progress):
            from workbench_engines.models.experiments import lesson_data
            from workbench_engines.models.objectives import objective
            from workbench_engines.models.train import TrainConfig, train

            data = lesson_data()
            for i, model in enumerate(self.models.values()):
                model.train()
                config = TrainConfig(steps=steps, batch_size=16, seq_len=64, lr=3e-3, warmup=steps // 10,
                                     eval_every=steps, eval_windows=4, checkpoint_every=steps)
                train(model, data, config, loss_fn=objective("causal"),
                      on_step=lambda r, i=i: progress((i + r.step / steps) / 2, f"model {i + 1}: step {r.step}"))
            return True

        self.start(work, lambda _: setattr(self, "view", replace(self.view, trained=True)), "Training both")

    def watch_view(self, view: View | None) -> None:
        if view is None:
            return
        from workbench_engines.models.explain import residual_stream
        from workbench_engines.models.small_gpt import shipped_tokenizer

        ids = shipped_tokenizer().encode_ordinary(unescape(self.params["text"]))[:64]
        stream = residual_stream(self.models, ids)
        self.rms = stream.rms
        """model name -> RMS of the stream at each point, as drawn last."""
        figure = self.query_one(Figure)
        when = "after training" if view.trained else "at initialisation"
        if view.histogram:
            figure.histogram(f"residual stream values after block {view.layer}, {when}",
                             {f"{name}-LN": states[view.layer].ravel() for name, states in stream.hidden.items()},
                             xlabel="value", hint="[ ] move")
        else:
            layers = list(range(self.params["layers"] + 1))
            figure.lines(f"RMS of the residual stream, layer by layer ({when})",
                         [Series(f"{name}-LN", layers, values) for name, values in self.rms.items()],
                         xlabel="block (0 = embedding)")
        self.readout(Text(
            "pre-LN RMS by layer: " + " ".join(f"{v:.2f}" for v in self.rms["pre"]) + "\npost-LN RMS by layer: "
            + " ".join(f"{v:.2f}" for v in self.rms["post"]) + "\nt trains both briefly, h switches to a histogram"))
