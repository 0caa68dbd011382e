"""Labs of the alignment lessons: a Bradley–Terry reward model trained live, and DPO against best-of-n."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Input, Static

from workbench.labs.base import Lab, Progress
from workbench.labs.decoding_labs import shown
from workbench.labs.knobs import cycled
from workbench.widgets.plots import Figure, Series

READERS = {"minilm": "MiniLM's embeddings", "gpt": "the GPT's hidden states"}
"""How the readout names each reward model's features."""
BETAS = (0.1, 0.5)
"""The β values b steps through."""
VIEWS = ("loss", "margin", "kl")
"""What the DPO lab's figure shows; v steps through them."""
REWARD_STEPS = 300
"""Adam steps of the best-of-n reward model in the DPO lab: the reward lab's default."""
FEATURES = "minilm"
"""What the lessons' reward model reads: MiniLM sentence embeddings of the continuations (reward.FEATURES)."""
LIVE_EVERY = 5
"""The DPO curves are redrawn every this many steps while a run goes (and in full when it ends)."""
WIDTH = 60
"""Characters of a continuation shown on a line of its own."""
PAIR_WIDTH = 52
"""Characters of a continuation in the pair table, beside its label and judge score (80 columns in all)."""


def preference_settings(prompts: int):
    """The lessons' preference-set settings with ``prompts`` prompts (the rest at their defaults)."""
    from workbench_engines.finetune.preferences import PreferenceSettings

    return PreferenceSettings(prompts=prompts)


def clip(text: str, width: int = WIDTH) -> str:
    """A continuation on one line, visible newlines as ⏎, cut to ``width`` characters."""
    flat = shown(text).replace("\n", "⏎")
    return flat if len(flat) <= width else flat[:width - 1] + "…"


@dataclass(frozen=True)
class RewardResult:
    """What the reward lab trained: the pair split and the fitted head."""

    train: object
    """preferences.PreferenceSet of the training prompts."""
    test: object
    training: object
    """reward.RewardTraining."""
    dropped: int
    pairs: int
    seconds: float
    """Time the preference set took to build (0: it came from the cache)."""


def train_reward(prompts: int, steps: int, progress: Progress, features: str = FEATURES) -> RewardResult:
    """Build (or reuse) the preference set, split it by prompt and fit the Bradley–Terry head on ``features``."""
    from workbench_engines.finetune.preferences import preference_set
    from workbench_engines.finetune.reward import train_reward_model

    progress(0.0, "sampling and judging continuations (once; cached after)")
    preferences = preference_set(preference_settings(prompts), progress=lambda f, what: progress(0.7 * f, what))
    train, test = preferences.split()
    progress(0.7, "MiniLM reading the continuations (once; cached after)" if features == "minilm"
             else "the GPT reading the continuations")
    training = train_reward_model(train, test, features=features, steps=steps,
                                  progress=lambda f, what: progress(0.7 + 0.2 * f, what),
                                  on_step=lambda step, loss: progress(0.9 + 0.1 * step / steps,
                                                                      f"Bradley–Terry step {step}, loss {loss:.3f}"))
    return RewardResult(train, test, training, preferences.dropped, len(preferences.pairs), preferences.seconds)


