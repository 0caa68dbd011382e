"""Labs of the Decoding track, all on the project's own small GPT (trained on the plays, shipped with it).

Model work runs in the lab's worker; the first use loads torch and the
weights (a second or two), later ones reuse them.
"""

from __future__ import annotations

from dataclasses import replace
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


def load_target(progress: Progress | None = None):
    """The shipped target model (workbench_engines.models.small_gpt), loaded once per process."""
    from workbench_engines.models import small_gpt

    if progress is not None:
        progress(0.05, "loading the small GPT")
    return small_gpt.load("target")


def prompt_ids(tokenizer, text: str) -> list[int]:
    """The prompt's tokens; an empty prompt becomes the end-of-text token, where documents start."""
    return tokenizer.encode_ordinary(text) or [tokenizer.special_tokens["<|endoftext|>"]]


def shown(text: str) -> str:
    """A generated string on one screen line per line, with visible newlines kept short."""
    return text.replace("  \n", "\n").strip("\n")


def repeated_ngram_fraction(tokens: list[int], n: int = 4) -> float:
    """Share of n-grams that already occurred earlier in the same text (0 = no loops)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


def distinct_n(samples: list[list[int]], n: int = 2) -> float:
    """Distinct n-grams over all n-grams across samples (Li et al., 2016): 1 = never repeats."""
    grams = [tuple(s[i : i + n]) for s in samples for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


class GenerateLab(Lab):
    """Generate from a prompt greedily or by sampling, and measure how much the text repeats itself."""

    BINDINGS = [
        Binding("g", "run(0)", "Greedy"),
        Binding("s", "run(1)", "Sample"),
        Binding("plus,equals_sign", "temperature(0.1)", "T+"),
        Binding("minus", "temperature(-0.1)", "T-"),
    ]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.temperature = params["temperature"]
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
        self.status(f"temperature {self.temperature:.1f} for the next sample (s)")

    def action_run(self, sampled: int) -> None:
        from workbench_engines.sampling.settings import GREEDY, Sampler

        prompt = unescape(self.query_one(Input).value)
        sampler = Sampler(temperature=self.temperature) if sampled else GREEDY
        self.seed += 1
        seed, count = self.seed, self.params["tokens"]

        def work(progress: Progress):
            from workbench_engines.generation import generate

            pretrained = load_target(progress)
            ids = prompt_ids(pretrained.tokenizer, prompt)
            progress(0.3, "generating")
            result = generate(pretrained.model, ids, count, sampler=sampler, seed=seed)
            return pretrained.tokenizer.decode(result.tokens), result.tokens, sampler

        self.start(work, self._shown, "Generating")

    def _shown(self, result) -> None:
        text, tokens, sampler = result
        self.last_tokens = tokens
        self.repeats = repeated_ngram_fraction(tokens)
        mode = "greedy (temperature 0)" if sampler.greedy else f"sampled at temperature {sampler.temperature:.1f}"
        body = Text(shown(text))
        summary = Text(
            f"\n{mode}: {len(tokens)} tokens, {100 * self.repeats:.0f}% of its 4-token sequences repeat an earlier one",
            style="bold",
        )
        self.query_one(".readout", Static).update(Group(body, summary))


class SamplerLab(Lab):
    """The next-token distribution of the small GPT, with every knob of a sampler on a key."""

    BINDINGS = [
        Binding("t", "knob('temperature', 1)", "T+"),
        Binding("T", "knob('temperature', -1)", "T-"),
        Binding("k", "knob('top_k', 1)", "k+"),
        Binding("K", "knob('top_k', -1)", "k-"),
        Binding("p", "knob('top_p', 1)", "p+"),
        Binding("P", "knob('top_p', -1)", "p-"),
        Binding("m", "knob('min_p', 1)", "min-p+"),
        Binding("M", "knob('min_p', -1)", "min-p-"),
        Binding("n", "samples", "New samples"),
        Binding("z", "reset", "Reset knobs"),
    ]
    STEPS = {
        "temperature": [0.1, 0.3, 0.5, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0],
        "top_k": [None, 1, 2, 5, 10, 20, 50, 100, 500],
        "top_p": [None, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99],
        "min_p": [None, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5],
    }

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        from workbench_engines.sampling.settings import Sampler

        self.sampler = Sampler(temperature=params["temperature"])
        self.logits: np.ndarray | None = None
        self.samples: list[str] = []
        self.seed = 0

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["prompt"], placeholder="a prompt (\\n for a new line); Enter scores it")
        yield Static("Loading the small GPT…", classes="readout")

    def on_mount(self) -> None:
        self._score(self.params["prompt"])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self._score(event.value)

    def _score(self, prompt: str) -> None:
        text = unescape(prompt)

        def work(progress: Progress):
            from workbench_engines.generation import next_token_logits

            pretrained = load_target(progress)
            ids = prompt_ids(pretrained.tokenizer, text)
            ids = ids[-(pretrained.config.context - 16):]
            return pretrained, ids, next_token_logits(pretrained.model, ids)

        self.start(work, self._scored, "Scoring the prompt")

    def _scored(self, result) -> None:
        self.pretrained, self.ids, self.logits = result
        self.samples = []
        self.redraw()

    def action_knob(self, name: str, step: int) -> None:
        values = self.STEPS[name]
        current = getattr(self.sampler, name)
        index = values.index(current) if current in values else 0
        index = min(len(values) - 1, max(0, index + step))
        self.sampler = replace(self.sampler, **{name: values[index]})
        self.samples = []
        self.redraw()

    def action_reset(self) -> None:
        from workbench_engines.sampling.settings import Sampler

        self.sampler = Sampler(temperature=1.0)
        self.samples = []
        self.redraw()

    def action_samples(self) -> None:
        if self.logits is None:
            return
        from workbench_engines.generation import generate

        self.seed += 1
        sampler, ids, seed = self.sampler, self.ids, self.seed
        model, tokenizer = self.pretrained.model, self.pretrained.tokenizer

        def work(progress: Progress):
            out = []
            for i in range(4):
                progress(i / 4, "sampling")
                out.append(tokenizer.decode(generate(model, ids, 12, sampler=sampler, seed=seed * 10 + i).tokens))
            return out

        self.start(work, self._sampled, "Sampling")

    def _sampled(self, samples: list[str]) -> None:
        self.samples = samples
        self.redraw()

    def distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities at temperature 1, probabilities after the knobs)."""
        from workbench_engines.sampling.reference import softmax

        return softmax(self.logits), self.sampler.distribution(self.logits)

    def redraw(self) -> None:
        if self.logits is None:
            return
        from workbench_engines.sampling.settings import entropy_bits

        raw, after = self.distribution()
        tokenizer = self.pretrained.tokenizer
        order = np.argsort(-raw, kind="stable")[:10]
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name, justify in (("token", "left"), ("p (T=1)", "right"), ("p now", "right"), ("", "left")):
            table.add_column(name, justify=justify, no_wrap=True)
        for token in order:
            piece = repr(tokenizer.decode([int(token)]))[1:-1][:12]
            bar = "█" * int(round(after[token] * 30))
            table.add_row(piece, f"{raw[token]:.3f}", f"{after[token]:.3f}" if after[token] else "cut", bar)
        s = self.sampler
        knobs = (f"T={s.temperature:g} (t/T)  top-k={s.top_k or 'off'} (k/K)  top-p={s.top_p or 'off'} (p/P)  "
                 f"min-p={s.min_p or 'off'} (m/M)")
        self.kept = int((after > 0).sum())
        self.entropy = entropy_bits(after)
        stats = Text(f"{knobs}\n{self.kept:,} of {len(after):,} tokens can be drawn; "
                     f"entropy {self.entropy:.2f} bits (at T=1, unfiltered: {entropy_bits(raw):.2f})", style="bold")
        parts = [table, stats]
        if self.samples:
            parts.append(Text("fresh continuations (n for more):", style="bold"))
            parts += [Text("  " + shown(s).replace("\n", " ⏎ ")[:72]) for s in self.samples]
        else:
            parts.append(Text("n draws four continuations with these settings", style="dim"))
        self.query_one(".readout", Static).update(Group(*parts))


