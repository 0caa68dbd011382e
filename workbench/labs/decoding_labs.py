"""Labs of the Decoding track, all on the project's own small GPT (trained on the plays, shipped with it).

Model work runs in the lab's worker; the first use loads torch and the
weights (a second or two), later ones reuse them.
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
from textual.reactive import Initialize, reactive
from textual.widgets import Input, Static

from workbench.labs.base import Lab, Progress
from workbench.labs.knobs import (SAMPLER_KNOBS, knob_keys, knob_note, paired_keys, plus_minus_keys, shown_as_one,
                                  stepped)
from workbench.typed import unescape
from workbench.widgets.plots import Figure, Series


def load_target(progress: Progress | None = None):
    """The shipped target model (workbench_engines.models.small_gpt), loaded once per process."""
    from workbench_engines.models import small_gpt

    if progress is not None:
        progress(0.05, "loading the small GPT")
    return small_gpt.load("target")


def load_model(name: str, progress: Progress | None = None):
    """The small GPT ("small-gpt") or SmolLM2-135M with quantised weights ("smollm2"), loaded once per process.

    Both answer to .model, .tokenizer, .config and .prompt_ids, so a lab runs either.
    """
    if name == "small-gpt":
        return load_target(progress)
    from workbench_engines.models.llama import bundled

    if progress is not None:
        progress(0.05, "loading SmolLM2-135M")
    return bundled("quantized")


def shown(text: str) -> str:
    """A generated string on one screen line per line, with visible newlines kept short."""
    return text.replace("  \n", "\n").strip("\n")


@dataclass(frozen=True)
class Generated:
    """A finished generation as the GenerateLab shows it."""

    text: str
    tokens: list[int]
    mode: str
    repeated_4: float
    """Share of its 4-grams that repeat an earlier one."""


class GenerateLab(Lab):
    """Generate from a prompt greedily or by sampling, and measure how much the text repeats itself."""

    BINDINGS = [
        Binding("g", "run(0)", "Greedy"),
        Binding("s", "run(1)", "Sample"),
        *plus_minus_keys("temperature(0.1)", "temperature(-0.1)", "T ±0.1"),
    ]
    temperature = reactive(Initialize(lambda lab: lab.params["temperature"]), init=False)
    """The temperature of the next sample (s)."""
    generated = reactive(None, always_update=True)
    """The last Generated."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.seed = 0

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["prompt"], placeholder="a prompt (\\n for a new line); Enter generates greedily")
        yield Static("g: greedy, s: sample (a fresh draw each time), +/-: temperature", classes="readout")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self.action_run(0)

    def action_temperature(self, step: float) -> None:
        self.temperature = round(min(2.0, max(0.1, self.temperature + step)), 2)

    def watch_temperature(self, temperature: float) -> None:
        self.status(f"temperature {temperature:.1f} for the next sample (s)")

    def action_run(self, sampled: int) -> None:
        from workbench_engines.sampling.settings import GREEDY, Sampler

        prompt = unescape(self.query_one(Input).value)
        sampler = Sampler(temperature=self.temperature) if sampled else GREEDY
        self.seed += 1
        seed, count = self.seed, self.params["tokens"]

        def work(progress: Progress) -> Generated:
            from workbench_engines.generation import generate, repeated_ngram_fraction

            pretrained = load_target(progress)
            progress(0.3, "generating")
            result = generate(pretrained.model, pretrained.prompt_ids(prompt), count, sampler=sampler, seed=seed)
            mode = "greedy (temperature 0)" if sampler.greedy else f"sampled at temperature {sampler.temperature:.1f}"
            return Generated(pretrained.tokenizer.decode(result.tokens), result.tokens, mode,
                             repeated_ngram_fraction(result.tokens))

        self.start(work, lambda generated: setattr(self, "generated", generated), "Generating")

    def watch_generated(self, generated: Generated | None) -> None:
        if generated is None:
            return
        summary = Text(f"\n{generated.mode}: {len(generated.tokens)} tokens, {100 * generated.repeated_4:.0f}% of its "
                       "4-token sequences repeat an earlier one", style="bold")
        self.readout(Group(Text(shown(generated.text)), summary))


