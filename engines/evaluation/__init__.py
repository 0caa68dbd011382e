"""Measuring a language model: perplexity and bits per byte over long text, and how far a changed model moved."""

from workbench_engines.evaluation.perplexity import (
    Comparison,
    TextScore,
    bits_per_byte_from,
    compare_models,
    sliding_window_nll,
    window_spans,
)

__all__ = ["Comparison", "TextScore", "bits_per_byte_from", "compare_models", "sliding_window_nll", "window_spans"]
