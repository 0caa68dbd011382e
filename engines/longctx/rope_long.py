"""RoPE scaling measured on a real model past its own context: SmolLM2-135M (8,192 tokens) read over longer text.

:func:`workbench_engines.longctx.rope_scaling.perplexity_by_position` scores a
window with each method's tables, but a model refuses more tokens than its
config's context and holds RoPE tables only that long.
:func:`past_context` lends it a private copy with a longer context and
longer plain tables (the methods then swap in their own), and
:func:`buckets` averages the loss over ranges of positions.

Heavy: one forward over the whole window per method with full attention. On
two Zen 3 cores a 12,288-token window of SmolLM2 takes minutes per method, so
it is a script, not a lab or a test (the test runs the code path on a tiny model)::

    flock /tmp/wb-heavy.lock timeout 900 .venv/bin/python -m workbench_engines.longctx.rope_long \\
        --tokens 12288 --bucket 1024

It prints each method's perplexity per bucket of positions as soon as that
method is done, over the held-out ends of the plays (``evaluation.heldout``),
SmolLM2-tokenised, read as one window from position 0. SmolLM2 was trained on
web text that may include Shakespeare: "held out" means only that no
workbench model trained on it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import replace

from workbench_engines.arrays import require_int
from workbench_engines.errors import EngineError


def past_context(model, ids: Sequence[int], *, tokens: int, trained_context: int | None = None,
                 methods: Sequence[str] | None = None,
                 progress: Callable[[float, str], None] | None = None) -> list:
    """perplexity_by_position over the first ``tokens`` of ids, one window, on a copy of model stretched to hold it.

    Args:
        model: A workbench GPT or Llama; it is not changed.
        ids: The text's token ids (at least ``tokens`` of them).
        tokens: The window, longer than trained_context.
        trained_context: The context the model was trained on (default: its config's).
        methods: rope_scaling.METHODS by default.

    Returns:
        rope_scaling.PositionCurve per method, each stretched by tokens / trained_context.
    """
    from workbench_engines.longctx.rope_scaling import METHODS, perplexity_by_position
    from workbench_engines.models.layers import rope_tables

    config = model.config
    trained = require_int(trained_context or config.context, "trained_context", low=2)
    tokens = require_int(tokens, "tokens", low=trained + 1)
    if len(ids) < tokens:
        raise EngineError(f"the text holds {len(ids):,} tokens; {tokens:,} were asked for")
    # A private copy: another thread's model must keep its context and tables.
    long = copy.deepcopy(model)
    long.config = replace(config, context=tokens)
    long.rope_cos, long.rope_sin = rope_tables(config.head_dim, tokens, config.rope_base)
    return perplexity_by_position(long, ids, methods=methods or METHODS, window=tokens, windows=1,
                                  trained_context=trained, progress=progress)


def buckets(curve, window: int, bucket: int) -> list[tuple[int, int, float]]:
    """(lo, hi, perplexity) over [lo, hi) ranges of ``bucket`` positions of a PositionCurve."""
    bucket = require_int(bucket, "bucket", low=1)
    return [(lo, min(lo + bucket, window), curve.perplexity(max(lo, 1), min(lo + bucket, window)))
            for lo in range(0, window, bucket)]


def main(argv: Sequence[str] | None = None) -> None:
    """The SmolLM2 measurement of the module docstring: one method at a time, printed as it finishes."""
    import argparse
    import time

    from workbench_engines.evaluation.heldout import held_out_plays
    from workbench_engines.longctx.rope_scaling import LABELS, METHODS
    from workbench_engines.models import llama

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=12288)
    parser.add_argument("--bucket", type=int, default=1024)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    smol = llama.load(weights="fp32")
    held = held_out_plays(smol.tokenizer, 38)
    trained = smol.config.context
    print(f"SmolLM2-135M fp32, rope base {smol.config.rope_base:g}, context {trained:,}; "
          f"{args.tokens:,} tokens of the held-out ends of {len(held.plays)} plays ({len(held.ids):,} available); "
          f"stretch ×{args.tokens / trained:.3f}", flush=True)
    for method in args.methods.split(","):
        start = time.perf_counter()
        curve, = past_context(smol.model, held.ids, tokens=args.tokens, trained_context=trained, methods=[method])
        rows = buckets(curve, args.tokens, args.bucket)
        print(f"{LABELS[method]:>24} ({time.perf_counter() - start:.0f} s): "
              + " ".join(f"{ppl:.1f}" for _, _, ppl in rows)
              + f" | within {trained:,}: {curve.perplexity(1, trained):.2f}, past it: "
              f"{curve.perplexity(trained, args.tokens):.2f}", flush=True)
    print("buckets of positions: " + " ".join(f"{lo}-{hi - 1}" for lo, hi, _ in rows))


if __name__ == "__main__":
    main()