@dataclass(frozen=True)
class Scored:
    """A prompt the SamplerLab scored: the model's next-token logits after it."""

    pretrained: Any
    ids: list[int]
    logits: np.ndarray


class SamplerLab(Lab):
    """The next-token distribution of the small GPT, with every knob of a sampler on a key."""

    BINDINGS = [
        # One footer item for the four knobs (the readout names each one's keys) and short labels: at 80 columns,
        # beside the lesson's keys and "x Cancel" during a run, the footer must still reach "z Reset" (issue 20).
        *shown_as_one([*SAMPLER_KNOBS, *knob_keys("m", "min_p", "min-p")], "tT kK uU mM", "knobs±"),
        Binding("d", "samples", "Draw", tooltip="Draw four continuations"),
        Binding("z", "reset", "Reset"),
    ]
    STEPS = {
        "temperature": [0.1, 0.3, 0.5, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0],
        "top_k": [None, 1, 2, 5, 10, 20, 50, 100, 500],
        "top_p": [None, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99],
        "min_p": [None, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5],
    }
    """The values each knob steps through; None is "off" (the first step up turns a filter on)."""

    @dataclass(frozen=True)
    class State:
        sampler: Any
        """The Sampler the knobs set."""
        samples: tuple[str, ...] = ()
        """Continuations drawn with it (cleared when a knob moves)."""

    def _initial(self) -> "SamplerLab.State":
        from workbench_engines.sampling.settings import Sampler

        return SamplerLab.State(Sampler(temperature=self.params["temperature"]))

    state = reactive(Initialize(_initial))
    scored = reactive(None, always_update=True)
    """The Scored prompt, once the model has run."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.seed = 0

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["prompt"], placeholder="a prompt (\\n for a new line); Enter scores it")
        yield Static("Loading the model…", classes="readout")

    def on_mount(self) -> None:
        self._score(self.params["prompt"])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self._score(event.value)

    def _score(self, prompt: str) -> None:
        text = unescape(prompt)

        def work(progress: Progress) -> Scored:
            from workbench_engines.generation import next_token_logits

            pretrained = load_model(self.params["model"], progress)
            ids = pretrained.prompt_ids(text)[-(pretrained.config.context - 16):]
            return Scored(pretrained, ids, next_token_logits(pretrained.model, ids))

        self.start(work, self._scored, "Scoring the prompt")

    def _scored(self, scored: Scored) -> None:
        self.scored = scored
        self.state = replace(self.state, samples=())

    def action_knob(self, name: str, step: int) -> None:
        old = getattr(self.state.sampler, name)
        value = stepped(self.STEPS[name], old, step)
        self.state = SamplerLab.State(replace(self.state.sampler, **{name: value}))
        self.status(knob_note(name, old, value, step))

    def action_reset(self) -> None:
        self.state = self._initial()

    def action_samples(self) -> None:
        scored = self.scored
        if scored is None:
            return
        self.seed += 1
        sampler, seed = self.state.sampler, self.seed

        def work(progress: Progress) -> tuple[str, ...]:
            from workbench_engines.generation import generate

            out = []
            for i in range(4):
                progress(i / 4, "sampling")
                result = generate(scored.pretrained.model, scored.ids, 12, sampler=sampler, seed=seed * 10 + i)
                out.append(scored.pretrained.tokenizer.decode(result.tokens))
            return tuple(out)

        self.start(work, lambda samples: setattr(self, "state", replace(self.state, samples=samples)), "Sampling")

    def distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities at temperature 1, probabilities after the knobs)."""
        from workbench_engines.sampling.reference import softmax

        logits = self.scored.logits
        return softmax(logits), self.state.sampler.distribution(logits)

    def watch_scored(self) -> None:
        self._draw()

    def watch_state(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.scored is None:
            return
        from workbench_engines.sampling.settings import entropy_bits

        raw, after = self.distribution()
        tokenizer = self.scored.pretrained.tokenizer
        order = np.argsort(-raw, kind="stable")[:10]
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name, justify in (("token", "left"), ("p (T=1)", "right"), ("p now", "right"), ("", "left")):
            table.add_column(name, justify=justify, no_wrap=True)
        for token in order:
            piece = repr(tokenizer.decode([int(token)]))[1:-1][:12]
            bar = "█" * int(round(after[token] * 30))
            table.add_row(piece, f"{raw[token]:.3f}", f"{after[token]:.3f}" if after[token] else "cut", bar)
        s = self.state.sampler
        knobs = (f"T={s.temperature:g} (t/T)  top-k={s.top_k or 'off'} (k/K)  top-p={s.top_p or 'off'} (u/U)  "
                 f"min-p={s.min_p or 'off'} (m/M)")
        self.kept = int((after > 0).sum())
        """How many tokens can be drawn with these knobs."""
        self.entropy = entropy_bits(after)
        model = "the small GPT" if self.params["model"] == "small-gpt" else "SmolLM2-135M (quantised)"
        stats = Text(f"{knobs}\n{model}: {self.kept:,} of {len(after):,} tokens can be drawn; "
                     f"entropy {self.entropy:.2f} bits (at T=1, unfiltered: {entropy_bits(raw):.2f})", style="bold")
        parts: list[Any] = [table, stats]
        if self.state.samples:
            parts.append(Text("fresh continuations (d for more):", style="bold"))
            parts += [Text("  " + shown(s).replace("\n", " ⏎ ")[:72]) for s in self.state.samples]
        else:
            parts.append(Text("d draws four continuations with these settings; z resets the knobs", style="dim"))
        self.readout(Group(*parts))


class EntropySweepLab(Lab):
    """Temperature against per-token entropy and the diversity of whole samples, measured on the model."""

    DEFAULT_CSS = "EntropySweepLab Figure PlotextPlot { height: 12; }"
    BINDINGS = [Binding("r", "sweep", "Run the sweep")]
    points = reactive(None, always_update=True)
    """The SweepPoints of the last sweep."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("r samples the model at each temperature (about ten seconds on a laptop CPU).", classes="readout")

    def action_sweep(self) -> None:
        temperatures = list(self.params["temperatures"])
        prompt, samples, tokens = unescape(self.params["prompt"]), self.params["samples"], self.params["tokens"]

        def work(progress: Progress):
            from workbench_engines.generation import temperature_sweep

            pretrained = load_target(progress)
            return temperature_sweep(pretrained.model, pretrained.prompt_ids(prompt), temperatures,
                                     samples=samples, tokens=tokens, progress=progress,
                                     decode=pretrained.tokenizer.decode)

        self.start(work, lambda points: setattr(self, "points", points), "Sweeping temperatures")

    def watch_points(self, points) -> None:
        if points is None:
            return
        ts = [p.temperature for p in points]
        self.query_one(Figure).lines("what the model's choices look like as T rises", [
            Series("entropy, bits per token", ts, [p.entropy_bits for p in points]),
            Series("distinct-2 × 10", ts, [p.distinct_2 * 10 for p in points]),
            Series("real words × 10", ts, [p.real_words * 10 for p in points])], xlabel="temperature")
        table = Table(box=None, header_style="bold")
        for name in ("T", "bits", "distinct-2", "4-grams repeated", "real words"):
            table.add_column(name, justify="right")
        for p in points:
            table.add_row(f"{p.temperature:g}", f"{p.entropy_bits:.2f}", f"{p.distinct_2:.2f}",
                          f"{100 * p.repeated_4:.0f}%", f"{100 * p.real_words:.0f}%")
        samples = Table(box=None, header_style="bold", title="the start of the first sample at each T",
                        title_justify="left")
        samples.add_column("T", justify="right")
        samples.add_column("text")
        for p in points:
            text = shown(p.sample).replace("\n", " ⏎ ")
            samples.add_row(f"{p.temperature:g}", text if len(text) <= 140 else text[:139] + "…")  # two lines at 80
        self.readout(Group(table, sweep_verdict(points), samples))


def sweep_verdict(points) -> Text:
    """Which temperature reads most like the plays (most real words net of repeats), and what the extremes lost."""
    scored = [p for p in points if p.plays_like is not None]
    if not scored:
        return Text("No text was decoded, so how much it reads like the plays was not measured.")
    best = max(scored, key=lambda p: p.plays_like)
    coldest = min(scored, key=lambda p: p.temperature)
    hottest = max(scored, key=lambda p: p.temperature)
    words = [f"Reads most like the plays at T = {best.temperature:g}: {100 * best.real_words:.0f}% of its words occur "
             f"in the plays and {100 * best.repeated_4:.0f}% of its 4-grams repeat (the most real words net of repeats)."]
    if coldest.temperature < best.temperature and coldest.repeated_4 > best.repeated_4:
        words.append(f"At T = {coldest.temperature:g} {100 * coldest.repeated_4:.0f}% of 4-grams repeat.")
    if hottest.temperature > best.temperature and hottest.real_words < best.real_words:
        words.append(f"At T = {hottest.temperature:g} only {100 * hottest.real_words:.0f}% of words are real.")
    return Text(" ".join(words))


@dataclass(frozen=True)
class BeamOutcome:
    """A beam search beside greedy decoding of the same prompt."""

    tokenizer: Any
    result: Any
    """The BeamResult."""
    greedy: Any
    """Greedy decoding as a Hypothesis, scored like the beams (finished when it wrote the end-of-text token)."""
    width: int
    """The beams searched (the knob may have moved since)."""


class BeamLab(Lab):
    """Beam search on the small GPT: the live beams step by step and the finished ranking."""

    BINDINGS = [
        *paired_keys("w", "W", "width(1)", "width(-1)", "width±"),
        *paired_keys("a", "A", "alpha(0.5)", "alpha(-0.5)", "α±"),
        Binding("r", "search", "Search"),
    ]

    @dataclass(frozen=True)
    class Settings:
        width: int
        alpha: float

    settings = reactive(Initialize(lambda lab: BeamLab.Settings(lab.params["width"], lab.params["alpha"])), init=False)
    outcome = reactive(None, always_update=True)
    """The last BeamOutcome."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["prompt"], placeholder="a prompt; Enter searches")
        yield Static("r searches; w/W change the width, a/A the length penalty α", classes="readout")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self.action_search()

    def action_width(self, step: int) -> None:
        self.settings = replace(self.settings, width=min(16, max(1, self.settings.width + step)))

    def action_alpha(self, step: float) -> None:
        self.settings = replace(self.settings, alpha=min(2.0, max(0.0, self.settings.alpha + step)))

    def watch_settings(self, settings: Settings) -> None:
        self.status(f"width {settings.width}, α {settings.alpha:g}: r searches")

    def action_search(self) -> None:
        prompt, settings, tokens = unescape(self.query_one(Input).value), self.settings, self.params["tokens"]

        def work(progress: Progress) -> BeamOutcome:
            from workbench_engines.generation import beam_search, generate, sequence_logprob
            from workbench_engines.generation.beam import Hypothesis

            pretrained = load_target(progress)
            tokenizer = pretrained.tokenizer
            ids = pretrained.prompt_ids(prompt)
            progress(0.3, f"{settings.width} beams")
            eos = tokenizer.special_tokens["<|endoftext|>"]
            result = beam_search(pretrained.model, ids, tokens, width=settings.width, alpha=settings.alpha, eos=eos)
            # Greedy stops where a beam would: at the end-of-text token, which ends a hypothesis.
            greedy = generate(pretrained.model, ids, tokens, stop_tokens=(eos,)).tokens
            hypothesis = Hypothesis(tuple(greedy), sequence_logprob(pretrained.model, ids, greedy),
                                    bool(greedy) and greedy[-1] == eos)
            return BeamOutcome(tokenizer, result, hypothesis, settings.width)

        self.start(work, lambda outcome: setattr(self, "outcome", outcome), "Searching")

    def watch_outcome(self, outcome: BeamOutcome | None) -> None:
        if outcome is None:
            return
        result, greedy = outcome.result, outcome.greedy

        def text(h) -> str:
            return shown(outcome.tokenizer.decode(list(h.tokens))).replace("\n", " ⏎ ")

        steps = Table(box=None, header_style="bold", title="live beams at three steps", title_justify="left")
        steps.add_column("step", justify="right")
        steps.add_column("log p", justify="right")
        steps.add_column("beam")
        picks = sorted({0, len(result.steps) // 2, len(result.steps) - 1}) if result.steps else []
        for i in picks:
            for h in result.steps[i][:4]:
                steps.add_row(str(i + 1), f"{h.logprob:.2f}", text(h)[-52:])
        final = Table(box=None, header_style="bold", title=f"best hypotheses (score = log p / length^{result.alpha:g})",
                      title_justify="left")
        for name in ("score", "log p", "tokens", "text"):
            final.add_column(name, justify="left" if name == "text" else "right")
        for h in result.hypotheses[:4]:
            final.add_row(f"{h.score(result.alpha):.3f}", f"{h.logprob:.2f}", str(len(h.tokens)), text(h)[:48])
        final.add_row(f"{greedy.score(result.alpha):.3f}", f"{greedy.logprob:.2f}", str(len(greedy.tokens)),
                      "greedy: " + text(greedy)[:40], style="dim")
        self.readout(Group(steps, final, beam_verdict(result, greedy, outcome.width)))


def likelihood_ratio(nats: float) -> str:
    """e^nats as a reader takes it in: "52 times", or "about 10^40 times" when it would not fit a line."""
    ratio = math.exp(min(nats, 700.0))
    return f"{ratio:.3g} times" if ratio < 1e4 else f"about 10^{nats / math.log(10):.0f} times"


def beam_verdict(result, greedy, width: int) -> Text:
    """In words: did the beams beat greedy on the score they rank by, and if not, where greedy's path left them.

    With α = 0 the score is the total log-probability, so a better score is
    more probable text; with α > 0 it is log p / length^α, the table's order.
    """
    alpha = result.alpha
    best, top, mine = result.best, result.best.score(alpha), greedy.score(alpha)
    measure = "log p" if alpha == 0 else f"score (log p / length^{alpha:g})"
    beams = f"{width} beam{'s' if width != 1 else ''}"
    if best.tokens == greedy.tokens:
        return Text(f"The best hypothesis is greedy's own text ({measure} {mine:.2f}).")
    if math.isclose(top, mine, rel_tol=0, abs_tol=1e-9):
        return Text(f"A tie: the best hypothesis and greedy's text differ but score the same ({mine:.2f}).")
    if top > mine:
        likely = f", text {likelihood_ratio(top - mine)} as likely" if alpha == 0 else ""
        return Text(f"The beams found a better {measure} than greedy: {top:.2f} against {mine:.2f}{likely}.")
    path = greedy.tokens[:-1] if greedy.finished else greedy.tokens
    where = result.dropped_at(path)
    lost = (f"greedy's path fell out of the {beams} at step {where}, when {width} other "
            f"prefix{'es' if width != 1 else ''} scored higher" if where is not None else
            f"the search stopped after step {len(result.steps)}, once {beams} had ended")
    return Text(f"Greedy won this time: {measure} {mine:.2f} against the beams' best {top:.2f}; {lost}. "
                "Beam search is a heuristic: a wider beam (w) keeps more paths.")


SCHEMAS: list[tuple[str, dict]] = [
    ("a speaker and a mood", {"type": "object", "properties": {
        "speaker": {"type": "string", "maxLength": 16}, "mood": {"enum": ["merry", "grave", "angry"]},
        "lines": {"type": "integer"}}}),
    ("a cast list", {"type": "object", "properties": {
        "play": {"type": "string", "maxLength": 24},
        "cast": {"type": "array", "items": {"type": "string", "maxLength": 10}, "minItems": 1, "maxItems": 3}}}),
    ("a verdict", {"type": "object", "properties": {"guilty": {"type": "boolean"}, "sentence": {"type": "string",
                                                                                                   "maxLength": 30}}}),
]


def schema_lines(schema: dict) -> str:
    """The whole schema, one property a line, so that it wraps at 80 columns instead of being cut at 150 characters."""
    import json

    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return json.dumps(schema)
    rest = {k: v for k, v in schema.items() if k != "properties"}
    head = json.dumps(rest)[:-1] + ', "properties": {'
    body = ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in properties.items())
    return f"{head}\n{body}}}}}"


@dataclass(frozen=True)
class ConstrainedOutcome:
    value: Any
    """What json.loads made of the constrained text."""
    result: Any
    """The ConstrainedResult."""
    free: str
    """The same prompt, sampled without the constraint."""
    free_verdict: str


class ConstrainedLab(Lab):
    """JSON that always parses: the same prompt with and without a schema's automaton masking the logits."""

    BINDINGS = [Binding("ctrl+n", "next_schema", "Next schema"), Binding("r", "run", "Generate")]
    schema_index = reactive(0)
    outcome = reactive(None, always_update=True)
    """The last ConstrainedOutcome."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.seed = 0

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="schema")
        yield Static("r generates with and without the constraint; ctrl+n picks another schema", classes="readout")

    def watch_schema_index(self, index: int) -> None:
        from workbench_engines.sampling.constrained import schema_regex

        name, schema = SCHEMAS[index]
        self.query_one(".schema", Static).update(Text(
            f"schema: {name}\n{schema_lines(schema)}\nregex: {schema_regex(schema)}", style="dim"))

    def action_next_schema(self) -> None:
        self.schema_index = (self.schema_index + 1) % len(SCHEMAS)

    def action_run(self) -> None:
        self.seed += 1
        schema, seed, prompt = SCHEMAS[self.schema_index][1], self.seed, unescape(self.params["prompt"])

        def work(progress: Progress) -> ConstrainedOutcome:
            from workbench_engines.generation import generate, generate_json
            from workbench_engines.generation.constrained import json_verdict
            from workbench_engines.sampling.settings import Sampler

            pretrained = load_target(progress)
            tokenizer = pretrained.tokenizer
            ids = pretrained.prompt_ids(prompt)
            progress(0.2, "building the token automaton")
            value, result = generate_json(pretrained.model, tokenizer, ids, schema, seed=seed,
                                          sampler=Sampler(temperature=0.8))
            progress(0.7, "the same prompt, unconstrained")
            free = tokenizer.decode(generate(pretrained.model, ids, 40, sampler=Sampler(temperature=0.8), seed=seed).tokens)
            return ConstrainedOutcome(value, result, free, json_verdict(free))

        self.start(work, lambda outcome: setattr(self, "outcome", outcome), "Generating")

    def watch_outcome(self, outcome: ConstrainedOutcome | None) -> None:
        if outcome is None:
            return
        counts = outcome.result.allowed_counts
        self.readout(Group(
            Text("constrained:", style="bold"), Text("  " + outcome.result.text),
            Text(f"  json.loads → {outcome.value!r}"[:160]),
            Text(f"  {len(outcome.result.tokens)} tokens; allowed per step: min {min(counts)}, "
                 f"median {int(np.median(counts))}, max {max(counts)} of 2,048"),
            Text("unconstrained:", style="bold"), Text("  " + shown(outcome.free).replace("\n", " ⏎ ")[:150]),
            Text(f"  {outcome.free_verdict}"),
        ))
