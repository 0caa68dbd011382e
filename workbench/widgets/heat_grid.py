"""A grid of shaded cells: attention weights, masks, any [rows, cols] values in [0, 1].

Each cell is two characters from a ramp of block shades, so the grid reads
the same with and without colour; columns are labelled by the last digit of
their index and rows by index and an optional label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.table import Table
from textual.widgets import Static

SHADES = ((0.6, "██"), (0.35, "▓▓"), (0.15, "▒▒"), (0.05, "░░"), (0.0, "··"))
"""(lowest value, cell): a value takes the first cell whose floor it reaches."""
LEGEND = "██ ≥ .6  ▓▓ ≥ .35  ▒▒ ≥ .15  ░░ ≥ .05  ·· below"


def shade(value: float) -> str:
    """The cell drawn for a value in [0, 1]."""
    return next((cell for floor, cell in SHADES if value >= floor), SHADES[-1][1])


def heat_table(values: np.ndarray, *, title: str, row_labels: Sequence[str] = (), caption: str = "") -> Table:
    """values [rows, cols] in [0, 1] as a table of shaded cells (a bool mask draws ██ and ··)."""
    values = np.asarray(values, dtype=float)
    table = Table(box=None, pad_edge=False, padding=(0, 0), title=title, title_justify="left", caption=caption or None,
                  caption_justify="left")
    table.add_column("", no_wrap=True, max_width=11)
    for k in range(values.shape[1]):
        table.add_column(f" {k % 10}", no_wrap=True, width=2)
    for i, row in enumerate(values):
        # A space after the label: a 7-letter token ("because") ran into the first cell.
        label = f"{i:>2} {row_labels[i][:7]} " if i < len(row_labels) else f"{i:>2} "
        table.add_row(label, *(shade(float(v)) for v in row))
    return table


class HeatGrid(Static):
    """A widget showing one heat table; ``show`` replaces it."""

    DEFAULT_CSS = "HeatGrid { height: auto; width: 1fr; }"

    def show(self, values: np.ndarray, *, title: str, row_labels: Sequence[str] = (), caption: str = "") -> None:
        self.values = np.asarray(values)
        """The values drawn last."""
        self.update(heat_table(values, title=title, row_labels=row_labels, caption=caption))
