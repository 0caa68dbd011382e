"""How varied generated text is: repeated n-grams, distinct n-grams, and a temperature sweep measuring both.

Greedy decoding of a small model falls into loops; sampling at a higher
temperature trades those loops for noise. These measures put numbers on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def repeated_ngram_fraction(tokens: list[int], n: int = 4) -> float:
    """Share of the n-grams of one text that already occurred earlier in it (0 = no loops)."""
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


@dataclass(frozen=True)
class SweepPoint:
    """What samples at one temperature look like."""

    temperature: float
    entropy_bits: float
    """Mean entropy of the distributions the tokens were drawn from, bits per token."""
    distinct_2: float
    """distinct-2 across all samples at this temperature."""
    repeated_4: float
    """Mean share of each sample's 4-grams that repeat an earlier one."""


def temperature_sweep(model, prompt: list[int], temperatures: list[float], *, samples: int, tokens: int,
                      progress: Callable[[float, str], None] | None = None) -> list[SweepPoint]:
    """Sample ``samples`` continuations of ``tokens`` tokens at each temperature (seeds 0…samples−1)."""
    from workbench_engines.generation.generate import generate
    from workbench_engines.sampling.settings import Sampler, entropy_bits

    points = []
    for i, t in enumerate(temperatures):
        if progress:
            progress(i / len(temperatures), f"temperature {t:g}")
        entropies: list[float] = []
        outs = []
        for s in range(samples):
            result = generate(model, prompt, tokens, sampler=Sampler(temperature=t), seed=s,
                              on_token=lambda token, probs: entropies.append(entropy_bits(probs)))
            outs.append(result.tokens)
        points.append(SweepPoint(t, float(np.mean(entropies)), distinct_n(outs, 2),
                                 float(np.mean([repeated_ngram_fraction(o) for o in outs]))))
    return points


def sequence_logprob(model, prompt: list[int], tokens: list[int]) -> float:
    """log p(tokens | prompt) under the model, summed over the tokens (natural log)."""
    import torch

    with torch.inference_mode():
        logits = model(torch.tensor([prompt + tokens]))[0].double()  # (T, V)
    logprobs = torch.log_softmax(logits, -1)
    return float(sum(logprobs[len(prompt) - 1 + i, t] for i, t in enumerate(tokens)))
