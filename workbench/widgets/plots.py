"""The one way labs draw plots: legible at 80×24, in 256 colours and under NO_COLOR (issue 20).

plotext draws a title and a legend *inside* its canvas: a title wider than
the plot is dropped and a legend paints over the data (it hid the top of a
bar, so 63% read as 47%). Its default markers tell series apart only by
colour, adjacent bars touch, small bars look as tall as bigger ones, and an
axis over whole numbers prints 0.0, 31.8, 63.5. A :class:`Figure` is a
plotext canvas with a title line above it and a key line below it, and its
drawing methods apply the same rules to every lab:

- the title, the key hint and the legend are text outside the canvas, wrapped
  rather than cut;
- each series has its own marker character *and* colour, and the legend shows
  both, so a curve is named without colour;
- bars are narrower than their slot (a gap between neighbours), rise from 0 on
  an axis scaled to the tallest, carry their value as a label above them
  (compact: 0.0096, 2.4M, 5.8e-4), and a nonzero bar too short for one row is
  a mark on the floor, so 0.0096 never reads as 0.07 nor as nothing;
- an axis whose data are all whole numbers gets whole-number ticks;
- a histogram is drawn as a frequency polygon (counts per bin joined by a line)
  so that two distributions overlap without one hiding the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotext
from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

MARKERS = ("•", "x", "+", "o", "*", "#")
"""Line markers, one per series: characters that differ in shape, for terminals without colour."""

BAR_FILLS = ("█", "▒", "▚", "░")
"""Bar fills, one per series of a grouped bar chart: told apart by texture as well as colour."""

COLOURS = ((0, 130, 200), (230, 25, 75), (60, 180, 75), (245, 130, 48), (145, 30, 180), (70, 200, 200))
"""Series colours (blue, red, green, orange, purple, teal): far apart in the 256-colour cube too."""

HEAD_ROOM = 1.35
"""A bar chart's y axis reaches this multiple of its top value: room for the tallest bar's label."""

BAR_WIDTH = 0.6
"""A bar's width as a fraction of its slot: the rest is the gap that keeps neighbours apart."""

ONE_SERIES_MARKER = "braille"
"""A lone curve needs no marker to name it: braille draws it at the finest resolution."""


@dataclass(frozen=True)
class Series:
    """One named curve: y against x."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    points: bool = False
    """Draw the points alone, not joined: for curves that swing faster than the canvas has columns."""


def marker_of(index: int) -> str:
    return MARKERS[index % len(MARKERS)]


def colour_of(index: int) -> tuple[int, int, int]:
    return COLOURS[index % len(COLOURS)]


def nice_step(span: float, most: int) -> float:
    """The least of 1, 2, 5 × 10ᵏ that cuts span into at most ``most`` intervals."""
    if span <= 0:
        return 1.0
    exponent = math.floor(math.log10(span / most))
    for power in (exponent, exponent + 1):
        for mantissa in (1, 2, 5):
            step = mantissa * 10.0 ** power
            if span / step <= most:
                return step
    return 10.0 ** (exponent + 2)


def integer_ticks(low: float, high: float, most: int = 5) -> list[int]:
    """Whole-number ticks from low to high, at most ``most`` + 1 of them, on a 1-2-5 step."""
    step = max(1, int(nice_step(high - low, most)))
    first = math.ceil(low / step) * step
    return list(range(first, math.floor(high) + 1, step)) or [round(low)]


def nice_ticks(low: float, high: float, most: int = 5) -> tuple[list[float], list[str]]:
    """Ticks on a 1-2-5 step from low to high, labelled with as many decimals as the step needs (never "-0.00")."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low], [f"{low:.3g}"]
    step = nice_step(high - low, most)
    first = math.ceil(low / step - 1e-9)
    ticks = [k * step for k in range(first, math.floor(high / step + 1e-9) + 1)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    labels = [f"{t:.{decimals}f}" if abs(t) > step / 2 else "0" for t in ticks]
    return ticks, labels


def all_integers(values: Sequence[float]) -> bool:
    array = np.asarray(values, dtype=float)
    return array.size > 0 and bool(np.all(np.isfinite(array))) and bool(np.all(array == np.round(array)))


SI_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
"""Thousands, millions, billions, trillions: a label above a bar, or a tick, says 2.4M, not 2400000."""

TINY_BAR = "▁"
"""The fill of a bar too short for one row of █: a mark on the floor, so a nonzero value is never a gap."""


def bar_label(value: float) -> str:
    """A bar's value, short enough to sit above a bar: 0.52, 0.0096, 63, 1.23k, 2.4M, 5.8e-4, 3e20.

    At most 6 characters (7 with a minus sign) from 0.001 to 10^15, where it
    is a decimal or a number with a k/M/G/T suffix; outside that, the
    exponent form (1.2e-5, 3e20), at most 8 (9). Two significant figures
    under 10 and in the exponent form, whole numbers from 10 to 999, three
    significant figures with a suffix above, so 999,999 reads 1M, never 1000k.
    """
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(float(f"{value:.3g}"))
    if magnitude >= 1e15 or magnitude < 1e-3:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    for scale, prefix in SI_PREFIXES:
        if magnitude >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.0f}" if magnitude >= 10 else f"{value:.2g}"