class RewardLab(Lab):
    """Preference pairs with their judge scores; a reward model trained on them; the reward of your own text."""

    DEFAULT_CSS = "RewardLab Figure PlotextPlot { height: 9; }"
    BINDINGS = [Binding("r", "train", "Train"), Binding("f", "features", "Reader"),
                Binding("j", "next_pair", "Next pair")]
    result = reactive(None, always_update=True, init=False)
    """The last RewardResult."""
    features = reactive("minilm", init=False)
    """What the next run's head reads (reward.FEATURES); f switches."""
    pair_index = reactive(0, init=False)
    scored = reactive(None, always_update=True, init=False)
    """(text, reward, judge score) of the learner's last continuation."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Input(value=self.params["text"], placeholder="a continuation of the first test prompt; Enter scores it")
        yield Static("r samples the pairs (once, then cached), trains the reward model and shows held-out accuracy; "
                     "f switches what it reads (MiniLM's embeddings or the GPT's states); j shows the next pair; "
                     "Enter scores your text.", classes="readout")

    def on_mount(self) -> None:
        self.features = self.params["features"]

    def action_features(self) -> None:
        if not self.busy():
            self.features = cycled(("minilm", "gpt"), self.features)
            self.status(f"the reward model will read {READERS[self.features]}: r trains it")

    def action_train(self) -> None:
        prompts, steps, features = self.params["prompts"], self.params["steps"], self.features
        self.start(lambda progress: train_reward(prompts, steps, progress, features),
                   lambda result: setattr(self, "result", result), "Training the reward model")

    def action_next_pair(self) -> None:
        if self.result is None:
            self.status("r first: there are no pairs yet.")
            return
        self.pair_index = (self.pair_index + 1) % max(1, len(self.result.test.pairs))

    def watch_pair_index(self) -> None:
        self._draw()

    def watch_result(self, result: RewardResult | None) -> None:
        if result is None:
            return
        t = result.training
        steps = list(range(1, len(t.losses) + 1))
        self.query_one(Figure).lines(
            "Bradley–Terry loss −log σ(r_w − r_l); ln 2 = 0.693 is a coin toss",
            [Series("train", steps, t.losses), Series("held out", steps, t.test_losses),
             Series("ln 2", [1, steps[-1]], [math.log(2)] * 2)], xlabel="step")
        self._draw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        if self.result is None:
            self.status("r first: the reward model is not trained yet.")
            return
        text = self.query_one(Input).value
        if not text.strip():
            self.status("Type a continuation first: the box is empty.")
            return
        judged = self.result.test.judged[0]
        head = self.result.training.reward_model

        def work(progress: Progress):
            from workbench_engines.finetune.judge import compound
            from workbench_engines.models import small_gpt

            target = small_gpt.load("target")
            ids = target.tokenizer.encode_ordinary(text)
            reward = float(head.score(target.model, [judged.prompt_ids], [ids], [text])[0])
            typical = head.score(target.model, [judged.prompt_ids] * len(judged.continuations),
                                 list(judged.continuations), list(judged.texts))
            return judged.prompt, reward, compound(text), float(typical.mean())

        self.start(work, lambda scored: setattr(self, "scored", scored), "Scoring your text")

    def watch_scored(self) -> None:
        self._draw()

    def _draw(self) -> None:
        result = self.result
        if result is None:
            return
        t = result.training
        parts: list = [Text(
            f"{result.pairs} pairs (best against worst of {result.train.settings.samples} samples per prompt; "
            f"{result.dropped} near-ties under {result.train.settings.min_margin:g} dropped). Trained on "
            f"{t.n_train:,} comparisons from {len(result.train.judged)} prompts, tested on {t.n_test:,} from "
            f"{len(result.test.judged)} held-out prompts, reading {READERS[t.reward_model.features]}: accuracy "
            f"{t.train_accuracy:.1%} train, {t.test_accuracy:.1%} held out (chance 50%); loss after "
            f"{len(t.losses)} steps {t.losses[-1]:.3f} train, {t.test_losses[-1]:.3f} held out.")]
        pairs = result.test.pairs
        if pairs:
            pair = pairs[self.pair_index % len(pairs)]
            table = Table(box=None, header_style="bold", show_edge=False)
            table.add_column("", min_width=8, no_wrap=True)
            table.add_column("continuation", no_wrap=True)
            table.add_column("judge", justify="right", min_width=6, no_wrap=True)
            table.add_row("chosen", clip(pair.chosen_text, PAIR_WIDTH), f"{pair.chosen_score:+.3f}")
            table.add_row("rejected", clip(pair.rejected_text, PAIR_WIDTH), f"{pair.rejected_score:+.3f}")
            parts += [Text(f"Held-out pair {self.pair_index % len(pairs) + 1} of {len(pairs)}: "
                           f"{clip(pair.prompt, 50)}", style="bold"), table]
        if self.scored is not None:
            prompt, reward, judge, typical = self.scored
            parts.append(Text(f"Your text after {clip(prompt, 40)!r}: reward {reward:+.2f} (the GPT's own "
                              f"{len(result.test.judged[0].continuations)} samples there average {typical:+.2f}); "
                              f"the judge says {judge:+.3f}."))
        self.readout(Group(*parts))
        self.status(f"held-out accuracy {t.test_accuracy:.1%}. j next pair, Enter scores your text, f reader, "
                    f"r retrains")


@dataclass(frozen=True)
class DPOResult:
    run: object
    """dpo.DPORun."""
    reward_accuracy: float
    """The best-of-n reward model's held-out accuracy."""


