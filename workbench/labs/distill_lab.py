"""The distillation lab: a teacher's softened targets, and two drafts of one shape — one trained on the plays'
tokens, one distilled from the target — measured as the target's drafts for speculative decoding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static

from workbench.labs.base import Lab, Progress
from workbench.labs.decoding_labs import load_model
from workbench.labs.knobs import cycled
from workbench.labs.kvcache_labs import PROMPT
from workbench.labs.token_labels import token_label
from workbench.widgets.plots import Figure

TEMPERATURES = (1.0, 1.5, 2.0, 4.0)
"""The distillation temperatures t steps through."""
DRAFTS = (("trained on data", "draft"), ("distilled", "draft-distilled"))
"""(label, shipped recipe): the two drafts, the same shape and training run, taught differently."""
TOP = 8
"""Tokens shown in the soft-targets plot."""


@dataclass(frozen=True)
class SoftTargets:
    """The target's next-token distribution after one text, softened at one temperature."""

    temperature: float
    tokens: list[str]
    """The TOP most probable next tokens (at T = 1; softening keeps the order)."""
    probs: list[float]
    top_share: float
    """Probability of the most likely token."""
    entropy_bits: float


def soft_targets(logits: np.ndarray, temperature: float, names: list[str]) -> SoftTargets:
    """softmax(logits / T) over one position's (V,) logits: the top tokens, the top share and the entropy."""
    from workbench_engines.compress import soften

    p = soften(logits, temperature)
    order = np.argsort(-p, kind="stable")[:TOP]
    entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    return SoftTargets(temperature, [names[i] for i in order], [float(p[i]) for i in order], float(p[order[0]]),
                       entropy)


def distill_verdict(fits: list) -> str:
    """In words: which draft the target agrees with more, greedy and sampled, and what that does to acceptance."""
    if len(fits) < 2:
        return "Both drafts are needed for a comparison."
    data, distilled = fits[0], fits[1]
    a, b = data.comparison, distilled.comparison
    ks = sorted(set(data.acceptance) & set(distilled.acceptance))
    words = [f"On held-out plays the target would accept the distilled draft's sampled tokens "
             f"{b.overlap:.1%} of the time against {a.overlap:.1%} (Σ min(p, q)), and its greedy tokens "
             f"{b.same_top:.1%} against {a.same_top:.1%}."]
    if ks:
        rises = [k for k in ks if distilled.acceptance[k] > data.acceptance[k]]
        shown = ", ".join(f"{distilled.acceptance[k]:.0%} vs {data.acceptance[k]:.0%} at k = {k}" for k in ks)
        if len(rises) == len(ks):
            words.append(f"In the speculative runs acceptance rose at every k: {shown}.")
        elif rises:
            words.append(f"In the speculative runs acceptance rose at k = {', '.join(map(str, rises))} only: {shown}; "
                         "one run of a few dozen rounds is noisier than the held-out average.")
        else:
            words.append(f"In the speculative runs acceptance did not rise: {shown}.")
    both = f"({b.changed.perplexity:.1f} against {a.changed.perplexity:.1f})"
    if b.changed.perplexity < a.changed.perplexity:
        words.append(f"Its own perplexity is lower too {both}: the teacher's whole distribution carries more signal "
                     "per token than the one token that came next.")
    else:
        words.append(f"Its own perplexity is higher {both}: it matched the teacher at the data's expense.")
    return " ".join(words)


