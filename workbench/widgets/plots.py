"""The one way labs draw plots: legible at 80×24, in 256 colours and under NO_COLOR (issue 20).

plotext draws a title and a legend *inside* its canvas: a title wider than
the plot is dropped and a legend paints over the data (it hid the top of a
bar, so 63% read as 47%). Its default markers tell series apart only by
colour, adjacent bars touch, small bars look as tall as bigger ones, and an
axis over whole numbers prints 0.0, 31.8, 63.5. A :class:`Figure` is a
plotext canvas with a title line above it and a key line below it, and its
drawing methods apply the same rules to every lab:

- the title, the key hint and the legend are text outside the canvas, wrapped
  rather than cut, and a legend wraps only between entries, never between a
  marker and its label;
- each series has its own marker character *and* colour, and the legend shows
  both, so a curve is named without colour;
- where curves share a cell the one drawn last shows, so the curves are drawn
  in the order that leaves each the most cells of its own, and the legend
  says of a curve that still cannot be seen that it lies under another;
  a nan in a curve breaks its line rather than joining across the gap;
- bars are narrower than their slot (a gap between neighbours), rise from 0 on
  an axis scaled to the tallest, carry their value as a label above them
  (compact: 0.0096, 2.4M, 5.8e-4) on the canvas's own background, and their
  tops are drawn in eighths of a row (▁▂▃▄▅▆▇), so 0.12 and 0.071 differ in
  height and a nonzero bar is at least an eighth: never nothing;
- an axis whose data are all whole numbers gets whole-number ticks;
- a histogram is drawn as a frequency polygon (counts per bin joined by a line,
  empty bins left out) so that two distributions overlap without one hiding
  the other, on a log count axis when one's peak dwarfs the other's;
- a figure with no data yet shows one line saying so, not an empty frame.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotext
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
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

EIGHTHS = " ▁▂▃▄▅▆▇█"
"""A bar's top cell by how many eighths of the row it fills (0 to 8): ▁, the least, marks a tiny nonzero bar."""

EMPTY_PLACEHOLDER = "(no data yet: the plot appears here when there is something to show)"
"""What a figure says before its first data, instead of an empty frame."""


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


class Legend:
    """A legend: entries ("•• numpy", "xx numpy tiled") side by side, wrapped only *between* entries.

    A line break inside an entry would leave a marker at the end of one line
    and its label on the next; an entry wider than a whole line wraps on its own.
    """

    SEPARATOR = "   "

    def __init__(self, entries: Sequence[Text]) -> None:
        self.entries = list(entries)

    def __str__(self) -> str:
        return self.SEPARATOR.join(entry.plain for entry in self.entries)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((entry.cell_len for entry in self.entries), default=0)
        whole = sum(entry.cell_len for entry in self.entries) + len(self.SEPARATOR) * max(len(self.entries) - 1, 0)
        return Measurement(min(widest, options.max_width), min(whole, options.max_width))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        line = Text()
        for entry in self.entries:
            if line.cell_len and line.cell_len + len(self.SEPARATOR) + entry.cell_len > width:
                yield line
                line = Text()
            if line.cell_len:
                line.append(self.SEPARATOR)
            line.append_text(entry)
        if line.cell_len:
            yield line


def legend(labels: Sequence[str], symbols: Sequence[str], notes: Sequence[str] = ()) -> Legend:
    """The legend: each series' marker (in its colour) and its label, and a note where one is given."""
    entries = []
    for i, (label, symbol) in enumerate(zip(labels, symbols)):
        red, green, blue = colour_of(i)
        entry = Text(symbol * 2, style=f"bold rgb({red},{green},{blue})")
        entry.append(f" {label}")
        if i < len(notes) and notes[i]:
            entry.append(f" ({notes[i]})", style="italic")
        entries.append(entry)
    return Legend(entries)


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


GridCell = tuple[int, int]
"""A cell of a canvas: (row, column)."""