class EntropySweepLab(Lab):
    """Temperature against per-token entropy and the diversity of whole samples, measured on the model."""

    DEFAULT_CSS = "EntropySweepLab PlotextPlot { height: 14; }"
    BINDINGS = [Binding("r", "sweep", "Run the sweep")]

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("r samples the model at each temperature (about ten seconds on a laptop CPU).", classes="readout")

    def action_sweep(self) -> None:
        temperatures = list(self.params["temperatures"])
        prompt, samples, tokens = unescape(self.params["prompt"]), self.params["samples"], self.params["tokens"]

        def work(progress: Progress):
            from workbench_engines.generation import generate
            from workbench_engines.sampling.settings import Sampler, entropy_bits

            pretrained = load_target(progress)
            ids = pretrained.tokenizer.encode_ordinary(prompt)
            rows = []
            for i, t in enumerate(temperatures):
                progress(0.1 + 0.9 * i / len(temperatures), f"temperature {t:g}")
                entropies: list[float] = []
                outs = []
                for s in range(samples):
                    result = generate(pretrained.model, ids, tokens, sampler=Sampler(temperature=t), seed=s,
                                      on_token=lambda token, probs: entropies.append(entropy_bits(probs)))
                    outs.append(result.tokens)
                rows.append((t, float(np.mean(entropies)), distinct_n(outs, 2),
                             float(np.mean([repeated_ngram_fraction(o) for o in outs]))))
            return rows

        self.start(work, self._shown, "Sweeping temperatures")

    def _shown(self, rows: list[tuple[float, float, float, float]]) -> None:
        self.rows = rows
        plt = self.fresh_plot()
        ts = [r[0] for r in rows]
        plt.plot(ts, [r[1] for r in rows], label="entropy, bits per token", marker=marker(0))
        plt.plot(ts, [r[2] * 10 for r in rows], label="distinct-2 × 10", marker=marker(1))
        plt.xlabel("temperature")
        plt.title("what the model's choices look like as T rises")
        self.refresh_plot()
        table = Table(box=None, header_style="bold")
        for name in ("T", "entropy (bits)", "distinct-2", "4-grams repeated"):
            table.add_column(name, justify="right")
        for t, h, d, r in rows:
            table.add_row(f"{t:g}", f"{h:.2f}", f"{d:.2f}", f"{100 * r:.0f}%")
        self.query_one(".readout", Static).update(table)


