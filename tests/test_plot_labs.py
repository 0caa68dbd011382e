"""Plots at 80×24, in colour and without (issue 20): every lab's plot goes through workbench.widgets.plots.Figure.

These read the canvas as the terminal shows it (plotext's text without styles),
so a bar that merges with its neighbour, a legend painted over the data or a
curve told apart only by colour shows up as text.
"""

from __future__ import annotations

import re

import pytest
from textual.app import App, ComposeResult
from textual_plotext import PlotextPlot

from workbench.widgets.plots import EIGHTHS, EMPTY_PLACEHOLDER, Figure, Series, bar_label, integer_ticks, nice_ticks

TOUR_LOGITS = [2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5, -2.0]
"""The tour's softmax chart: 8 bars, the smallest 0.0096 beside 0.071."""
BRAILLE = re.compile("[\u2800-\u28ff]")


def canvas(figure: Figure) -> list[str]:
    """The plot's lines as the terminal shows them, without colour."""
    return figure.query_one(PlotextPlot).render().plain.splitlines()


def tick_row(lines: list[str]) -> str:
    """The row of x tick labels: the line under the frame's bottom edge."""
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[bottom + 1]


def shown_lines(widget) -> list[str]:
    """A widget's lines as the terminal shows them, wrapped at its width."""
    from textual.geometry import Region

    return ["".join(segment.text for segment in strip)
            for strip in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))]


def bar_eighths(lines: list[str], labels: list[str]) -> list[int]:
    """Each bar's drawn height in eighths of a row: 8 per █, and its top cell's ▁…▇."""
    ticks, bottom = tick_row(lines), next(i for i, line in enumerate(lines) if "└" in line)
    heights, start = [], 0
    for label in labels:
        column = ticks.index(label, start)
        start = column + len(label)
        heights.append(sum(EIGHTHS.index(line[column]) for line in lines[:bottom]
                           if column < len(line) and line[column] in EIGHTHS[1:]))
    return heights


def bar_heights(lines: list[str], labels: list[str]) -> list[int]:
    """Rows of █ above each x tick label: the drawn height of each bar."""
    ticks, bottom = tick_row(lines), next(i for i, line in enumerate(lines) if "└" in line)
    heights, start = [], 0
    for label in labels:
        column = ticks.index(label, start)
        start = column + len(label)
        heights.append(sum(1 for line in lines[:bottom] if column < len(line) and line[column] == "█"))
    return heights


async def test_softmax_bars_stay_apart_at_80_columns(open_lab):
    """Eight near-equal bars are eight blocks, not five (adjacent bars merged before issue 20)."""
    async with open_lab("softmax.temperature", logits=TOUR_LOGITS, temperature=20.0) as h:
        lines = canvas(h.lab.query_one(Figure))
        bottom = next(i for i, line in enumerate(lines) if "└" in line)
        floor = lines[bottom - 1].split("┤", 1)[-1]
        assert len(re.findall("█+", floor)) == 8, floor


async def test_a_tiny_probability_is_not_drawn_as_tall_as_a_larger_one(open_lab):
    """0.0096 drew as tall as 0.07; now it is shorter (or nothing) and its value is written above it."""
    async with open_lab("softmax.temperature", logits=TOUR_LOGITS) as h:
        figure = h.lab.query_one(Figure)
        lines = canvas(figure)
        heights = bar_heights(lines, [str(i) for i in range(8)])
        assert heights[0] > heights[1] > heights[7]
        assert heights[7] < heights[3] or heights[3] == 0
        assert "0.0096" in "\n".join(lines) and "0.52" in "\n".join(lines)
        assert figure.title_text == "softmax(logits / 1.00)"


@pytest.mark.parametrize("kind", ["rope_scaling", "sinusoidal", "similarity", "alibi"])
async def test_positional_curves_differ_without_colour(open_lab, kind):
    """Under NO_COLOR each curve has its own marker, named in a legend below the canvas, never braille hatching."""
    async with open_lab("positional.plot", kind=kind, positions=128, knob=4) as h:
        figure = h.lab.query_one(Figure)
        text = "\n".join(canvas(figure))
        curves = len(figure.key_text.split("   "))
        markers = ["•", "x", "+"][:curves]
        assert curves >= 2 and all(f"{m}{m} " in figure.key_text for m in markers)
        assert all(m in text for m in markers[:2])
        assert not BRAILLE.search(text)
        assert "head" not in text and "dim" not in text and "RoPE" not in text  # no legend on the data


