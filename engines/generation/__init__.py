"""Generating text with a model: plain (cached or not), beam search, speculative, and constrained decoding.

torch is imported when a function runs, not with this package.
"""

from engines.generation.beam import BeamResult, Hypothesis, beam_search
from engines.generation.constrained import ConstrainedResult, generate_constrained, generate_json
from engines.generation.generate import Generation, generate, next_token_logits
from engines.generation.speculative import SpeculativeResult, speculative_generate

__all__ = [
    "BeamResult",
    "ConstrainedResult",
    "Generation",
    "Hypothesis",
    "SpeculativeResult",
    "beam_search",
    "generate",
    "generate_constrained",
    "generate_json",
    "next_token_logits",
    "speculative_generate",
]
