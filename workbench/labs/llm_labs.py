"""Labs of the "A real model" track: SmolLM2-135M-Instruct from its GGUF file, on the workbench's own engines.

Loading the model (a second or two: the file is memory-mapped, the
quantised blocks are used as they are) happens once per process, in a
worker; every lab here names the weights it runs (quantized or fp32).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.knobs import SAMPLER_KNOBS, knob_note, plus_minus_keys, shown_as_one, stepped
from workbench.typed import unescape
from workbench.widgets.plots import Figure
from workbench.widgets.profile_panel import ProfilePanel


def _card():
    from workbench_engines.gguf_file import bundled_model_path, card_from, open_gguf

    path = bundled_model_path()
    return card_from(open_gguf(path), path)


class CardLab(Lab):
    """The architecture card, read from the GGUF metadata: sizes, parameters by component, what a token costs."""

    DEFAULT_CSS = "CardLab Figure PlotextPlot { height: 9; }"
    BINDINGS = plus_minus_keys("context(2)", "context(0.5)", "Context ×2/÷2")
    context = reactive(Initialize(lambda lab: lab.params["context"]))
    """The context length the per-token figures are computed at."""

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")
        yield Figure()

    def on_mount(self) -> None:
        from workbench_engines.errors import EngineError

        try:
            self.card = _card()
        except EngineError as exc:  # the model package is optional: say how to get it
            self.card = None
            self.readout(Text(str(exc)))

    def action_context(self, factor: float) -> None:
        if self.card is not None:
            self.context = int(min(self.card.context, max(1, self.context * factor)))

    def watch_context(self, context: int) -> None:
        card = getattr(self, "card", None)
        if card is None:
            return
        table = Table(box=None, header_style="bold", show_header=False, title=f"{card.name} · from its GGUF file",
                      title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        table.add_column(style="bold")
        table.add_column()
        table.add_row("layers", str(card.layers), "width C", str(card.d_model))
        table.add_row("query heads", str(card.n_heads), "key/value heads", f"{card.kv_heads} (GQA {card.gqa_ratio}:1)")
        table.add_row("head size", str(card.head_dim), "feed-forward", f"{card.d_ff} (SwiGLU)")
        table.add_row("vocabulary", f"{card.vocab_size:,}", "context", f"{card.context:,}")
        table.add_row("RoPE base", f"{card.rope_base:g}", "norm eps", f"{card.norm_eps:.0e}")
        table.add_row("embedding", "tied (also the output)" if card.tied_embeddings else "separate output",
                      "tensors", ", ".join(f"{n} {t}" for t, n in sorted(card.tensor_types.items())))
        parts = card.parameters()
        total = card.parameter_count
        kv = card.kv_bytes_per_token(2)
        figures = Text(
            f"{total:,} parameters; per token at a context of {context:,}: "
            f"{card.flops_per_token(context) / 1e6:,.0f} MFLOP, KV cache {kv:,.0f} B (fp16), "
            f"{kv * context / 2**20:,.1f} MiB for the whole context (+/- change it)")
        self.readout(Group(table, figures))
        names = [name for name, count in parts.items() if count]
        self.query_one(Figure).bars("share of the parameters, %", names, [100 * parts[n] / total for n in names])


@dataclass(frozen=True)
class Step:
    """One generated token as the chat lab shows it."""

    token: int
    text: str
    probability: float
    """The model's probability for it (temperature 1, no filter): what it believed, whatever the knobs drew."""
    entropy_bits: float
    """The entropy of that distribution."""
    alternatives: list[tuple[str, float]]
    """The five most probable tokens at that position, with their probabilities."""


@dataclass(frozen=True)
class Reply:
    prompt_tokens: int
    steps: tuple[Step, ...] = ()
    prefill_s: float = 0.0
    decode_s: float = 0.0
    done: bool = False