async def test_positional_ticks_are_whole_positions(open_lab):
    """Positions are whole numbers: the axis says 0 25 50, not 0.0 31.8 63.5."""
    async with open_lab("positional.plot", kind="sinusoidal", positions=128, knob=4) as h:
        ticks = tick_row(canvas(h.lab.query_one(Figure))).split()
        assert ticks and all(t.isdigit() for t in ticks), ticks


async def test_titles_and_key_hints_stay_whole_outside_the_canvas(open_lab):
    """A title wider than the plot was dropped by plotext; now it is a wrapped line above the canvas."""
    async with open_lab("blocks.activations") as h:
        figure = h.lab.query_one(Figure)
        assert figure.title_text == "activations on [−4, 4] (+/- zoom)"
        assert "zoom" not in "\n".join(canvas(figure))
    async with open_lab("blocks.residual_stats") as h:
        await h.press("h")
        title = h.lab.query_one(Figure).title_text
        assert "after block" in title and "[ ] move" in title


async def test_positional_keys_say_what_they_change(open_lab):
    """"+ More" silently halved RoPE's base; the footer now names the quantity of this kind of plot."""
    async with open_lab("positional.plot", kind="similarity", positions=64, knob=1) as h:
        shown = {b.binding.description for b in h.app.active_bindings.values()}
        assert "RoPE base ÷2/×2" in shown and not any("factor" in text for text in shown)
        await h.press("plus")
        assert h.lab.knob == 2 and "RoPE base 5000" in h.lab.query_one(Figure).title_text


class FigureApp(App):
    def compose(self) -> ComposeResult:
        yield Figure()


async def test_a_legend_never_covers_a_bar():
    """MoE balance: plotext's legend hid the top of a 63% bar, so it read as 47%."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.grouped_bars("share per expert, %", ["e0", "e1", "e2", "e3"],
                            {"no balancing": [10, 63, 20, 7], "balancing": [30, 30, 20, 20]})
        await pilot.pause()
        lines = canvas(figure)
        assert "balancing" not in "\n".join(lines)
        assert "██ no balancing" in figure.key_text and "▒▒ balancing" in figure.key_text
        # The 63% bar reaches the row of the 60 tick.
        assert any(line.lstrip().startswith("60┤") and "█" in line for line in lines)


async def test_a_histogram_shows_both_distributions():
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.histogram("values", {"narrow": [0.0] * 50 + [0.1] * 50, "wide": list(range(-20, 21))}, bins=10)
        await pilot.pause()
        text = "\n".join(canvas(figure))
        assert "•" in text and "x" in text and "•• narrow   xx wide" == figure.key_text


async def test_a_histogram_leaves_out_nan_and_inf_instead_of_crashing():
    """NumPy's binning raised on a diverged run's nan/inf, and the error reached the lab."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.histogram("values", {"run": [0.0, 1.0, float("nan"), float("inf"), 2.0]}, bins=4)
        figure.histogram("values", {"run": [float("nan")]}, bins=4)
        await pilot.pause()


def test_ticks_fall_on_round_numbers():
    assert integer_ticks(0, 127) == [0, 50, 100]
    assert integer_ticks(0, 1020, most=6) == [0, 200, 400, 600, 800, 1000]
    assert integer_ticks(1, 6) == [1, 2, 3, 4, 5, 6]
    assert nice_ticks(-1.0, 1.0) == ([-1.0, -0.5, 0.0, 0.5, 1.0], ["-1.0", "-0.5", "0", "0.5", "1.0"])
    assert nice_ticks(-0.02, 0.99)[1][0] == "0"  # never "-0.00"


def test_bar_labels_fit_a_bar():
    assert [bar_label(v) for v in (0.524, 0.0096, 63.2, 0.00058, 1234.0, 0.0)] == \
        ["0.52", "0.0096", "63", "5.8e-4", "1.23k", "0"]
    assert all(len(bar_label(v)) <= 6 for v in (1e-21, 0.123456, 9.87, 99999.0))


async def test_one_curve_needs_no_legend():
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.lines("loss", [Series("loss", [0, 1, 2], [3.0, 2.0, 1.5])], xlabel="step")
        await pilot.pause()
        assert figure.key_text == "" and figure.title_text == "loss"
        assert tick_row(canvas(figure)).split() == ["0", "1", "2"]