class BeamLab(Lab):
    """Beam search on the small GPT: the live beams step by step and the finished ranking."""

    BINDINGS = [
        Binding("w", "width(1)", "Width+"),
        Binding("W", "width(-1)", "Width-"),
        Binding("a", "alpha(0.5)", "α+"),
        Binding("A", "alpha(-0.5)", "α-"),
        Binding("r", "search", "Search"),
    ]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.width, self.alpha = params["width"], params["alpha"]

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["prompt"], placeholder="a prompt; Enter searches")
        yield Static("r searches; w/W change the width, a/A the length penalty α", classes="readout")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()
        self.action_search()

    def action_width(self, step: int) -> None:
        self.width = min(16, max(1, self.width + step))
        self.status(f"width {self.width}, α {self.alpha:g}: r searches")

    def action_alpha(self, step: float) -> None:
        self.alpha = min(2.0, max(0.0, self.alpha + step))
        self.status(f"width {self.width}, α {self.alpha:g}: r searches")

    def action_search(self) -> None:
        prompt, width, alpha, tokens = unescape(self.query_one(Input).value), self.width, self.alpha, self.params["tokens"]

        def work(progress: Progress):
            from workbench_engines.generation import beam_search, generate
            from workbench_engines.generation.beam import Hypothesis

            pretrained = load_target(progress)
            tokenizer = pretrained.tokenizer
            ids = prompt_ids(tokenizer, prompt)
            progress(0.3, f"{width} beams")
            result = beam_search(pretrained.model, ids, tokens, width=width, alpha=alpha,
                                 eos=tokenizer.special_tokens["<|endoftext|>"])
            greedy = generate(pretrained.model, ids, tokens).tokens
            greedy_logprob = _logprob(pretrained.model, ids, greedy)
            return tokenizer, result, Hypothesis(tuple(greedy), greedy_logprob)

        self.start(work, self._shown, "Searching")

    def _shown(self, outcome) -> None:
        tokenizer, result, greedy = outcome
        self.result, self.greedy = result, greedy

        def text(h) -> str:
            return shown(tokenizer.decode(list(h.tokens))).replace("\n", " ⏎ ")

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
        self.query_one(".readout", Static).update(Group(steps, final))