class ChatLab(Lab):
    """Chat with SmolLM2: tokens stream in with the model's probabilities; [ ] move through them to see the top 5."""

    BINDINGS = [
        *shown_as_one(SAMPLER_KNOBS, "tT kK uU", "knobs±"),  # the status line names each knob's keys
        Binding("w", "weights", "weights"),
        Binding("right_square_bracket", "look(1)", "token", key_display="]/["),
        Binding("left_square_bracket", "look(-1)", "previous token", show=False),
    ]
    STEPS = {
        "temperature": [0.0, 0.3, 0.5, 0.7, 1.0, 1.3],
        "top_k": [None, 1, 5, 20, 50],
        "top_p": [None, 0.5, 0.8, 0.9, 0.95],
    }
    """Knob values; temperature 0 is greedy, None switches a filter off."""

    @dataclass(frozen=True)
    class Settings:
        temperature: float = 0.0
        top_k: int | None = None
        top_p: float | None = None
        weights: str = "quantized"

    settings = reactive(Initialize(lambda lab: ChatLab.Settings(weights=lab.params["weights"])))
    reply = reactive(None, always_update=True)
    """The Reply so far (it grows while the model writes)."""
    looking = reactive(-1)
    """Which generated token's alternatives are shown (-1: the last)."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["prompt"], placeholder="a message; Enter sends it")
        yield Static("", classes="readout")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self.send(unescape(event.value))

    def on_mount(self) -> None:
        self.readout("Type a message and press Enter; the model's reply streams in here.")

    def action_knob(self, name: str, step: int) -> None:
        old = getattr(self.settings, name)
        self.settings = replace(self.settings, **{name: stepped(self.STEPS[name], old, step)})
        note = knob_note(name, old, getattr(self.settings, name), step)
        if note:
            self.status(f"{self._knobs(self.settings)} · {note}")

    def action_weights(self) -> None:
        self.settings = replace(self.settings, weights="fp32" if self.settings.weights == "quantized" else "quantized")

    def watch_settings(self, settings: Settings) -> None:
        self.status(self._knobs(settings))

    @staticmethod
    def _knobs(s: Settings) -> str:
        temperature = "greedy" if s.temperature == 0 else f"T={s.temperature:g}"
        return (f"{temperature} (t/T)  top-k={s.top_k or 'off'} (k/K)  top-p={s.top_p or 'off'} (u/U)  "
                f"weights {s.weights} (w)")

    def send(self, message: str) -> None:
        settings, tokens = self.settings, self.params["tokens"]

        def work(progress: Progress) -> Reply:
            from workbench_engines.generation import generate
            from workbench_engines.models.llama import bundled
            from workbench_engines.sampling.reference import softmax
            from workbench_engines.sampling.settings import GREEDY, Sampler, entropy_bits

            progress(0.02, f"loading SmolLM2 ({settings.weights})")
            model = bundled(settings.weights)
            ids = model.prompt_ids(model.chat([{"role": "user", "content": message}]))
            sampler = GREEDY if settings.temperature == 0 else Sampler(
                temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
            steps: list[Step] = []

            def on_logits(token: int, logits: np.ndarray) -> None:
                probs = softmax(logits.astype(np.float64))  # what the model believes, before the knobs
                top = np.argsort(-probs)[:5]
                steps.append(Step(token, model.tokenizer.decode([token]), float(probs[token]),
                                  float(entropy_bits(probs)),
                                  [(model.tokenizer.decode([int(t)]), float(probs[t])) for t in top]))
                self._ui_stream(self._streamed, len(steps) / tokens, Reply(len(ids), tuple(steps)))

            worker = get_current_worker()
            result = generate(model.model, ids, tokens, sampler=sampler, stop_tokens=model.stop_tokens,
                              on_logits=on_logits, seed=None, should_stop=lambda: worker.is_cancelled)
            return Reply(len(ids), tuple(steps), result.prefill_seconds, sum(result.step_seconds), True)

        self.looking = -1
        self.start(work, lambda reply: setattr(self, "reply", reply), "Writing")

    def _streamed(self, fraction: float, reply: Reply) -> None:
        self._progress(fraction, f"{len(reply.steps)} tokens")
        self.reply = reply

    def action_look(self, step: int) -> None:
        if self.reply is None or not self.reply.steps:
            return
        last = len(self.reply.steps) - 1
        current = last if self.looking < 0 else self.looking
        self.looking = min(last, max(0, current + step))

    def watch_looking(self) -> None:
        self.watch_reply(self.reply)

    def watch_reply(self, reply: Reply | None) -> None:
        if reply is None:
            return
        shown = reply.steps[self.looking] if reply.steps and -len(reply.steps) <= self.looking < len(reply.steps) else None
        text = Text()
        for i, step in enumerate(reply.steps):
            style = "reverse" if step is shown else ("bold" if step.probability > 0.5 else "")
            text.append(step.text.replace("\n", "⏎\n"), style=style)
        parts: list[Any] = [text]
        if shown is not None:
            parts.append(Text(f"at token {reply.steps.index(shown) + 1}: p {shown.probability:.2f}, entropy "
                              f"{shown.entropy_bits:.2f} bits ([ and ] move)"))
            table = Table(box=None, header_style="bold")
            table.add_column("top 5")
            table.add_column("p", justify="right")
            for piece, p in shown.alternatives:
                table.add_row(repr(piece)[1:-1][:20], f"{p:.3f}")
            parts.append(table)
        if reply.done:
            decoded = max(1, len(reply.steps) - 1)
            parts.append(Text(
                f"prompt {reply.prompt_tokens} tokens in {reply.prefill_s * 1e3:.0f} ms "
                f"({reply.prompt_tokens / max(reply.prefill_s, 1e-9):,.0f} tokens/s, prefill); "
                f"{decoded} more in {reply.decode_s:.2f} s ({decoded / max(reply.decode_s, 1e-9):.1f} tokens/s, decode)",
                style="dim"))
        self.readout(Group(*parts))


@dataclass(frozen=True)
class Profiled:
    profiles: dict[str, Any] = field(default_factory=dict)
    """weights -> StepProfile of one decode step."""


class ProfileLab(Lab):
    """One decoding step of SmolLM2 timed operator by operator, fp32 beside quantized; and the decode race."""

    DEFAULT_CSS = "ProfileLab Figure PlotextPlot { height: 11; }"
    BINDINGS = [Binding("r", "profile", "Profile a step"), Binding("b", "race", "Race decoding")]
    profiled = reactive(None, always_update=True)

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r profiles one decode step of each weight format; b races them (and the bandwidth).",
                     classes="readout")
        yield ProfilePanel()

    def action_profile(self) -> None:
        context = self.params["context"]

        def work(progress: Progress) -> Profiled:
            from workbench_engines.corpus import read_text
            from workbench_engines.models.llama import bundled
            from workbench_engines.models.step_profile import profile_decode_step

            out = {}
            for i, weights in enumerate(("fp32", "quantized")):
                progress(i / 2, f"profiling {weights}")
                model = bundled(weights)
                prompt = model.tokenizer.encode(read_text(limit=4 * context))[:context]
                out[weights] = profile_decode_step(model.model, prompt)
            return Profiled(out)

        self.start(work, lambda profiled: setattr(self, "profiled", profiled), "Profiling")

    def watch_profiled(self, profiled: Profiled | None) -> None:
        if profiled is None:
            return
        from workbench_engines.models.step_profile import OPERATORS

        ops = [op for op in OPERATORS if any(op in p.by_operator() for p in profiled.profiles.values())]
        short = {"attention projections": "attn proj", "output projection": "output", "feed-forward": "ffn"}
        self.query_one(Figure).grouped_bars(
            "ms per decode step, by operator", [short.get(op, op) for op in ops],
            {weights: [1e3 * p.by_operator().get(op, 0.0) for op in ops] for weights, p in profiled.profiles.items()})
        table = Table(box=None, header_style="bold")
        table.add_column("operator")
        for weights in profiled.profiles:
            table.add_column(f"{weights} ms", justify="right")
        for op in ops:
            table.add_row(op, *(f"{1e3 * p.by_operator().get(op, 0.0):.2f}" for p in profiled.profiles.values()))
        table.add_row("(between modules)", *(f"{1e3 * p.unaccounted:.2f}" for p in profiled.profiles.values()))
        table.add_row("whole step", *(f"{1e3 * p.step_seconds:.2f}" for p in profiled.profiles.values()), style="bold")
        first = next(iter(profiled.profiles.values()))
        table.caption = (f"median of 5 steps after a {first.context}-token prompt; module hooks read the wall clock, "
                         "torch on its own thread setting, the C kernels on all CPUs")
        self.readout(table)

    def action_race(self) -> None:
        new = self.params["new_tokens"]

        def cases():
            from workbench_engines.models.llm_bench import decode_race_cases

            return decode_race_cases(new)

        self.race(cases, "Racing decode", self._raced, warmup=1, repeats=3)

    def _raced(self, result: RaceResult) -> None:
        from workbench_engines.models.llm_bench import roofline_note

        self.query_one(ProfilePanel).show(result.rows, result.baselines, roofline_note(result.rows))


class RopeLab(Lab):
    """One vector rotated by RoPE in both layouts, and the permutation that makes them agree."""

    BINDINGS = plus_minus_keys("position(1)", "position(-1)", "Position ±1")
    position = reactive(Initialize(lambda lab: lab.params["position"]))

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="readout")

    def action_position(self, step: int) -> None:
        self.position = max(0, self.position + step)

    def watch_position(self, position: int) -> None:
        from workbench_engines.positional import rope, rope_permutation

        x = np.asarray(self.params["vector"], dtype=np.float64)[None]
        if x.shape[1] % 2:
            self.readout(Text(f"RoPE turns pairs of dimensions: give an even number of values, not {x.shape[1]}."))
            return
        base = self.params["base"]
        half = rope(x, positions=np.array([position]), base=base)[0]
        inter = rope(x, positions=np.array([position]), base=base, layout="interleaved")[0]
        perm = rope_permutation(len(x[0]))
        permuted = rope(x[:, perm], positions=np.array([position]), base=base, layout="interleaved")[0]
        table = Table(box=None, header_style="bold", title=f"x rotated for position {position} (+/- move it)",
                      title_justify="left", caption_justify="left")
        for name in ("dim", "x", "half", "interleaved", "perm", "interleaved(x[perm])", "half[perm]"):
            table.add_column(Text(name), justify="right")  # Text: "[perm]" is not markup
        for i in range(len(x[0])):
            table.add_row(str(i), f"{x[0, i]:+.3f}", f"{half[i]:+.3f}", f"{inter[i]:+.3f}", str(perm[i]),
                          f"{permuted[i]:+.3f}", f"{half[perm][i]:+.3f}")
        same = bool(np.allclose(permuted, half[perm]))
        table.caption = Text(f"half pairs i with i + {len(perm) // 2}; interleaved pairs 2i with 2i + 1. The last "
                             f"two columns {'agree' if same else 'DIFFER'}: permute x's dimensions, rotate "
                             "interleaved, and you get the half-layout result, permuted the same way.")
        self.readout(table)
