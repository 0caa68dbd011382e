"""How varied generated text is: repeated n-grams, distinct n-grams, and a temperature sweep measuring both.

Greedy decoding of a small model falls into loops; sampling at a higher
temperature trades those loops for noise. These measures put numbers on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Callable

import numpy as np

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
"""A word as the plays spell it: lower-case letters with at most one inner apostrophe (o'er, I'll)."""


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
    sample: str = ""
    """The first sample's text (empty when the sweep had no decoder)."""
    real_words: float | None = None
    """Share of the samples' words that occur somewhere in the plays (None without a decoder)."""

    @property
    def plays_like(self) -> float | None:
        """real_words − repeated_4: high when the words are real and the text does not loop."""
        return None if self.real_words is None else self.real_words - self.repeated_4


@cache
def plays_vocabulary() -> frozenset[str]:
    """Every word of the default corpus (the plays), lower-cased: about 25,000."""
    from workbench_engines.corpus import read_text

    return frozenset(WORD.findall(read_text().lower()))


def real_word_share(texts: list[str], vocabulary: frozenset[str]) -> float:
    """Share of the words in ``texts`` found in ``vocabulary`` (1.0 for text without words)."""
    words = [w for text in texts for w in WORD.findall(text.lower())]
    return sum(w in vocabulary for w in words) / len(words) if words else 1.0


def temperature_sweep(model, prompt: list[int], temperatures: list[float], *, samples: int, tokens: int,
                      progress: Callable[[float, str], None] | None = None,
                      decode: Callable[[list[int]], str] | None = None) -> list[SweepPoint]:
    """Sample ``samples`` continuations of ``tokens`` tokens at each temperature (seeds 0…samples−1).

    With ``decode`` each point also keeps its first sample's text and the
    share of the samples' words that are words of the plays, so "reads like
    the plays" is measured, not only eyeballed.
    """
    from workbench_engines.generation.generate import generate
    from workbench_engines.sampling.settings import Sampler, entropy_bits

    vocabulary = plays_vocabulary() if decode is not None else frozenset()
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
        texts = [decode(o) for o in outs] if decode is not None else []
        points.append(SweepPoint(t, float(np.mean(entropies)), distinct_n(outs, 2),
                                 float(np.mean([repeated_ngram_fraction(o) for o in outs])),
                                 texts[0] if texts else "",
                                 real_word_share(texts, vocabulary) if decode is not None else None))
    return points


def sequence_logprob(model, prompt: list[int], tokens: list[int]) -> float:
    """log p(tokens | prompt) under the model, summed over the tokens (natural log)."""
    import torch

    with torch.inference_mode():
        logits = model(torch.tensor([prompt + tokens]))[0].double()  # (T, V)
    logprobs = torch.log_softmax(logits, -1)
    return float(sum(logprobs[len(prompt) - 1 + i, t] for i, t in enumerate(tokens)))
