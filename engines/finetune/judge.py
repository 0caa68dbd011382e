"""A programmatic sentiment judge: VADER's lexicon with its core rules, a compound score in [−1, 1].

The alignment lessons need a judge that labels preferences without a human;
the classifier lesson needs a baseline that learned nothing from the data.
Both use this: Hutto & Gilbert's (2014) lexicon of rated words, summed with
three of VADER's rules, then squashed into [−1, 1].

- Negation: a word within three tokens after "not", "never", "without" or a
  word ending in "n't" has its valence scaled by −0.74 (VADER's constant).
- Contrast: around the first "but", words before it count half and words after it one and a half times.
- Normalisation: the sum s becomes s / sqrt(s² + 15), so a few strong words approach ±1 but never reach it.

VADER itself has more rules (booster words, capitals, exclamation marks,
idioms); this subset keeps what a learner can check by hand, and is what the
lessons mean by "the lexicon judge".

Example::

    >>> compound("the film was not good")   # "good" is 1.9, negated
    -0.3412...
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from workbench_engines.finetune.sentiment_data import load_lexicon

NEGATION_SCALE = -0.74
"""VADER's N_SCALAR: a negated word keeps about three quarters of its strength, with the sign flipped."""
NEGATION_WINDOW = 3
"""Tokens after a negator whose valence it flips."""
BEFORE_BUT, AFTER_BUT = 0.5, 1.5
ALPHA = 15.0
"""The normalisation constant: compound = s / sqrt(s² + ALPHA)."""
NEGATORS = frozenset({"not", "no", "never", "none", "nothing", "nowhere", "neither", "nor", "without", "cannot",
                      "rarely", "seldom"})

_TOKEN = re.compile(r"\S+")
_EDGE_PUNCTUATION = "\"'.,;:!?()[]{}<>*_-"


def tokens(text: str) -> list[str]:
    """Whitespace tokens with their edge punctuation stripped, except that a token left with two characters or
    fewer is kept whole, as VADER's ``_strip_punc_if_word`` does, so that emoticons such as ":)" survive.

    Faithful to VADER, this also keeps "ok." and "No," whole, so neither is then found in the lexicon or seen as
    a negator ("It was ok." scores 0). The alignment lessons' preference labels were measured with this rule.
    """
    found = []
    for raw in _TOKEN.findall(text):
        stripped = raw.strip(_EDGE_PUNCTUATION)
        found.append(raw if len(stripped) <= 2 and len(raw) <= 3 and not raw.isalnum() else stripped)
    return [token for token in found if token]


def _negator(token: str) -> bool:
    """Whether token flips the valence of the words after it: one of NEGATORS, or any word ending in "n't"."""
    lower = token.lower()
    return lower in NEGATORS or lower.endswith("n't")


def valences(text: str, lexicon: Mapping[str, float] | None = None) -> list[tuple[str, float]]:
    """Each token with the valence it contributes after the negation and contrast rules (0 for unknown words).

    Args:
        text: Any text.
        lexicon: token -> valence; None for VADER's.
    """
    lexicon = load_lexicon() if lexicon is None else lexicon
    words = tokens(text)
    lowered = [word.lower() for word in words]
    but = lowered.index("but") if "but" in lowered else None
    scored = []
    for i, word in enumerate(words):
        value = lexicon.get(lowered[i], lexicon.get(word, 0.0))
        if value and any(_negator(w) for w in words[max(0, i - NEGATION_WINDOW):i]):
            value *= NEGATION_SCALE
        if but is not None and i != but:
            value *= BEFORE_BUT if i < but else AFTER_BUT
        scored.append((word, value))
    return scored


def normalise(total: float) -> float:
    """s / sqrt(s² + ALPHA): VADER's map from a summed valence to (−1, 1)."""
    return total / math.sqrt(total * total + ALPHA)


def compound(text: str, lexicon: Mapping[str, float] | None = None) -> float:
    """The judge's score of ``text`` in (−1, 1); 0 for text with no rated word."""
    return normalise(sum(value for _, value in valences(text, lexicon)))
