"""The Figure at every magnitude (issue 20): compact bar labels, an axis scaled to the data, a mark for every
nonzero bar, and the same drawing for a printed plot (workbench train) as for a lab's."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console
from textual_plotext import PlotextPlot

from tests.test_plot_labs import FigureApp, bar_eighths, bar_heights, canvas, shown_lines, tick_row
from workbench.widgets.plots import EIGHTHS, EMPTY_PLACEHOLDER, Figure, Series, bar_label, lines_text


@pytest.mark.parametrize(("value", "label"), [
    (1.5e6, "1.5M"), (2.4e9, "2.4G"), (3e12, "3T"), (999_999.0, "1M"), (999_400.0, "999k"), (999.7, "1k"),
    (12_345.0, "12.3k"), (1.2e-5, "1.2e-5"), (3e20, "3e20"), (-2.5e6, "-2.5M"), (0.00096, "9.6e-4"),
    (float("nan"), "nan"),
])
def test_bar_labels_are_right_at_every_magnitude(value, label):
    """Issue 20: 1.5e6 read "1.5e+03k"."""
    assert bar_label(value) == label


def test_bar_labels_are_as_short_as_the_docstring_says():
    for exponent in range(-30, 31):
        for mantissa in (1.0, 1.234, 5.5, 9.996):
            value = mantissa * 10.0 ** exponent
            short = bar_label(value)
            most = 6 if 1e-3 <= value < 1e15 else 8
            assert len(short) <= most and len(bar_label(-value)) <= most + 1, (value, short)
            assert float(short.replace("k", "e3").replace("M", "e6").replace("G", "e9").replace("T", "e12")) == \
                pytest.approx(value, rel=0.06), (value, short)


async def test_bars_rise_on_an_axis_scaled_to_the_data_and_no_nonzero_bar_is_a_gap():
    """Issue 20: on a 0–1 axis 0.24 and 0.18 stood equally tall, and 0.07 and 0.0096 were drawn as nothing."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.bars("p", ["a", "b", "c", "d", "e"], [0.24, 0.18, 0.07, 0.0096, 0.0], top=1.0)
        await pilot.pause()
        lines = canvas(figure)
        heights = bar_heights(lines, ["a", "b", "c", "d", "e"])
        assert heights[0] > heights[1] > heights[2] > 0 and heights[3] == heights[4] == 0, heights
        floor = lines[next(i for i, line in enumerate(lines) if "└" in line) - 1]
        ticks = tick_row(lines)
        marks = [column for column, char in enumerate(floor) if char in EIGHTHS[1:8]]
        d, e = ticks.index("d"), ticks.index("e")
        assert marks and min(marks) <= d <= max(marks) < e  # d has its mark; e, a true zero, has none
        assert not any(line.lstrip().startswith("1.0┤") for line in lines)  # the axis stops near 0.24


async def test_big_bars_have_compact_ticks_and_labels():
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.bars("params", ["a", "b"], [1.5e6, 2.4e6])
        await pilot.pause()
        text = "\n".join(canvas(figure))
        assert "2.4M" in text and "1.5M" in text and "2000000" not in text and "e+03k" not in text


async def test_a_printed_plot_is_drawn_by_the_same_rules_as_a_lab_figure():
    """Issue 20: workbench train drew its loss with plotext directly (legend on the data, braille and x told
    apart by shape only by luck); it now goes through the labs' path, so the canvases are the same."""
    series = [Series("train", [1, 2, 3, 4, 5], [5.0, 4.2, 3.9, float("nan"), 3.5]),
              Series("validation", [2, 4], [4.4, 3.8], points=True)]
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.lines("loss", series, xlabel="step")
        await pilot.pause()
        in_app = [line.rstrip() for line in canvas(figure)]
        size = figure.query_one(PlotextPlot).size
        title_text, key_text = figure.title_text, figure.key_text
    printed = Console(width=120, color_system=None, record=True, file=io.StringIO())
    printed.print(lines_text("loss", series, width=size.width, height=size.height, xlabel="step"))
    title, *drawn, key = printed.export_text().rstrip("\n").splitlines()
    assert title.strip() == title_text and key == key_text == "•• train   xx validation"
    assert [line.rstrip() for line in drawn] == in_app


def test_the_train_command_prints_its_loss_through_the_shared_figure():
    from workbench.train_command import loss_plot

    printed = Console(width=100, color_system=None, record=True, file=io.StringIO())
    printed.print(loss_plot([4.0, 3.5, 3.2, 3.0, float("nan")], [(2, 3.6), (4, 3.1)], 100))
    lines = printed.export_text().rstrip("\n").splitlines()
    assert lines[0].strip() == "cross-entropy loss (nats per token)"
    assert lines[-1] == "•• train (10-step mean)   xx validation"  # under the canvas, never on the data
    assert not any("validation" in line for line in lines[1:-1])


def test_only_the_figure_module_draws_on_plotext():
    """Issue 20: one plot path for the app and the CLI; train_command.py imported plotext itself."""
    import ast
    from pathlib import Path

    import workbench

    package = Path(workbench.__file__).parent
    direct = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] in ("plotext", "textual_plotext") for name in names):
                direct.append(path.relative_to(package).as_posix())
    assert sorted(set(direct)) == ["widgets/plots.py"]


FLASH_CONTENDERS = ["numpy", "numpy tiled", "torch SDPA 1T", "native naive 1T", "native flash 1T"]