class DistillLab(Lab):
    """The target's softened targets at a temperature, and the data-trained and distilled drafts side by side."""

    DEFAULT_CSS = "DistillLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("t", "temperature", "Temperature"), Binding("r", "measure", "Measure drafts")]
    temperature = reactive(1.0, init=False)
    soft = reactive(None, always_update=True)
    """The last SoftTargets."""
    fits = reactive(None, always_update=True)
    """The DraftFits of the last measurement (data-trained first)."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("t softens the target's distribution at T = 1, 1.5, 2, 4; r measures both drafts against the "
                     "target (about half a minute).", classes="readout")

    def on_mount(self) -> None:
        self._soften(self.temperature)

    def action_temperature(self) -> None:
        self.temperature = cycled(TEMPERATURES, self.temperature)

    def watch_temperature(self, temperature: float) -> None:
        self._soften(temperature)

    def _soften(self, temperature: float) -> None:
        text = self.params["text"]

        def work(progress: Progress) -> SoftTargets:
            import torch

            model = load_model("small-gpt", progress)
            ids = model.prompt_ids(text)[-model.config.context:]
            with torch.inference_mode():
                logits = model.model(torch.tensor([ids]))[0, -1].double().numpy()  # (V,)
            names = [token_label(model.tokenizer.token_bytes(i)) for i in range(model.config.vocab_size)]
            return soft_targets(logits, temperature, names)

        self.start(work, lambda soft: setattr(self, "soft", soft), "Softening")

    def watch_soft(self, soft: SoftTargets | None) -> None:
        if soft is None:
            return
        self.query_one(Figure).bars(
            f"the target's next token at T = {soft.temperature:g}: top {soft.top_share:.1%}, "
            f"entropy {soft.entropy_bits:.2f} bits", soft.tokens, soft.probs, top=1.0)
        if self.fits is None:
            self.status(f"T = {soft.temperature:g}: the top token keeps {soft.top_share:.1%} of the mass; "
                        f"entropy {soft.entropy_bits:.2f} bits. t for the next T, r to measure the drafts")

    def action_measure(self) -> None:
        plays, tokens, ks = self.params["plays"], self.params["tokens"], tuple(int(k) for k in self.params["ks"])

        def work(progress: Progress) -> list:
            from workbench_engines.compress import draft_fit
            from workbench_engines.evaluation.heldout import LESSON_STRIDE, LESSON_WINDOW, held_out_plays
            from workbench_engines.models import small_gpt

            target = load_model("small-gpt", progress)
            ids = held_out_plays(target.tokenizer, plays).ids
            fits = []
            for i, (label, recipe) in enumerate(DRAFTS):

                def step(fraction: float, what: str, i=i, label=label) -> None:
                    progress((i + fraction) / len(DRAFTS), f"{label}: {what}")

                fits.append(draft_fit(target.model, small_gpt.load(recipe).model, label, ids,
                                      window=LESSON_WINDOW, stride=LESSON_STRIDE, prompt=target.prompt_ids(PROMPT),
                                      ks=ks, tokens=tokens, progress=step))
            return fits

        self.start(work, lambda fits: setattr(self, "fits", fits), "Measuring the drafts")

    def watch_fits(self, fits: list | None) -> None:
        if not fits:
            return
        ks = sorted(fits[0].acceptance)
        self.query_one(Figure).grouped_bars(
            "share of drafted tokens accepted, sampling at T = 1", [f"k = {k}" for k in ks],
            {fit.name: [fit.acceptance[k] for k in ks] for fit in fits})
        table = Table(box=None, header_style="bold")
        for name in ("draft", "perplexity", "KL from target", "same top", "Σ min(p, q)"):
            table.add_column(name, justify="left" if name == "draft" else "right")
        for fit in fits:
            c = fit.comparison
            table.add_row(fit.name, f"{c.changed.perplexity:.1f}", f"{c.kl:.3f}", f"{c.same_top:.1%}",
                          f"{c.overlap:.1%}")
        tokens = fits[0].comparison.changed.tokens
        source = Text(f"{tokens:,} held-out tokens; {fits[0].runs} speculative runs of {self.params['tokens']} tokens "
                      "at each k from the speculative lesson's prompt, the same seeds for both drafts.", style="dim")
        self.readout(Group(table, Text(distill_verdict(fits)), source))
        best = max(fits, key=lambda fit: fit.comparison.overlap)
        self.status(f"{best.name} fits the target better: Σ min(p, q) {best.comparison.overlap:.1%}; "
                    f"expected {expected_per_round(best.comparison.overlap, max(ks)):.2f} tokens a round at "
                    f"k = {max(ks)}")


def expected_per_round(alpha: float, k: int) -> float:
    """Leviathan et al.'s tokens per target pass at acceptance α: (1 − α^(k+1)) / (1 − α)."""
    from workbench_engines.generation.speculative import expected_tokens_per_round

    return expected_tokens_per_round(min(max(alpha, 0.0), 1.0), k) if not math.isnan(alpha) else float("nan")
