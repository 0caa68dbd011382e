"""Generation whose output must match a regex or a JSON schema, by masking disallowed tokens each step."""

from __future__ import annotations

import json
from dataclasses import dataclass
import numpy as np

from workbench_engines.generation.generate import check_prompt
from workbench_engines.sampling.constrained import ConstraintError, TokenAutomaton, schema_regex, token_strings
from workbench_engines.sampling.settings import Sampler


@dataclass
class ConstrainedResult:
    text: str
    tokens: list[int]
    complete: bool
    """True when the text is a full match. Always, for a vocabulary where every character is a token
    (the budget steers generation to finish in time)."""
    allowed_counts: list[int]
    """How many tokens were allowed at each step."""


_AUTOMATA: dict[tuple[str, int], tuple[object, TokenAutomaton]] = {}


def _automaton(pattern: str, tokenizer, eos: int | None) -> TokenAutomaton:
    """One automaton per (regex, tokenizer), kept: its per-state token sets fill in as they are visited."""
    key = (pattern, id(tokenizer))
    held = _AUTOMATA.get(key)
    if held is None or held[0] is not tokenizer:
        if len(_AUTOMATA) >= 16:
            _AUTOMATA.pop(next(iter(_AUTOMATA)))
        held = _AUTOMATA[key] = (tokenizer, TokenAutomaton(pattern, token_strings(tokenizer), eos))
    return held[1]


def generate_constrained(model, tokenizer, prompt: list[int], pattern: str, *, max_new_tokens: int = 256,
                         sampler: Sampler = Sampler(temperature=0.8), seed: int | None = 0) -> ConstrainedResult:
    """Sample a continuation of prompt that matches ``pattern``; stops at end-of-text in an accepting state."""
    import torch

    from workbench_engines.kvcache import ContiguousCache

    eos = tokenizer.special_tokens.get("<|endoftext|>")
    automaton = _automaton(pattern, tokenizer, eos)
    prompt = check_prompt(prompt, 0, model.config)
    budget = min(max_new_tokens, model.config.context - len(prompt))
    rng = np.random.default_rng(seed)
    cache = ContiguousCache(model.config, 1, len(prompt) + budget)
    state = automaton.initial
    tokens: list[int] = []
    counts: list[int] = []
    shortest = automaton.shortest_completion(state)
    if shortest > budget:
        raise ConstraintError(f"the shortest match needs {shortest} tokens; only {budget} fit after the prompt")
    feed = prompt
    with torch.inference_mode():
        for step in range(budget):
            left = budget - step
            allowed = automaton.allowed(state, left)
            if len(allowed) == 0 or (len(allowed) == 1 and allowed[0] == eos):
                break  # a full match that cannot be extended (in the tokens left)
            counts.append(len(allowed))
            logits = model(torch.tensor([feed]), cache, last_only=True)[0, -1].float().numpy()
            token = sampler.choose(automaton.mask(logits, state, left), prompt + tokens, rng)
            if token == eos:
                break
            state = automaton.advance(state, token)
            tokens.append(token)
            feed = [token]
    return ConstrainedResult(tokenizer.decode(tokens), tokens, automaton.is_final(state), counts)


def generate_json(model, tokenizer, prompt: list[int], schema: dict, **kwargs) -> tuple[object, ConstrainedResult]:
    """Generate JSON valid under ``schema`` (the subset of workbench_engines.sampling.constrained.schema_regex); returns
    the parsed value and the raw result."""
    result = generate_constrained(model, tokenizer, prompt, schema_regex(schema), **kwargs)
    return (json.loads(result.text) if result.complete else None), result


def json_verdict(text: str) -> str:
    """Whether text parses as JSON, in words: what a learner compares against constrained output."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"json.loads fails: {exc.msg}"
    return "parses (by luck)"
