"""A sampler's knobs on keys, for every lab that samples: lower case turns a knob up, upper case down."""

from __future__ import annotations

from dataclasses import replace

from textual.binding import Binding


def paired_keys(up_key: str, down_key: str, up: str, down: str, label: str, display: str | None = None, *,
                up_help: str = "", down_help: str = "") -> list[Binding]:
    """``up_key`` runs action ``up`` and ``down_key`` action ``down``; the footer shows the pair once
    ("s/S shift±"), so a lab's keys fit 80 columns beside the lesson's.

    Both are listed in help, the up key under ``up_help`` where the short
    footer label says less than a sentence would (kept as its tooltip, which
    the footer shows on hover), the down key under ``down_help`` or
    "``label`` (down)".
    """
    return [Binding(up_key, up, label, key_display=display or f"{up_key}/{down_key}", tooltip=up_help),
            Binding(down_key, down, down_help or f"{label} (down)", show=False)]


def plus_minus_keys(up: str, down: str, label: str) -> list[Binding]:
    """``+`` runs action ``up`` and ``-`` action ``down``, shown once as "+/- label"."""
    return paired_keys("plus,equals_sign", "minus", up, down, label, display="+/-")


def shown_as_one(bindings: list[Binding], display: str, label: str) -> list[Binding]:
    """``bindings`` shown in the footer as one item, ``display`` then ``label`` ("tT kK uU mM knobs±"), for a lab
    with more knobs than 80 columns hold one by one; every key still works and help lists each under its own
    description (the first one's kept as its tooltip)."""
    first, *rest = bindings
    return [replace(first, description=label, key_display=display, show=True, tooltip=first.description),
            *(replace(binding, show=False) for binding in rest)]


def knob_keys(key: str, name: str, label: str) -> list[Binding]:
    """``key`` turns knob ``name`` up, its upper case down; the footer shows the pair once ("t/T temp±")."""
    return paired_keys(key, key.upper(), f"knob({name!r}, 1)", f"knob({name!r}, -1)", f"{label}±")


SAMPLER_KNOBS = [*knob_keys("t", "temperature", "temp"), *knob_keys("k", "top_k", "top-k"),
                 *knob_keys("u", "top_p", "top-p")]
"""Temperature, top-k and top-p; a lab binding them defines ``action_knob(name, step)``."""


def stepped(values: list, current, step: int):
    """The value ``step`` places from ``current`` in ``values``, held at either end (an unknown current counts as the first)."""
    index = values.index(current) if current in values else 0
    return values[min(len(values) - 1, max(0, index + step))]


def cycled(values, current):
    """The value after ``current`` in ``values``, wrapping from the last to the first (an unknown current: the first)."""
    return values[(values.index(current) + 1) % len(values)] if current in values else values[0]


KNOB_LABELS = {"temperature": "temperature", "top_k": "top-k", "top_p": "top-p", "min_p": "min-p"}


def knob_note(name: str, old, new, step: int) -> str:
    """What a knob's step did when it was more than a nudge, in words for the lab's status line.

    From off, the first step up switches a filter on at its loosest listed
    value, which is a jump (top-p off → 0.1 keeps only the top 10% of the
    mass; top-k off → 1 is greedy); the learner is told, not left to notice.
    """
    label = KNOB_LABELS.get(name, name)
    if old is None and new is not None:
        extra = " (only the most likely token: greedy)" if name == "top_k" and new == 1 else ""
        return f"{label} switched on at {new:g}{extra}: the first step up from off"
    if old is not None and new is None:
        return f"{label} switched off: it no longer removes any token"
    if old == new:
        return f"{label} is already at its {'highest' if step > 0 else 'lowest'} setting"
    return ""