def legend(labels: Sequence[str], symbols: Sequence[str]) -> Text:
    """The legend line: each series' marker (in its colour) and its label."""
    text = Text()
    for i, (label, symbol) in enumerate(zip(labels, symbols)):
        if i:
            text.append("   ")
        red, green, blue = colour_of(i)
        text.append(symbol * 2, style=f"bold rgb({red},{green},{blue})")
        text.append(f" {label}")
    return text


def finite_values(values: Sequence[float]) -> np.ndarray:
    """values as a flat float array without nan and inf (a diverged run's), which plotext and NumPy's binning
    cannot place."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def axis_ticks(low: float, high: float, integers: bool, most: int = 5) -> tuple[list[float], list[str]]:
    """Whole-number ticks for whole-number data, else 1-2-5 ticks: either way never 31.8 or -0.00."""
    if integers:
        ticks = integer_ticks(low, high, most)
        return [float(t) for t in ticks], [str(t) for t in ticks]
    return nice_ticks(low, high, most)


def draw_lines(plt, series: Sequence[Series], *, xlabel: str = "",
               xticks: tuple[Sequence[float], Sequence[str]] | None = None,
               yticks: tuple[Sequence[float], Sequence[str]] | None = None,
               ylim: tuple[float, float] | None = None) -> Text | None:
    """Draw curves on a plotext figure by this module's rules; the legend to show under it (None for one curve).

    Args:
        plt: a plotext figure: a PlotextPlot's ``plt`` in the app, the ``plotext`` module in a CLI command.
    """
    many = len(series) > 1
    # Where curves share a cell the one drawn last shows: draw the first-named (the subject) last.
    # plotext fails on nan and inf (a diverged run's loss): such points are left out.
    finite = [[(float(x), float(y)) for x, y in zip(s.x, s.y) if math.isfinite(x) and math.isfinite(y)]
              for s in series]
    for i, s in reversed(list(enumerate(series))):
        if finite[i]:
            mark = marker_of(i) if many or s.points else ONE_SERIES_MARKER
            draw = plt.scatter if s.points else plt.plot
            draw([x for x, _ in finite[i]], [y for _, y in finite[i]], marker=mark, color=colour_of(i))
    xs = [x for points in finite for x, _ in points]
    ys = [y for points in finite for _, y in points]
    if xticks is not None:
        plt.xticks(list(xticks[0]), list(xticks[1]))
    elif xs:
        plt.xticks(*axis_ticks(min(xs), max(xs), all_integers(xs), most=6))
    if ylim is not None:
        plt.ylim(*ylim)
    if yticks is not None:
        plt.yticks(list(yticks[0]), list(yticks[1]))
    elif ys:
        low, high = ylim if ylim is not None else (min(ys), max(ys))
        plt.yticks(*axis_ticks(low, high, all_integers(ys)))
    if xlabel:
        plt.xlabel(xlabel)
    symbols = [marker_of(i) if many or s.points else "─" for i, s in enumerate(series)]
    return legend([s.label for s in series], symbols) if many else None


def lines_text(title: str, series: Sequence[Series], *, width: int, height: int = 14, xlabel: str = "") -> Group:
    """The curves of :meth:`Figure.lines` for a command that prints (``workbench train``): title, canvas, legend.

    Draws on plotext's own figure, which it clears first; for a rich Console or Live, not for the app.
    """
    plotext.clear_data()
    plotext.clear_figure()
    plotext.plotsize(width, height)
    plotext.theme("clear")
    key = draw_lines(plotext, series, xlabel=xlabel)
    parts = [Text(title.center(width).rstrip(), style="bold"), Text.from_ansi(plotext.build().rstrip("\n"))]
    if key is not None:
        parts.append(key)
    return Group(*parts)


class Figure(Vertical):
    """A plot with its title and key hint above the canvas and its legend below it.

    A lab yields ``Figure()`` and sets the canvas height in its own CSS
    (``MyLab Figure PlotextPlot { height: 12; }``); then calls :meth:`lines`,
    :meth:`bars`, :meth:`grouped_bars` or :meth:`histogram` with the data.
    """

    DEFAULT_CSS = """
    Figure { height: auto; }
    Figure > .figure-title { width: 1fr; height: auto; text-align: center; text-style: bold; }
    Figure > .figure-key { width: 1fr; height: auto; }
    Figure > .figure-key.-empty { display: none; }
    Figure > PlotextPlot { height: 12; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", classes="figure-title")
        yield PlotextPlot()
        yield Static("", classes="figure-key -empty")

    # --- what a lab calls -------------------------------------------------

    def lines(self, title: str, series: Sequence[Series], *, xlabel: str = "", hint: str = "",
              xticks: tuple[Sequence[float], Sequence[str]] | None = None,
              yticks: tuple[Sequence[float], Sequence[str]] | None = None,
              ylim: tuple[float, float] | None = None) -> None:
        """Curves, each with its own marker and colour; a lone curve is drawn in braille and needs no legend."""
        key = draw_lines(self._fresh(), series, xlabel=xlabel, xticks=xticks, yticks=yticks, ylim=ylim)
        self._finish(title, hint, key)

    def bars(self, title: str, labels: Sequence[str], values: Sequence[float], *, xlabel: str = "",
             hint: str = "", top: float | None = None, label: Callable[[float], str] = bar_label) -> None:
        """One bar per label, with gaps between bars and each bar's value written above it.

        The y axis runs from 0 to the tallest bar (and room for its label), so 0.24 and 0.18 differ by
        rows, not by nothing; ``top`` caps it (1 for probabilities).
        """
        plt = self._fresh()
        values = [float(v) for v in values]
        tallest = max(values, default=0.0)
        high = max(min(top, tallest) if top is not None else tallest, 1e-12)
        # plotext draws any positive bar at least one row tall; one under half a row would stand as tall as
        # one twice its size, so it is drawn as a mark on the floor instead (its label gives its value):
        # 0.0096 beside 0.07 is a mark beside a bar, never a gap nor the same block.
        half_row = high * HEAD_ROOM / (2 * self._rows())
        tiny = [0 < abs(v) < half_row for v in values]
        # Bar i stands at x = i + 1, as plotext puts labelled bars; each call draws only its own bars, since a
        # zero bar paints its floor blank.
        for small, fill in ((True, {"marker": TINY_BAR}), (False, {})):
            slots = [i for i, is_tiny in enumerate(tiny) if is_tiny is small]
            if slots:
                plt.bar([i + 1 for i in slots], [values[i] for i in slots], width=BAR_WIDTH, color=colour_of(0),
                        **fill)
        plt.xticks(list(range(1, len(values) + 1)), list(labels))
        plt.xlim(0.5, len(values) + 0.5)
        self._bar_labels(plt, values, 2 * half_row, label)
        self._value_axis(plt, values, high)
        if xlabel:
            plt.xlabel(xlabel)
        self._finish(title, hint, None)

    def grouped_bars(self, title: str, labels: Sequence[str], groups: dict[str, Sequence[float]], *,
                     xlabel: str = "", hint: str = "") -> None:
        """Bars per label, one per group (series), each group with its own fill and colour; a gap between labels."""
        plt = self._fresh()
        names = list(groups)
        data = [[float(v) for v in groups[name]] for name in names]
        fills = [BAR_FILLS[i % len(BAR_FILLS)] for i in range(len(names))]
        plt.multiple_bar(list(labels), data, marker=fills, color=[colour_of(i) for i in range(len(names))],
                         width=0.7)
        values = [v for row in data for v in row]
        self._value_axis(plt, values, max(max(values, default=0.0), 1e-12))
        if xlabel:
            plt.xlabel(xlabel)
        self._finish(title, hint, legend(names, fills))

    def histogram(self, title: str, samples: dict[str, Sequence[float]], *, bins: int = 40, xlabel: str = "",
                  hint: str = "") -> None:
        """Distributions as frequency polygons over shared bins: overlapping ones stay visible."""
        arrays = {name: finite_values(values) for name, values in samples.items()}
        everything = np.concatenate([np.zeros(0), *arrays.values()])
        if everything.size == 0:
            everything = np.zeros(1)
        edges = np.histogram_bin_edges(everything, bins=bins)
        centres = ((edges[:-1] + edges[1:]) / 2).tolist()
        series = [Series(name, centres, np.histogram(values, bins=edges)[0].tolist()) for name, values in arrays.items()]
        self.lines(title, series, xlabel=xlabel, hint=hint)

    # --- the shared rules -------------------------------------------------

    def _fresh(self):
        plt = self.query_one(PlotextPlot).plt
        plt.clear_data()
        plt.clear_figure()
        return plt

    def _rows(self) -> int:
        """The canvas's rows for data: its height less the frame and the tick labels (a guess before layout)."""
        height = self.query_one(PlotextPlot).size.height
        return height - 3 if height > 4 else 8

    @staticmethod
    def _bar_labels(plt, values: list[float], row: float, label: Callable[[float], str]) -> None:
        # plotext places bar i at x = i + 1 and centres a text on its x; a row and a half above the value clears
        # the bar's top cell however plotext rounds it.
        for i, value in enumerate(values):
            plt.text(label(value), i + 1, value + 1.5 * row)

    @staticmethod
    def _value_axis(plt, values: list[float], high: float) -> None:
        # Head room for the value labels; whole-number ticks when the values are whole.
        plt.ylim(0, high * HEAD_ROOM)
        ticks, labels = axis_ticks(0, high, all_integers(values))
        if high >= 1e4:  # 2M, not 2000000, beside the axis
            labels = [bar_label(t) for t in ticks]
        plt.yticks(ticks, labels)

    def _finish(self, title: str, hint: str, key: Text | None) -> None:
        heading = Text(title)
        if hint:
            heading.append(f" ({hint})", style="not bold")
        self.query_one(".figure-title", Static).update(heading)
        key_line = self.query_one(".figure-key", Static)
        key_line.update(key if key is not None else "")
        key_line.set_class(key is None, "-empty")
        self.query_one(PlotextPlot).refresh()

    @property
    def title_text(self) -> str:
        """The title line as shown (for tests and screen readers)."""
        return str(self.query_one(".figure-title", Static).content)

    @property
    def key_text(self) -> str:
        """The legend line as shown; empty for a plot of one series."""
        return str(self.query_one(".figure-key", Static).content)