async def test_a_diverged_curve_keeps_its_axis():
    """plotext raised on a nan loss (a diverged run); such points are left out and the axis stays finite."""
    app = FigureApp()
    async with app.run_test(size=(80, 24)) as pilot:
        figure = app.query_one(Figure)
        figure.lines("loss", [Series("a", [0, 1, 2], [3.0, float("nan"), 1.0]),
                              Series("b", [0, 1, 2], [2.0, float("inf"), 2.5])])
        await pilot.pause()
        assert "nan" not in "\n".join(canvas(figure))


@pytest.mark.parametrize(("temperature", "close"), [(1.0, (2, 3)), (1.56, (4, 6))])
async def test_softmax_bars_differ_in_height_wherever_the_probabilities_differ(open_lab, temperature, close):
    """Issue 20 (tour F5): at T=1, 0.12 and 0.071 drew the same height; at T=1.56, 0.074 and 0.039 did."""
    async with open_lab("softmax.temperature", logits=TOUR_LOGITS, temperature=temperature) as h:
        drawn = bar_eighths(canvas(h.lab.query_one(Figure)), [str(i) for i in range(8)])
        assert all(a > b for a, b in zip(drawn, drawn[1:])), drawn
        assert drawn[close[0]] > drawn[close[1]]


KV_MODELS = ["SmolLM2-135M", "GPT-2 small", "Llama-2-7B", "Llama-3-8B", "Llama-2-70B"]
"""The kv-cache-memory lesson's models: GPT-2 small's line lay wholly under SmolLM2's."""


async def test_kv_memory_shows_every_model_and_its_legend_keeps_markers_with_names(open_lab):
    """Issue 20 (tour F3, F4): "xx GPT-2 small" was in the legend but no x on the canvas, and the legend
    wrapped as "… oo Llama-3-8B   **" / "Llama-2-70B"."""
    async with open_lab("kv.memory", models=KV_MODELS) as h:
        figure = h.lab.query_one(Figure)
        text = "\n".join(canvas(figure))
        assert all(marker in text for marker in "•x+o*"), text
        assert "under" not in figure.key_text
        shown = [line.strip() for line in shown_lines(figure.query_one(".figure-key")) if line.strip()]
        entries = [entry for line in shown for entry in line.split("   ")]
        assert entries == [f"{m}{m} {name}" for m, name in zip("•x+o*", KV_MODELS)], shown


async def test_the_residual_histogram_shows_post_ln_beside_the_pre_ln_spike(open_lab):
    """Issue 20 (tour F4): the pre-LN spike set the count axis and its • along zero hid post-LN; the rows under
    the plot did not say they were RMS per layer."""
    async with open_lab("blocks.residual_stats") as h:
        await h.press("h", "right_square_bracket")
        lines = canvas(h.lab.query_one(Figure))
        bottom = next(i for i, line in enumerate(lines) if "└" in line)
        post = {column for line in lines[:bottom] for column, char in enumerate(line) if char == "x"}
        assert len(post) > 20, "\n".join(lines)
        assert all(line.count("•") < 10 for line in lines[:bottom]), "\n".join(lines)
        assert "pre-LN RMS by layer:" in h.readout() and "post-LN RMS by layer:" in h.readout()


async def test_an_experiment_lab_opens_without_an_empty_plot_frame(open_lab):
    """Issue 20 (tour F10): the flash race opened on a 12-row empty frame that stayed empty through a 40 s run,
    pushing its hint and progress down; the figure is one line until the race has results."""
    async with open_lab("attention.flash_race") as h:
        figure = h.lab.query_one(Figure)
        assert figure.title_text == EMPTY_PLACEHOLDER and figure.outer_size.height == 1
        assert "Press r to race" in h.text("ProfilePanel")


@pytest.mark.native
async def test_the_flash_race_draws_its_native_kernels_over_the_references(open_lab):
    """Issue 20 (tour F4, F3): the lesson's naive kernel (oo) showed in about 10 cells under the NumPy curves;
    the native kernels are now named first, so where curves share a cell theirs shows, and the legend's
    entries stay whole when it wraps."""
    async with open_lab("attention.flash_race", seqs=[32, 64]) as h:
        await h.press("r")
        await h.settle()
        key = h.lab.query_one(Figure).query_one(".figure-key")
        entries = [entry for line in shown_lines(key) for entry in line.strip().split("   ") if entry]
        assert [entry[3:].split(" (")[0] for entry in entries][:2] == ["native naive 1T", "native flash 1T"]
        assert all(entry[:2] in ("••", "xx", "++", "oo", "**") for entry in entries), entries
