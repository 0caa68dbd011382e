"""The Figure at every magnitude (issue 20): compact bar labels, an axis scaled to the data, a mark for every
nonzero bar, and the same drawing for a printed plot (workbench train) as for a lab's."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual_plotext import PlotextPlot

from tests.test_plot_labs import FigureApp, bar_heights, canvas, tick_row
from workbench.widgets.plots import TINY_BAR, Figure, Series, bar_label, lines_text


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
        marks = [column for column, char in enumerate(floor) if char == TINY_BAR]
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