def _logprob(model, prompt: list[int], tokens: list[int]) -> float:
    import torch

    with torch.inference_mode():
        logits = model(torch.tensor([prompt + tokens]))[0].double()
    logprobs = torch.log_softmax(logits, -1)
    return float(sum(logprobs[len(prompt) - 1 + i, t] for i, t in enumerate(tokens)))


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


class ConstrainedLab(Lab):
    """JSON that always parses: the same prompt with and without a schema's automaton masking the logits."""

    BINDINGS = [Binding("ctrl+n", "next_schema", "Next schema"), Binding("r", "run", "Generate")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.schema_index = 0
        self.seed = 0

    def compose_lab(self) -> ComposeResult:
        yield Static("", classes="schema")
        yield Static("r generates with and without the constraint; ctrl+n picks another schema", classes="readout")

    def on_mount(self) -> None:
        self._show_schema()

    def _show_schema(self) -> None:
        import json

        from workbench_engines.sampling.constrained import schema_regex

        name, schema = SCHEMAS[self.schema_index]
        self.query_one(".schema", Static).update(Text(
            f"schema: {name}\n{json.dumps(schema)[:150]}\nregex: {schema_regex(schema)[:150]}", style="dim"))

    def action_next_schema(self) -> None:
        self.schema_index = (self.schema_index + 1) % len(SCHEMAS)
        self._show_schema()

    def action_run(self) -> None:
        self.seed += 1
        schema, seed, prompt = SCHEMAS[self.schema_index][1], self.seed, unescape(self.params["prompt"])

        def work(progress: Progress):
            from workbench_engines.generation import generate, generate_json
            from workbench_engines.sampling.settings import Sampler

            pretrained = load_target(progress)
            tokenizer = pretrained.tokenizer
            ids = tokenizer.encode_ordinary(prompt)
            progress(0.2, "building the token automaton")
            value, result = generate_json(pretrained.model, tokenizer, ids, schema, seed=seed,
                                          sampler=Sampler(temperature=0.8))
            progress(0.7, "the same prompt, unconstrained")
            free = generate(pretrained.model, ids, 40, sampler=Sampler(temperature=0.8), seed=seed)
            return value, result, tokenizer.decode(free.tokens)

        self.start(work, self._shown, "Generating")

    def _shown(self, outcome) -> None:
        import json

        value, result, free = outcome
        self.value, self.result = value, result
        try:
            json.loads(free)
            free_verdict = "parses (by luck)"
        except json.JSONDecodeError as exc:
            free_verdict = f"json.loads fails: {exc.msg}"
        counts = result.allowed_counts
        parts = [
            Text("constrained:", style="bold"), Text("  " + result.text),
            Text(f"  json.loads → {value!r}"[:160]),
            Text(f"  {len(result.tokens)} tokens; allowed per step: min {min(counts)}, "
                 f"median {int(np.median(counts))}, max {max(counts)} of 2,048"),
            Text("unconstrained:", style="bold"), Text("  " + shown(free).replace("\n", " ⏎ ")[:150]),
            Text(f"  {free_verdict}"),
        ]
        self.query_one(".readout", Static).update(Group(*parts))
