"""Generating text with a model: plain (cached or not), beam search, speculative, and constrained decoding.

torch is imported when a function runs, not with this package.
"""

from workbench_engines.generation.beam import BeamResult, Hypothesis, beam_search
from workbench_engines.generation.constrained import ConstrainedResult, generate_constrained, generate_json
from workbench_engines.generation.diversity import (
    SweepPoint,
    distinct_n,
    repeated_ngram_fraction,
    sequence_logprob,
    temperature_sweep,
)
from workbench_engines.generation.generate import Generation, generate, next_token_logits
from workbench_engines.generation.speculative import SpeculativeResult, speculative_generate

__all__ = [
    "BeamResult",
    "ConstrainedResult",
    "Generation",
    "Hypothesis",
    "SpeculativeResult",
    "SweepPoint",
    "beam_search",
    "distinct_n",
    "generate",
    "generate_constrained",
    "generate_json",
    "next_token_logits",
    "repeated_ngram_fraction",
    "sequence_logprob",
    "speculative_generate",
    "temperature_sweep",
]
