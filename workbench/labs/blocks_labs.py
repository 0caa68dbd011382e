"""Labs of the Transformer blocks, Training and Mixture-of-experts tracks, on the mini-former.

The training labs run real, short trainings (seconds to a minute on a laptop
CPU) on the plays with the shipped 2,048-token tokenizer, in the lab's worker:
curves update live, x cancels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static
from textual_plotext import PlotextPlot

from workbench.labs.base import Lab, Progress, marker
from workbench.typed import unescape


class NormsLab(Lab):
    """One vector through LayerNorm and RMSNorm: what each removes, and what survives a shift."""

    BINDINGS = [Binding("s", "shift(1)", "Shift +1"), Binding("S", "shift(-1)", "Shift -1"),
                Binding("m", "scale(2)", "Scale ×2"), Binding("M", "scale(0.5)", "Scale ÷2"), Binding("z", "reset", "Reset")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.shift, self.scale = 0.0, 1.0

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def action_shift(self, step: float) -> None:
        self.shift += step
        self.redraw()

    def action_scale(self, factor: float) -> None:
        self.scale *= factor
        self.redraw()

    def action_reset(self) -> None:
        self.shift, self.scale = 0.0, 1.0
        self.redraw()

    def redraw(self) -> None:
        base = np.asarray(self.params["vector"], dtype=np.float64)
        x = base * self.scale + self.shift
        ln, rms = self.outputs_at(x)
        ln0, rms0 = self.outputs_at(base)
        self.ln, self.rms = ln, rms
        table = Table(box=None, header_style="bold", title=f"input = vector × {self.scale:g} + {self.shift:g}",
                      title_justify="left")
        for name in ("", "values", "mean", "RMS", "same as unshifted?"):
            table.add_column(name, justify="left" if name in ("", "values") else "right")
        for name, v, v0 in (("input", x, base), ("LayerNorm", ln, ln0), ("RMSNorm", rms, rms0)):
            same = "—" if name == "input" else ("yes" if np.allclose(v, v0, atol=1e-3) else "no")
            table.add_row(name, " ".join(f"{a:+.2f}" for a in v[:6]), f"{v.mean():+.3f}",
                          f"{np.sqrt((v ** 2).mean()):.3f}", same)
        table.caption = ("LayerNorm subtracts the mean then divides by the std; RMSNorm only divides by the RMS. "
                         "s/S shift, m/M scale, z resets")
        self.query_one(".readout", Static).update(table)

    @staticmethod
    def outputs_at(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from workbench_engines.models.layers import LayerNorm, RMSNorm

        t = torch.tensor(x)[None]
        with torch.no_grad():
            return LayerNorm(len(x)).double()(t)[0].numpy(), RMSNorm(len(x), eps=1e-5).double()(t)[0].numpy()


class ActivationCurvesLab(Lab):
    """GELU (exact and tanh), ReLU and SiLU plotted; the gap between the two GELUs measured."""

    DEFAULT_CSS = "ActivationCurvesLab PlotextPlot { height: 14; }"
    BINDINGS = [Binding("plus,equals_sign", "zoom(0.5)", "Zoom in"), Binding("minus", "zoom(2)", "Zoom out")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.span = 4.0

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def action_zoom(self, factor: float) -> None:
        self.span = float(min(16.0, max(0.5, self.span * factor)))
        self.redraw()

    def redraw(self) -> None:
        import torch

        from workbench_engines.models.layers import gelu, silu

        x = torch.linspace(-self.span, self.span, 161, dtype=torch.float64)
        curves = {"GELU": gelu(x), "GELU tanh": gelu(x, "tanh"), "ReLU": torch.relu(x), "SiLU": silu(x)}
        plt = self.fresh_plot()
        for i, (name, y) in enumerate((n, y) for n, y in curves.items() if n != "GELU tanh"):
            plt.plot(x.tolist(), y.tolist(), label=name, marker=marker(i))
        plt.title(f"activations on [−{self.span:g}, {self.span:g}] (+/- zoom)")
        self.refresh_plot()
        wide = torch.linspace(-8, 8, 20001, dtype=torch.float64)
        self.gap = float((gelu(wide) - gelu(wide, "tanh")).abs().max())
        d, hidden = self.params["d_model"], self.params["hidden"]
        swiglu_hidden = 32 * int(np.ceil(8 * d / 3 / 32))
        self.query_one(".readout", Static).update(Text(
            f"largest |GELU − tanh-GELU| on [−8, 8]: {self.gap:.1e}. GELU is x·Φ(x): near 0 for large negative x, "
            f"x for large positive x, smooth and slightly negative in between.\n"
            f"Parameters at d_model {d}: GELU MLP (hidden {hidden}) {2 * d * hidden:,} weights; SwiGLU with "
            f"8/3·d = {swiglu_hidden} hidden units, three matrices: {3 * d * swiglu_hidden:,}."))


TRAINING_PRESETS: dict[str, list[dict]] = {
    "residuals": [
        {"name": "pre-LN", "model": {"placement": "pre", "n_layers": 6}},
        {"name": "post-LN", "model": {"placement": "post", "n_layers": 6}},
        {"name": "no residuals", "model": {"placement": "pre", "residual": False, "n_layers": 6}},
    ],
    "depth": [
        {"name": "1 block", "model": {"n_layers": 1}},
        {"name": "2 blocks", "model": {"n_layers": 2}},
        {"name": "4 blocks", "model": {"n_layers": 4}},
    ],
    "objectives": [
        {"name": "causal LM", "model": {"n_layers": 2}, "objective": "causal"},
        {"name": "masked LM", "model": {"n_layers": 2}, "objective": "masked"},
        {"name": "prefix LM", "model": {"n_layers": 2}, "objective": "prefix"},
    ],
    "stability": [
        {"name": "lr 3e-3, warm-up, clip 1", "model": {"n_layers": 4}},
        {"name": "lr 1e-1, warm-up, clip 1", "model": {"n_layers": 4}, "train": {"lr": 1e-1}},
        {"name": "lr 1e-1, no warm-up, no clip", "model": {"n_layers": 4},
         "train": {"lr": 1e-1, "warmup": 0, "grad_clip": None}},
        {"name": "lr 3e-3, batch 4 × 4 accumulated", "model": {"n_layers": 4},
         "train": {"accumulation": 4, "batch_size": 4}},
        {"name": "lr 3e-3, bf16 autocast", "model": {"n_layers": 4}, "train": {"autocast": "bf16"}},
    ],
    "balance": [
        {"name": "MoE, no balancing loss", "model": {"ffn": "moe", "n_experts": 4, "top_k": 1}, "balance": 0.0},
        {"name": "MoE, balancing loss 0.05", "model": {"ffn": "moe", "n_experts": 4, "top_k": 1}, "balance": 0.05},
    ],
}


def variants_of(preset: str):
    from workbench_engines.models.experiments import Variant

    return [Variant(v["name"], {"d_model": 64, "n_heads": 4, "hidden": 176, **v["model"]}, v.get("objective", "causal"),
                    v.get("train", {}), v.get("balance", 0.01)) for v in TRAINING_PRESETS[preset]]


class TrainCompareLab(Lab):
    """Train a few mini-former variants on the plays, the loss curves drawn as they train."""

    DEFAULT_CSS = "TrainCompareLab PlotextPlot { height: 14; }"
    BINDINGS = [Binding("r", "train", "Train")]

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        names = ", ".join(v["name"] for v in TRAINING_PRESETS[self.params["preset"]])
        yield Static(f"r trains: {names} ({self.params['steps']} steps each; x cancels).", classes="readout")

    def action_train(self) -> None:
        preset, steps = self.params["preset"], self.params["steps"]
        variants = variants_of(preset)

        def work(progress: Progress):
            from workbench_engines.models.experiments import lesson_data, run_variants

            progress(0.02, "encoding the plays")
            data = lesson_data()
            names = [v.name for v in variants]
            shown: dict[str, object] = {}

            def on_step(curve) -> None:
                shown[curve.name] = curve
                index = names.index(curve.name)
                progress((index + curve.steps[-1] / steps) / len(names), f"{curve.name}: step {curve.steps[-1]}")
                self._ui(self._draw, list(shown.values()))

            curves = run_variants(variants, steps=steps, data=data, on_step=on_step)
            return curves, self._extras(preset, curves, data)

        self.start(work, self._finished_training, "Training")

    def _extras(self, preset: str, curves, data):
        """What the readout adds beyond the curves: samples, or expert histograms."""
        from workbench_engines.models.experiments import expert_histogram

        if preset == "objectives":
            return _objective_samples(curves)
        if preset == "balance":
            return [expert_histogram(c.model, data) for c in curves]
        return None

    def _draw(self, curves) -> None:
        plt = self.fresh_plot()
        for i, curve in enumerate(curves):
            losses = np.minimum(np.asarray(curve.losses, dtype=float), 12.0)
            smooth = np.convolve(losses, np.ones(5) / 5, mode="valid") if len(losses) >= 5 else losses
            plt.plot(curve.steps[len(curve.steps) - len(smooth):], smooth.tolist(), label=curve.name, marker=marker(i))
        plt.xlabel("step")
        plt.title("training loss (5-step mean, capped at 12)")
        self.refresh_plot()

    def _finished_training(self, outcome) -> None:
        curves, extras = outcome
        self.curves, self.extras = curves, extras
        self._draw(curves)
        table = Table(box=None, header_style="bold")
        for name in ("variant", "params", "last loss", "val loss", "max |grad|", "seconds"):
            table.add_column(name, justify="left" if name == "variant" else "right")
        for c in curves:
            last = float(np.mean(c.losses[-10:]))
            table.add_row(c.name, f"{c.parameters:,}", "diverged" if c.diverged else f"{last:.3f}",
                          f"{c.val_loss:.3f}" if c.val_loss is not None and np.isfinite(c.val_loss) else "-",
                          f"{max(c.grad_norms):.1f}", f"{c.seconds:.1f}")
        parts: list = [table]
        if self.params["preset"] == "objectives":
            parts.append(Text("Losses are of different tasks: masked LM predicts 15% of tokens seeing both sides.",
                              style="dim"))
            parts += [Text(f"{name}: {text}") for name, text in extras]
        elif self.params["preset"] == "balance":
            plt = self.fresh_plot()
            experts = [f"e{e}" for e in range(extras[0].shape[1])]
            shares = [(100 * h.sum(axis=0) / h.sum()).tolist() for h in extras]
            plt.multiple_bar(experts, shares, labels=[c.name for c in curves], marker="sd")
            plt.title("share of held-out tokens per expert (both layers), %")
            self.refresh_plot()
            for curve, share in zip(curves, shares):
                parts.append(Text(f"{curve.name}: tokens per expert " + " ".join(f"{s:.0f}%" for s in share)))
        self.query_one(".readout", Static).update(Group(*parts))


def _objective_samples(curves) -> list[tuple[str, str]]:
    """A continuation from the causal and prefix models, a fill-in from the masked one."""
    import torch

    from workbench_engines.models.small_gpt import shipped_tokenizer

    tokenizer = shipped_tokenizer()
    prompt = tokenizer.encode_ordinary("**HAMLET**  \nTo be, or not to be, that is the")
    out = []
    for curve in curves:
        model = curve.model.eval()
        ids = list(prompt)
        with torch.no_grad():
            if curve.name.startswith("masked"):
                masked = list(prompt)
                masked[-1] = model.config.mask_token
                logits = model(torch.tensor([masked]), attention="bidirectional").logits[0, -1]
                guess = tokenizer.decode([int(logits.argmax())])
                out.append((curve.name, f"fills '… that is [MASK]' with {guess!r}"))
                continue
            for _ in range(12):
                kwargs = {"attention": "prefix", "prefix": torch.tensor([len(prompt)])} if curve.name.startswith("prefix") else {}
                logits = model(torch.tensor([ids[-model.config.context:]]), **kwargs).logits[0, -1]
                ids.append(int(logits.argmax()))
        if not curve.name.startswith("masked"):
            out.append((curve.name, repr(tokenizer.decode(ids[len(prompt):]))))
    return out


class ResidualStatsLab(Lab):
    """The residual stream's size layer by layer in a pre-LN and a post-LN mini-former, and its histogram."""

    DEFAULT_CSS = "ResidualStatsLab PlotextPlot { height: 13; }"
    BINDINGS = [Binding("t", "train", "Train both"), Binding("h", "histogram", "Histogram/RMS"),
                Binding("right_square_bracket", "layer_step(1)", "Next layer"),
                Binding("left_square_bracket", "layer_step(-1)", "Prev layer")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.models: dict[str, Any] = {}
        self.show_histogram = False
        self.layer_index = params["layers"]
        self.trained = False

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        import torch

        from workbench_engines.models.miniformer import MiniConfig, MiniFormer

        for placement in ("pre", "post"):
            torch.manual_seed(0)
            self.models[placement] = MiniFormer(MiniConfig(vocab_size=2048, context=64, d_model=64,
                                                           n_layers=self.params["layers"], placement=placement))
        self.redraw()

    def hidden_states(self) -> dict[str, list[np.ndarray]]:
        import torch

        from workbench_engines.models.small_gpt import shipped_tokenizer

        ids = shipped_tokenizer().encode_ordinary(unescape(self.params["text"]))[:64]
        out = {}
        with torch.no_grad():
            for name, model in self.models.items():
                model.eval()
                out[name] = [h[0].numpy() for h in model(torch.tensor([ids]), keep_hidden=True).hidden]
        return out

    def action_histogram(self) -> None:
        self.show_histogram = not self.show_histogram
        self.redraw()

    def action_layer_step(self, step: int) -> None:
        self.layer_index = int(min(self.params["layers"], max(0, self.layer_index + step)))
        self.redraw()

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

        self.start(work, self._trained, "Training both")

    def _trained(self, _) -> None:
        self.trained = True
        self.redraw()

    def redraw(self) -> None:
        states = self.hidden_states()
        self.rms = {name: [float(np.sqrt((h ** 2).mean())) for h in hs] for name, hs in states.items()}
        plt = self.fresh_plot()
        when = "after training" if self.trained else "at initialisation"
        if self.show_histogram:
            for name, hs in states.items():
                plt.hist(hs[self.layer_index].ravel().tolist(), bins=40, label=f"{name}-LN")
            plt.title(f"values of the residual stream after block {self.layer_index} ({when}; [ ] move)")
        else:
            layers = list(range(self.params["layers"] + 1))
            for i, (name, values) in enumerate(self.rms.items()):
                plt.plot(layers, values, label=f"{name}-LN", marker=marker(i))
            plt.xlabel("block (0 = embedding)")
            plt.title(f"RMS of the residual stream, layer by layer ({when})")
        self.refresh_plot()
        self.query_one(".readout", Static).update(Text(
            "pre-LN: " + " ".join(f"{v:.2f}" for v in self.rms["pre"]) + "\npost-LN: "
            + " ".join(f"{v:.2f}" for v in self.rms["post"]) + "\nt trains both briefly, h switches to a histogram"))


class ScalingLab(Lab):
    """Train three sizes for the same steps; plot validation loss against parameters with a fitted power law."""

    DEFAULT_CSS = "ScalingLab PlotextPlot { height: 13; }"
    BINDINGS = [Binding("r", "train", "Train the sizes"), Binding("w", "view", "Size/wall-clock")]
    wall_clock = False
    outcome = None
    SIZES = {"tiny": {"d_model": 32, "n_layers": 1, "hidden": 96}, "small": {"d_model": 64, "n_layers": 2, "hidden": 176},
             "medium": {"d_model": 96, "n_layers": 3, "hidden": 256}}

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("r trains tiny, small and medium mini-formers for the same number of steps.", classes="readout")

    def action_train(self) -> None:
        steps = self.params["steps"]

        def work(progress: Progress):
            from workbench_engines.models.experiments import Variant, fit_power_law, lesson_data, run_variants

            data = lesson_data()
            variants = [Variant(name, {"n_heads": 4, **size}) for name, size in self.SIZES.items()]
            names = [v.name for v in variants]

            def on_step(curve) -> None:
                progress((names.index(curve.name) + curve.steps[-1] / steps) / len(names),
                         f"{curve.name}: step {curve.steps[-1]}")

            curves = run_variants(variants, steps=steps, data=data, on_step=on_step)
            # Parameters without the embedding table, as Kaplan et al. count them.
            sizes = [c.parameters - c.model.embed.weight.numel() - c.model.head.weight.numel() for c in curves]
            fit = fit_power_law(sizes, [c.val_loss for c in curves])
            return curves, sizes, fit

        self.start(work, self._shown, "Training three sizes")

    def action_view(self) -> None:
        self.wall_clock = not self.wall_clock
        if self.outcome is not None:
            self._shown(self.outcome)

    def _shown(self, outcome) -> None:
        self.outcome = outcome
        curves, sizes, (a, b) = outcome
        self.curves, self.sizes, self.fit = curves, sizes, (a, b)
        plt = self.fresh_plot()
        if self.wall_clock:
            for i, c in enumerate(curves):
                losses = np.convolve(c.losses, np.ones(5) / 5, mode="valid")
                plt.plot(c.elapsed[len(c.elapsed) - len(losses):], losses.tolist(), label=c.name, marker=marker(i))
            plt.xlabel("seconds")
            plt.title("training loss against wall-clock time (w: against size)")
            self.refresh_plot()
            return
        logn = np.log10(sizes)
        plt.scatter(logn.tolist(), [c.val_loss for c in curves], label="measured", marker="x")
        line = np.linspace(logn.min(), logn.max() + 1, 30)
        plt.plot(line.tolist(), (a * (10 ** line) ** -b).tolist(), label=f"fit {a:.2f}·N^-{b:.3f}", marker="braille")
        plt.xlabel("log10 parameters (without embeddings)")
        plt.title("validation loss against size, extrapolated ×10 (w: wall-clock)")
        self.refresh_plot()
        table = Table(box=None, header_style="bold")
        for name in ("size", "params", "val loss", "seconds"):
            table.add_column(name, justify="left" if name == "size" else "right")
        for c, n in zip(curves, sizes):
            table.add_row(c.name, f"{n:,}", f"{c.val_loss:.3f}", f"{c.seconds:.1f}")
        table.caption = f"fit predicts {a * (10 * sizes[-1]) ** -b:.3f} at 10× the medium model, same steps"
        self.query_one(".readout", Static).update(table)


class RouterLab(Lab):
    """Train a 2-expert MoE mini-former briefly, then see which expert each token of a sentence goes to."""

    BINDINGS = [Binding("r", "train", "Train"), Binding("c", "capacity(0.25)", "Capacity+"),
                Binding("C", "capacity(-0.25)", "Capacity-")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.model = None
        self.capacity_factor = 1.0

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["text"], placeholder="a line of text; Enter routes it")
        yield Static("r trains a 2-expert model (about 20 s); then type a line and press Enter.", classes="readout")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self.route()

    def action_capacity(self, step: float) -> None:
        self.capacity_factor = float(min(2.0, max(0.25, self.capacity_factor + step)))
        self.route()

    def action_train(self) -> None:
        steps = self.params["steps"]

        def work(progress: Progress):
            from workbench_engines.models.experiments import Variant, run_variants

            variant = Variant("2 experts", {"d_model": 64, "n_heads": 4, "hidden": 176, "ffn": "moe", "n_experts": 2,
                                            "top_k": 1, "n_layers": 2}, balance=0.05)
            curves = run_variants([variant], steps=steps,
                                  on_step=lambda c: progress(c.steps[-1] / steps, f"step {c.steps[-1]}"))
            return curves[0].model

        self.start(work, self._trained, "Training the router")

    def _trained(self, model) -> None:
        self.model = model
        self.route()

    def route(self) -> None:
        if self.model is None:
            self.status("Train first (r).")
            return
        import torch

        from workbench_engines.models.small_gpt import shipped_tokenizer

        tokenizer = shipped_tokenizer()
        ids = tokenizer.encode_ordinary(unescape(self.query_one(Input).value))[:64] or [0]
        layer = self.model.blocks[0].ffn
        layer.capacity_factor = self.capacity_factor
        self.model.eval()
        with torch.no_grad():
            self.model(torch.tensor([ids]))  # the first MoE layer records where each token went
        stats = layer.stats
        choice = stats.experts[:, 0].tolist()
        self.choices = choice
        line = Text()
        for token, expert in zip(ids, choice):
            piece = tokenizer.decode([token]).replace("\n", "⏎")
            line.append(piece, style="bold reverse" if expert == 1 else "")
            line.append("│" if expert == 0 else "┃")
        self.query_one(".readout", Static).update(Group(
            line,
            Text(f"expert 0: plain, │ ; expert 1: reverse video, ┃.  Tokens: {choice.count(0)} / {choice.count(1)}. "
                 f"Capacity factor {self.capacity_factor:g} (c/C): {stats.dropped} of {stats.assignments} "
                 f"assignments dropped."),
        ))


class SparseDenseLab(Lab):
    """Time one training step of a dense, an equally active sparse, and an equally large dense mini-former."""

    DEFAULT_CSS = "SparseDenseLab PlotextPlot { height: 12; }"
    BINDINGS = [Binding("r", "race", "Race")]

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("r times a training step of each (the moe benchmark's last case, smaller).", classes="readout")

    def action_race(self) -> None:
        def work(progress: Progress):
            import time

            import torch

            from workbench_engines.models.experiments import non_embedding_parameters, sparse_dense_configs, training_step

            window = torch.randint(0, 2048, (16, 65), generator=torch.Generator().manual_seed(0))
            configs = sparse_dense_configs(64, 128, 64, n_layers=2)
            rows = []
            for i, (name, config) in enumerate(configs.items()):
                progress(i / len(configs), name)
                step = training_step(config, window)
                times = []
                for _ in range(6):
                    started = time.perf_counter()
                    _, model = step()
                    times.append(time.perf_counter() - started)
                rows.append((name, non_embedding_parameters(model), non_embedding_parameters(model, active=True),
                             float(np.median(times[1:]))))
            return rows

        self.start(work, self._shown, "Timing")

    def _shown(self, rows) -> None:
        self.rows = rows
        plt = self.fresh_plot()
        plt.bar([r[0] for r in rows], [r[3] * 1e3 for r in rows])
        plt.title("ms per training step (16 × 64 tokens)")
        self.refresh_plot()
        table = Table(box=None, header_style="bold")
        for name in ("model", "params", "active", "MFLOP/token", "ms/step", "tokens/s"):
            table.add_column(name, justify="left" if name == "model" else "right")
        for name, total, active, seconds in rows:
            table.add_row(name, f"{total:,}", f"{active:,}", f"{6 * active / 1e6:.2f}", f"{seconds * 1e3:.1f}",
                          f"{16 * 64 / seconds:,.0f}")
        table.caption = "6 FLOPs per active weight per token (forward and backward); embeddings left out"
        self.query_one(".readout", Static).update(table)