async def test_a_legend_wraps_between_entries_never_between_a_marker_and_its_label():
    """Issue 20 (tour F3): the flash race's legend wrapped as "… oo native naive 1T   **" / "native flash 1T"."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.lines("ms", [Series(name, [0, 1, 2], [i, i + 1, i + 2]) for i, name in enumerate(FLASH_CONTENDERS)])
        await pilot.pause()
        shown = [line.strip() for line in shown_lines(figure.query_one(".figure-key"))]
        assert len([line for line in shown if line]) == 2, shown  # it does wrap at 80 columns
        entries = [entry for line in shown for entry in line.split("   ") if entry]
        assert entries == [f"{m}{m} {name}" for m, name in zip("•x+o*", FLASH_CONTENDERS)], shown


def flat(label: str, stop: int, high: float = 0.0) -> Series:
    """A curve along y = 0 from x = 0 to stop, with one point at high so the axis has a height."""
    return Series(label, [*range(stop), stop], [0.0] * stop + [high])


async def test_the_curve_most_likely_hidden_is_drawn_last():
    """Issue 20 (tour F4): a short curve lying on a longer one (GPT-2 small under SmolLM2, naive under the
    others) had no cell of its own: the first-named curve was always drawn last, over it."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.lines("GiB", [flat("long", 100, 10.0), flat("short", 30)])
        await pilot.pause()
        floor = canvas(figure)[next(i for i, line in enumerate(canvas(figure)) if "└" in line) - 1]
        assert "x" in floor and "•" in floor, floor
        assert figure.key_text == "•• long   xx short"


async def test_a_curve_wholly_under_another_is_named_so_in_the_legend():
    """Two curves on the same cells cannot both show: the legend says which one the hidden one lies under."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.lines("GiB", [flat("a", 50, 10.0), flat("b", 50, 10.0), Series("c", [0, 50], [10.0, 0.0])])
        await pilot.pause()
        hidden = ("•• a (under xx)   xx b   ++ c", "•• a   xx b (under ••)   ++ c")
        assert figure.key_text in hidden, figure.key_text


async def test_a_spike_does_not_flatten_another_distribution_onto_the_floor():
    """Issue 20 (tour F4): the pre-LN spike (800 in one bin) set the count axis, and its run of • along zero
    covered the post-LN distribution, which showed as two points."""
    rng = np.random.default_rng(0)
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.histogram("values", {"spike": rng.normal(0, 0.02, 2000), "spread": rng.normal(0, 1, 2000)},
                         xlabel="value")
        await pilot.pause()
        lines = canvas(figure)
        bottom = next(i for i, line in enumerate(lines) if "└" in line)
        plot = lines[:bottom]
        spread_columns = {column for line in plot for column, char in enumerate(line) if char == "x"}
        assert len(spread_columns) > 30, "\n".join(lines)
        assert all(line.count("•") < 10 for line in plot), "\n".join(lines)  # no run of empty bins along zero
        assert "log scale" in "\n".join(lines)


@pytest.mark.parametrize("values", [[0.52, 0.19, 0.12, 0.071, 0.043, 0.026, 0.016, 0.0096],
                                    [0.37, 0.19, 0.14, 0.1, 0.074, 0.054, 0.039, 0.028]])
async def test_bar_tops_are_drawn_in_eighths_so_close_values_differ(values):
    """Issue 20 (tour F5): bars snapped to whole rows, so 0.12 and 0.071 stood equally tall, as did 0.074 and
    0.039; a top cell in eighths of a row tells them apart."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.bars("p", list("abcdefgh"), values, top=1.0)
        await pilot.pause()
        drawn = bar_eighths(canvas(figure), list("abcdefgh"))
        order = sorted(range(len(values)), key=values.__getitem__)
        assert [drawn[i] for i in order] == sorted(set(drawn)), drawn  # strictly in the values' order
        tallest = drawn[0]
        for value, height in zip(values, drawn):  # within an eighth of a row of its true height
            assert abs(height / tallest - value / values[0]) * tallest <= 1.01, (value, drawn)


async def test_bar_labels_sit_on_the_canvas_background_in_256_colours():
    """Issue 20 (tour F5): in the 256-colour theme the value labels were on white boxes (colour 231)."""
    from workbench.themes import THEME_256

    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.register_theme(THEME_256)
        app.theme = THEME_256.name
        await pilot.pause()
        figure = app.query_one(Figure)
        figure.bars("p", ["a", "b"], [0.52, 0.19], top=1.0)
        await pilot.pause()
        rendered = figure.query_one(PlotextPlot).render()
        canvas_background = next(span.style.bgcolor for span in rendered.spans
                                 if "┌" in rendered.plain[span.start:span.end])
        labels = [span.style for span in rendered.spans
                  if rendered.plain[span.start:span.end].strip() in ("0.52", "0.19")]
        assert len(labels) == 2 and all(style.bgcolor == canvas_background for style in labels), labels


async def test_a_figure_without_data_is_one_line_not_an_empty_frame():
    """Issue 20 (tour F10): experiment labs opened on a 12-row empty frame that stayed empty through a run."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        await pilot.pause()
        assert figure.outer_size.height == 1 and figure.title_text == EMPTY_PLACEHOLDER
        figure.lines("loss", [Series("loss", [0, 1, 2], [3.0, 2.0, 1.5])])
        await pilot.pause()
        assert figure.outer_size.height > 10 and figure.title_text == "loss"