def segments(s: Series) -> list[list[tuple[float, float]]]:
    """The series' points in runs of finite ones: a nan or inf (a diverged loss, an empty bin) ends a run."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(s.x, s.y):
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


FOOTPRINT = "█"
"""The marker a series is drawn with, alone, to find the cells it marks."""

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def footprint(series: Sequence[Series], runs: list[list[list[tuple[float, float]]]], which: int,
              axes: Callable[[object], None], size: tuple[int, int]) -> set[GridCell]:
    """The canvas cells (row, column) series ``which`` marks, found by drawing it with plotext on a canvas of
    ``size`` with the same axes, after the other series drawn blank so that the ranges are the same."""
    from textual_plotext.plot import Plot

    plt = Plot()
    plt.plotsize(*size)
    plt.theme("clear")
    for i in [*(j for j in range(len(series)) if j != which), which]:
        draw = plt.scatter if series[i].points else plt.plot
        for run in runs[i]:
            draw([x for x, _ in run], [y for _, y in run], marker=FOOTPRINT if i == which else " ")
    axes(plt)
    lines = ANSI.sub("", plt.build()).splitlines()
    return {(row, column) for row, line in enumerate(lines) for column, char in enumerate(line) if char == FOOTPRINT}


def drawing_order(cells: list[set[GridCell]]) -> list[int]:
    """Series indices, the one to draw first (underneath) first.

    Of the series left, the one with the most cells that no other covers goes underneath next, so the one
    most likely to be hidden is drawn last, on top; on a tie the first-named (the subject) is drawn later.
    """
    remaining, order = list(range(len(cells))), []
    while remaining:
        def own(i: int) -> tuple[int, int]:
            others = set().union(*(cells[j] for j in remaining if j != i))
            return len(cells[i] - others), i
        bottom = max(remaining, key=own)
        order.append(bottom)
        remaining.remove(bottom)
    return order


def hidden_notes(cells: list[set[GridCell]], order: list[int], symbols: Sequence[str]) -> list[str]:
    """A legend note for each series that the ones drawn over it cover wholly or nearly ("under ••")."""
    notes = [""] * len(cells)
    for place, i in enumerate(order):
        above = order[place + 1:]
        if not cells[i] or not above:
            continue
        shown = cells[i] - set().union(*(cells[j] for j in above))
        coverer = max(above, key=lambda j: len(cells[i] & cells[j]))
        if not shown:
            notes[i] = f"under {symbols[coverer] * 2}"
        elif len(shown) < len(cells[i]) / 5:
            notes[i] = f"mostly under {symbols[coverer] * 2}"
    return notes


DEFAULT_SIZE = (76, 12)
"""The canvas size (columns, rows) assumed before a canvas is laid out."""


def draw_lines(plt, series: Sequence[Series], *, xlabel: str = "",
               xticks: tuple[Sequence[float], Sequence[str]] | None = None,
               yticks: tuple[Sequence[float], Sequence[str]] | None = None,
               ylim: tuple[float, float] | None = None, size: tuple[int, int] = DEFAULT_SIZE) -> Legend | None:
    """Draw curves on a plotext figure by this module's rules; the legend to show under it (None for one curve).

    Args:
        plt: a plotext figure: a PlotextPlot's ``plt`` in the app, the ``plotext`` module in a CLI command.
        size: the canvas's columns and rows, for the drawing order and the legend's notes.
    """
    many = len(series) > 1
    # plotext fails on nan and inf (a diverged run's loss): such points are left out, and break the line.
    runs = [segments(s) for s in series]
    xs = [x for rs in runs for run in rs for x, _ in run]
    ys = [y for rs in runs for run in rs for _, y in run]

    def axes(plt) -> None:
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
    order, notes = list(reversed(range(len(series)))), [""] * len(series)
    if many and xs:
        size = size if size[0] > 10 and size[1] > 4 else DEFAULT_SIZE
        cells = [footprint(series, runs, i, axes, size) for i in range(len(series))]
        order = drawing_order(cells)
        notes = hidden_notes(cells, order, symbols)
    for i in order:
        s = series[i]
        mark = marker_of(i) if many or s.points else ONE_SERIES_MARKER
        draw = plt.scatter if s.points else plt.plot
        for run in runs[i]:
            draw([x for x, _ in run], [y for _, y in run], marker=mark, color=colour_of(i))
    axes(plt)
    return legend([s.label for s in series], symbols, notes) if many else None


def lines_text(title: str, series: Sequence[Series], *, width: int, height: int = 14, xlabel: str = "") -> Group:
    """The curves of :meth:`Figure.lines` for a command that prints (``workbench train``): title, canvas, legend.

    Draws on plotext's own figure, which it clears first; for a rich Console or Live, not for the app.
    """
    plotext.clear_data()
    plotext.clear_figure()
    plotext.plotsize(width, height)
    plotext.theme("clear")
    key = draw_lines(plotext, series, xlabel=xlabel, size=(width, height))
    parts = [Text(title.center(width).rstrip(), style="bold"), Text.from_ansi(plotext.build().rstrip("\n"))]
    if key is not None:
        parts.append(key)
    return Group(*parts)


class Canvas(PlotextPlot):
    """A plotext canvas that can repaint for its own size just before it is drawn.

    Bars drawn in eighths of a row need the number of rows, which is known only
    once the canvas is laid out (and again after every resize).
    """

    painter: Callable[[object, int, int], None] | None = None
    """Draws the figure on (plt, width, height); None where the data were drawn once for any size."""

    def render(self):
        if self.painter is not None and self.size.width and self.size.height:
            self.plt.clear_data()
            self.plt.clear_figure()
            self.painter(self.plt, self.size.width, self.size.height)
        return super().render()


class Figure(Vertical):
    """A plot with its title and key hint above the canvas and its legend below it.

    A lab yields ``Figure()`` and sets the canvas height in its own CSS
    (``MyLab Figure PlotextPlot { height: 12; }``); then calls :meth:`lines`,
    :meth:`bars`, :meth:`grouped_bars` or :meth:`histogram` with the data.
    Until the first of those calls the figure is one line saying there is no
    data yet: an empty frame through a long run read as something broken.
    """

    DEFAULT_CSS = """
    Figure { height: auto; }
    Figure > .figure-title { width: 1fr; height: auto; text-align: center; text-style: bold; }
    Figure.-blank > .figure-title { text-style: italic; color: $text-muted; }
    Figure.-blank > PlotextPlot { display: none; }
    Figure > .figure-key { width: 1fr; height: auto; }
    Figure > .figure-key.-empty { display: none; }
    Figure > PlotextPlot { height: 12; }
    """

    drawn: dict | None = None
    """The last drawing asked for, as plain data ({"plot": "lines" | "bars" | "grouped_bars", "title": ..., and that
    method's arguments}): what a recorded run keeps and :meth:`redraw` draws again."""

    def compose(self) -> ComposeResult:
        self.add_class("-blank")
        yield Static(EMPTY_PLACEHOLDER, classes="figure-title")
        yield Canvas()
        yield Static("", classes="figure-key -empty")

    # --- what a lab calls -------------------------------------------------

    def lines(self, title: str, series: Sequence[Series], *, xlabel: str = "", hint: str = "",
              xticks: tuple[Sequence[float], Sequence[str]] | None = None,
              yticks: tuple[Sequence[float], Sequence[str]] | None = None,
              ylim: tuple[float, float] | None = None) -> None:
        """Curves, each with its own marker and colour; a lone curve is drawn in braille and needs no legend."""
        self.drawn = {"plot": "lines", "title": title, "series": [
            {"label": s.label, "x": plain_floats(s.x), "y": plain_floats(s.y), "points": s.points} for s in series],
            "xlabel": xlabel, "hint": hint, "xticks": ticks_data(xticks), "yticks": ticks_data(yticks),
            "ylim": list(ylim) if ylim is not None else None}
        key = draw_lines(self._fresh(), series, xlabel=xlabel, xticks=xticks, yticks=yticks, ylim=ylim,
                         size=self._canvas_size())
        self._finish(title, hint, key)

    def bars(self, title: str, labels: Sequence[str], values: Sequence[float], *, xlabel: str = "",
             hint: str = "", top: float | None = None, label: Callable[[float], str] = bar_label) -> None:
        """One bar per label, with gaps between bars and each bar's value written above it.

        The y axis runs from 0 to the tallest bar (and room for its label), so 0.24 and 0.18 differ by
        rows, not by nothing; ``top`` caps it (1 for probabilities). Each bar's top cell is drawn in
        eighths of a row, so values a row apart in plotext's whole rows (0.12, 0.071) differ in height.
        """
        plt = self._fresh()
        values = [float(v) for v in values]
        if label is bar_label:  # a lab's own formatter is code, not data: a redrawn chart labels bars the default way
            self.drawn = {"plot": "bars", "title": title, "labels": list(labels), "values": values, "xlabel": xlabel,
                          "hint": hint, "top": top}
        else:
            self.drawn = {"plot": "bars", "title": title, "labels": list(labels), "values": values, "xlabel": xlabel,
                          "hint": hint, "top": top, "value_labels": [label(v) for v in values]}
        tallest = max(values, default=0.0)
        high = max(min(top, tallest) if top is not None else tallest, 1e-12)

        def paint(plt, width: int, height: int) -> None:
            paint_bars(plt, list(labels), values, high, width, height, xlabel, label, self._canvas_colour())

        paint(plt, *self._canvas_size())
        self.query_one(Canvas).painter = paint
        self._finish(title, hint, None)

    def grouped_bars(self, title: str, labels: Sequence[str], groups: dict[str, Sequence[float]], *,
                     xlabel: str = "", hint: str = "") -> None:
        """Bars per label, one per group (series), each group with its own fill and colour; a gap between labels."""
        plt = self._fresh()
        names = list(groups)
        data = [[float(v) for v in groups[name]] for name in names]
        self.drawn = {"plot": "grouped_bars", "title": title, "labels": list(labels),
                      "groups": dict(zip(names, data)), "xlabel": xlabel, "hint": hint}
        fills = [BAR_FILLS[i % len(BAR_FILLS)] for i in range(len(names))]
        plt.multiple_bar(list(labels), data, marker=fills, color=[colour_of(i) for i in range(len(names))],
                         width=0.7)
        values = [v for row in data for v in row]
        high = max(max(values, default=0.0), 1e-12)
        plt.ylim(0, high * HEAD_ROOM)
        plt.yticks(*value_ticks(values, high))
        if xlabel:
            plt.xlabel(xlabel)
        self._finish(title, hint, legend(names, fills))

    def histogram(self, title: str, samples: dict[str, Sequence[float]], *, bins: int = 40, xlabel: str = "",
                  hint: str = "") -> None:
        """Distributions as frequency polygons over shared bins, empty bins left out: overlapping ones stay visible.

        Where one distribution's peak is ten times another's (a spike beside a spread), the count axis is
        logarithmic, so the spike does not flatten the other onto the floor.
        """
        arrays = {name: finite_values(values) for name, values in samples.items()}
        everything = np.concatenate([np.zeros(0), *arrays.values()])
        if everything.size == 0:
            everything = np.zeros(1)
        edges = np.histogram_bin_edges(everything, bins=bins)
        centres = ((edges[:-1] + edges[1:]) / 2).tolist()
        counts = {name: np.histogram(values, bins=edges)[0] for name, values in arrays.items()}
        peaks = [int(c.max()) for c in counts.values() if c.size and c.max() > 0]
        if len(peaks) > 1 and max(peaks) >= 10 * min(peaks):
            decades = list(range(int(math.log10(max(peaks))) + 1))
            series = [Series(name, centres, [math.log10(n) if n > 0 else math.nan for n in c])
                      for name, c in counts.items()]
            self.lines(title, series, xlabel=f"{xlabel} (count per bin on a log scale)".strip(), hint=hint,
                       ylim=(0.0, math.log10(max(peaks))),
                       yticks=([float(d) for d in decades], [bar_label(10.0 ** d) for d in decades]))
            return
        series = [Series(name, centres, [float(n) if n > 0 else math.nan for n in c]) for name, c in counts.items()]
        self.lines(title, series, xlabel=xlabel, hint=hint, ylim=(0.0, float(max(peaks, default=1))))

    def redraw(self, drawn: dict) -> None:
        """Draw again what :attr:`drawn` recorded (a replayed run's figure), without the engine that made it."""
        plot = drawn["plot"]
        if plot == "lines":
            series = [Series(s["label"], floats_of(s["x"]), floats_of(s["y"]), bool(s.get("points")))
                      for s in drawn["series"]]
            self.lines(drawn["title"], series, xlabel=drawn.get("xlabel", ""), hint=drawn.get("hint", ""),
                       xticks=ticks_of(drawn.get("xticks")), yticks=ticks_of(drawn.get("yticks")),
                       ylim=tuple(drawn["ylim"]) if drawn.get("ylim") else None)
        elif plot == "bars":
            values = floats_of(drawn["values"])
            shown = dict(zip(values, drawn.get("value_labels") or []))
            self.bars(drawn["title"], drawn["labels"], values, xlabel=drawn.get("xlabel", ""),
                      hint=drawn.get("hint", ""), top=drawn.get("top"),
                      label=(lambda v: shown.get(v, bar_label(v))) if shown else bar_label)
        elif plot == "grouped_bars":
            self.grouped_bars(drawn["title"], drawn["labels"], {k: floats_of(v) for k, v in drawn["groups"].items()},
                              xlabel=drawn.get("xlabel", ""),
                              hint=drawn.get("hint", ""))
        else:
            raise ValueError(f"unknown plot kind {plot!r}")

    # --- the shared rules -------------------------------------------------

    def _fresh(self):
        canvas = self.query_one(Canvas)
        canvas.painter = None
        plt = canvas.plt
        plt.clear_data()
        plt.clear_figure()
        return plt

    def _canvas_size(self) -> tuple[int, int]:
        """The canvas's columns and rows; while it is hidden (no data yet), the figure's width and the height
        its CSS asks for."""
        canvas = self.query_one(Canvas)
        if canvas.size.width and canvas.size.height:
            return canvas.size.width, canvas.size.height
        height = canvas.styles.height
        rows = int(height.value) if height is not None and height.unit.name == "CELLS" else DEFAULT_SIZE[1]
        return self.size.width or DEFAULT_SIZE[0], rows

    def _canvas_colour(self):
        """The canvas's background as plotext paints it (the theme's surface), for text drawn on the canvas."""
        from textual.color import Color

        try:
            return Color.parse(self.app.theme_variables["surface"]).rgb
        except (KeyError, LookupError):
            return "default"

    def _finish(self, title: str, hint: str, key: Legend | None) -> None:
        self.remove_class("-blank")
        heading = Text(title)
        if hint:
            heading.append(f" ({hint})", style="not bold")
        self.query_one(".figure-title", Static).update(heading)
        key_line = self.query_one(".figure-key", Static)
        key_line.update(key if key is not None else "")
        key_line.set_class(key is None, "-empty")
        self.query_one(Canvas).refresh()

    @property
    def title_text(self) -> str:
        """The title line as shown (for tests and screen readers)."""
        return str(self.query_one(".figure-title", Static).content)

    @property
    def key_text(self) -> str:
        """The legend line as shown; empty for a plot of one series."""
        return str(self.query_one(".figure-key", Static).content)


def plain_floats(values: Sequence[float]) -> list[float | None]:
    """Values as JSON can hold them: floats, with NaN and infinities (gaps in a curve) as None."""
    return [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]


def floats_of(values: Sequence[float | None]) -> list[float]:
    """plain_floats undone: None back to NaN, a gap in the curve."""
    return [math.nan if v is None else float(v) for v in values]


def ticks_data(ticks: tuple[Sequence[float], Sequence[str]] | None) -> list | None:
    return [[float(v) for v in ticks[0]], [str(t) for t in ticks[1]]] if ticks is not None else None


def ticks_of(data: list | None) -> tuple[list[float], list[str]] | None:
    return (list(data[0]), list(data[1])) if data else None


def value_ticks(values: Sequence[float], high: float) -> tuple[list[float], list[str]]:
    """Ticks for a value axis from 0 to high: whole numbers for whole values, 2M rather than 2000000."""
    ticks, labels = axis_ticks(0, high, all_integers(values))
    if high >= 1e4:
        labels = [bar_label(t) for t in ticks]
    return ticks, labels


def eighths_of(value: float, row: float) -> int:
    """How many eighths of a row a bar of value fills, rounded up: a nonzero bar is at least one eighth."""
    return max(0, math.ceil(value / row * 8 - 1e-9)) if value > 0 else 0


def paint_bars(plt, labels: list[str], values: list[float], high: float, width: int, height: int, xlabel: str,
               label: Callable[[float], str], background) -> None:
    """Draw bars on a canvas of width × height cells: whole rows of █, a top cell in eighths, the value above.

    Row k of the canvas stands for values from k to k + 1 times ``row``; a tick sits on the row its value
    falls in, as the top of a bar of that value does.
    """
    rows = max(2, height - 3 - (1 if xlabel else 0))
    row = high * HEAD_ROOM / rows
    plt.ylim(row / 2, row / 2 + (rows - 1) * row)
    ticks, tick_labels = value_ticks(values, high)
    plt.yticks([(math.floor(t / row + 1e-9) + 0.5) * row for t in ticks], tick_labels)
    count = len(values)
    plt.xticks(list(range(1, count + 1)), labels)
    plt.xlim(0.5, count + 0.5)
    columns = width - max((len(t) for t in tick_labels), default=1) - 2
    bar_columns = max(1, round(columns / max(count, 1) * BAR_WIDTH))
    for i, value in enumerate(values):
        filled = min(eighths_of(value, row), 8 * rows)
        for k in range(math.ceil(filled / 8)):
            cell = EIGHTHS[min(8, filled - 8 * k)]
            plt.text(cell * bar_columns, i + 1, (k + 0.5) * row, color=colour_of(0), background=background)
        above = min(math.ceil(filled / 8), rows - 1)
        plt.text(label(value), i + 1, (above + 0.5) * row, color=colour_of(0), background=background)
    if xlabel:
        plt.xlabel(xlabel)
