"""A sampler's knobs on keys, for every lab that samples: lower case turns a knob up, upper case down."""

from __future__ import annotations

from textual.binding import Binding

def knob_keys(key: str, name: str, label: str) -> list[Binding]:
    """``key`` turns knob ``name`` up, its upper case down; the footer shows the pair once ("t/T temp±")."""
    return [Binding(key, f"knob({name!r}, 1)", f"{label}±", key_display=f"{key}/{key.upper()}"),
            Binding(key.upper(), f"knob({name!r}, -1)", f"{label} down", show=False)]


SAMPLER_KNOBS = [*knob_keys("t", "temperature", "temp"), *knob_keys("k", "top_k", "top-k"),
                 *knob_keys("u", "top_p", "top-p")]
"""Temperature, top-k and top-p; a lab binding them defines ``action_knob(name, step)``."""


def stepped(values: list, current, step: int):
    """The value ``step`` places from ``current`` in ``values``, held at either end (an unknown current counts as the first)."""
    index = values.index(current) if current in values else 0
    return values[min(len(values) - 1, max(0, index + step))]