class DPOLab(Lab):
    """DPO on the small GPT, live: loss from ln 2, margin and KL; then the judge's scores against best-of-n."""

    DEFAULT_CSS = "DPOLab Figure PlotextPlot { height: 10; }"
    BINDINGS = [Binding("r", "train", "Run DPO"), Binding("b", "beta", "β"), Binding("v", "view", "View"),
                Binding("s", "sample", "Samples")]
    beta = reactive(0.1, init=False)
    view = reactive("loss", init=False)
    steps = reactive(list, always_update=True, init=False)
    """The DPOSteps so far (live)."""
    result = reactive(None, always_update=True, init=False)
    example = reactive(0, init=False)

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r runs DPO on the pairs (about two minutes; the first run samples them too), b switches β between 0.1 and 0.5, v shows loss, "
                     "margin or KL, s shows the policy's and the reference's samples side by side.",
                     classes="readout")

    def on_mount(self) -> None:
        self.beta = self.params["beta"]

    def action_beta(self) -> None:
        if not self.busy():
            self.beta = cycled(BETAS, self.beta)
            self.status(f"β = {self.beta:g}: r runs DPO with it")

    def action_view(self) -> None:
        self.view = cycled(VIEWS, self.view)

    def watch_view(self) -> None:
        self._plot()

    def action_sample(self) -> None:
        if self.result is None or self.result.run.evaluation is None:
            self.status("r first: there is no trained policy yet.")
            return
        self.example = (self.example + 1) % len(self.result.run.evaluation.examples)

    def watch_example(self) -> None:
        self._draw()

    def action_train(self) -> None:
        if self.busy():
            return
        p, beta = self.params, self.beta
        self.steps = []
        self.result = None

        def work(progress: Progress) -> DPOResult:
            from workbench_engines.finetune.dpo import DPOSettings, train_dpo
            from workbench_engines.finetune.preferences import preference_set
            from workbench_engines.finetune.reward import train_reward_model

            progress(0.0, "preference pairs (sampled once, then cached)")
            preferences = preference_set(preference_settings(p["prompts"]),
                                         progress=lambda f, what: progress(0.2 * f, what))
            train, test = preferences.split()
            progress(0.2, "training the reward model for best-of-n")
            reward = train_reward_model(
                train, test, features=FEATURES, steps=REWARD_STEPS,
                progress=lambda f, what: progress(0.2 + 0.03 * f, what),
                on_step=lambda step, loss: progress(0.23 + 0.02 * step / REWARD_STEPS, f"reward model step {step}")
                if step % 50 == 0 else None)
            seen: list = []

            def on_step(step) -> None:
                seen.append(step)
                # Every step redrawn would cost the UI thread, and through the GIL the run, more than the step.
                if step.step % LIVE_EVERY == 0:
                    self._ui(setattr, self, "steps", list(seen))

            run = train_dpo(train, test, DPOSettings(beta=beta, steps=p["steps"], best_of=p["best_of"]),
                            reward_model=reward.reward_model, on_step=on_step,
                            progress=lambda f, what: progress(0.25 + 0.75 * f, what))
            return DPOResult(run, reward.test_accuracy)

        self.start(work, self._finished, f"DPO at β = {beta:g}")

    def _finished(self, result: DPOResult) -> None:
        self.steps = list(result.run.steps)
        self.result = result

    def watch_steps(self) -> None:
        self._plot()
        if self.steps and self.result is None:
            last = self.steps[-1]
            self.readout(Text(f"step {last.step}: loss {last.loss:.3f} (started at {self.steps[0].loss:.4f}, "
                              f"ln 2 = {math.log(2):.4f}); margin {last.margin:+.2f}; accuracy {last.accuracy:.0%}"))

    def watch_result(self) -> None:
        self._draw()

    def _plot(self) -> None:
        steps = self.steps
        if not steps:
            return
        x = [s.step for s in steps]
        figure = self.query_one(Figure)
        hint = "v: next view"
        if self.view == "loss":
            figure.lines(f"DPO loss at β = {self.beta:g} (starts at ln 2)",
                         [Series("loss", x, [s.loss for s in steps]), Series("ln 2", [0, x[-1]], [math.log(2)] * 2)],
                         xlabel="step", hint=hint)
        elif self.view == "margin":
            figure.lines("implicit rewards β·(log πθ − log π_ref): chosen, rejected and their margin",
                         [Series("margin", x, [s.margin for s in steps]),
                          Series("chosen", x, [s.chosen_reward for s in steps]),
                          Series("rejected", x, [s.rejected_reward for s in steps])], xlabel="step", hint=hint)
        else:
            kl = [(s.step, s.kl) for s in steps if s.kl is not None]
            figure.lines("KL(πθ ‖ π_ref) per token, on fresh samples from the policy",
                         [Series("KL", [a for a, _ in kl], [b for _, b in kl], points=len(kl) < 3)],
                         xlabel="step", hint=hint)

    def _draw(self) -> None:
        result = self.result
        if result is None:
            return
        run, evaluation = result.run, result.run.evaluation
        last = run.steps[-1]
        kl = next((s.kl for s in reversed(run.steps) if s.kl is not None), float("nan"))
        parts: list = [Text(
            f"β = {run.settings.beta:g}, {last.step} steps in {run.seconds:.0f} s: loss {run.steps[0].loss:.4f} → "
            f"{last.loss:.3f}, margin {last.margin:+.3f} (chosen {last.chosen_reward:+.3f}, rejected "
            f"{last.rejected_reward:+.3f}), accuracy {last.accuracy:.0%}, KL {kl:.4f} nats/token.")]
        if evaluation is not None:
            table = Table(box=None, header_style="bold", show_edge=False)
            table.add_column("sampled from")
            table.add_column("judge mean", justify="right")
            table.add_row("reference", f"{evaluation.reference:+.3f}")
            table.add_row(f"best-of-{evaluation.n}, reward model picks", f"{evaluation.best_of_n:+.3f}")
            table.add_row(f"best-of-{evaluation.n}, judge picks (ceiling)", f"{evaluation.oracle_best_of_n:+.3f}")
            table.add_row("DPO policy", f"{evaluation.policy:+.3f}")
            verdict = "beats or matches" if evaluation.dpo_beats_best_of_n else "falls short of"
            parts += [table, Text(f"On {evaluation.prompts} held-out prompts DPO {verdict} best-of-{evaluation.n} "
                                  f"(reward model held-out accuracy {result.reward_accuracy:.1%}).")]
            prompt, ref, pol = evaluation.examples[self.example % len(evaluation.examples)]
            parts += [Text(clip(prompt, 70), style="bold"), Text(f"reference: {clip(ref, 66)}"),
                      Text(f"policy:    {clip(pol, 66)}")]
        self.readout(Group(*parts))
        self.status("b β, v view, s next sample pair, r runs again")
