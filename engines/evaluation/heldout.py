"""Text the shipped GPTs never trained on: the held-out end of each play, as tokens and as text.

The small GPTs were trained on every play but the last 5% of its tokens
(``models.data.encode_corpus``); those ends are their validation split, so a
perplexity measured on them is a measurement on unseen text. SmolLM2 was
trained on web text that may well include Shakespeare: for it the same text
is only "not seen by the workbench's models", and a lesson must say so.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench_engines.errors import EngineError


LESSON_WINDOW, LESSON_STRIDE = 256, 128
"""The window and stride the lessons' labs and probes score held-out text with, so a probe reproduces its lab's row."""


@dataclass(frozen=True)
class HeldOut:
    """The held-out ends of some plays, in the shipped tokenizer's tokens and as text."""

    ids: list[int]
    """Shipped-tokenizer tokens, the plays' ends one after another (no separator between plays)."""
    text: str
    """The same tokens decoded: what another tokenizer encodes to compare models per byte."""
    plays: tuple[str, ...]
    """The plays whose ends these are (file stems, e.g. "hamlet")."""


def held_out_plays(tokenizer, plays: int = 1, val_fraction: float = 0.05) -> HeldOut:
    """The held-out ends of the first ``plays`` plays of the default corpus, cut where training cut them.

    Args:
        tokenizer: The shipped 2,048-token BPE (``models.small_gpt.shipped_tokenizer()``): the cut is in its tokens.
        plays: How many plays, in the corpus's order (1 is about 2,000 tokens).
        val_fraction: The share held out; the shipped models used the default.
    """
    from workbench_engines import corpus
    from workbench_engines.arrays import require_int
    from workbench_engines.models.data import held_out_start

    files = corpus.default_corpus_files()
    plays = require_int(plays, "plays", low=1, high=len(files))
    ids: list[int] = []
    for encoded in tokenizer.encode_batch([corpus.read_text(f) for f in files[:plays]]):
        ids.extend(encoded[held_out_start(len(encoded), val_fraction):])
    if len(ids) < 2:
        raise EngineError("the held-out text is shorter than two tokens")
    return HeldOut(ids, tokenizer.decode(ids), tuple(f.stem for f in files[:plays]))
