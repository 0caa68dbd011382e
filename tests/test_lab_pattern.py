"""The one lab pattern: every registered lab resolves, leaves the lesson's keys alone, and times nothing by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from textual.binding import Binding

from workbench.curriculum.check import lab_target_problem
from workbench.labs.base import NAVIGATION_KEYS, Lab
from workbench.labs.registry import LABS, LabSpec

LAB_MODULES = sorted((Path(__file__).parents[1] / "workbench" / "labs").glob("*_labs.py"))


@pytest.mark.parametrize("lab_id", sorted(LABS))
def test_every_lab_target_resolves_to_a_lab(lab_id):
    assert lab_target_problem(lab_id) is None
    assert issubclass(LABS[lab_id].widget_class(), Lab)


def test_a_bad_target_is_reported():
    broken = LabSpec("broken.lab", "Broken", "", {}, "workbench.labs.softmax_labs:NoSuchLab")
    LABS["broken.lab"] = broken
    try:
        lab_target_problem.cache_clear()
        assert "does not resolve" in lab_target_problem("broken.lab")
    finally:
        del LABS["broken.lab"]
        lab_target_problem.cache_clear()


@pytest.mark.parametrize("lab_id", sorted(LABS))
def test_labs_never_take_the_lessons_navigation_keys(lab_id):
    """n, p, ← and → step through a lesson; a focused lab binding one would trap the learner (issue 19)."""
    widget = LABS[lab_id].widget_class()
    bindings = [Binding(*b) if isinstance(b, tuple) else b
                for klass in widget.__mro__ for b in vars(klass).get("BINDINGS", [])]
    keys = {key.strip() for binding in bindings for key in binding.key.split(",")}
    assert not keys & NAVIGATION_KEYS, f"{widget.__name__} binds {sorted(keys & NAVIGATION_KEYS)}"


@pytest.mark.parametrize("module", LAB_MODULES, ids=lambda p: p.name)
def test_labs_time_nothing_by_hand(module):
    """Timing goes through the benchmark runner (Lab.race), never a clock read in a lab."""
    tree = ast.parse(module.read_text())
    clocks = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
              and node.attr in ("perf_counter", "perf_counter_ns", "monotonic", "time")
              and isinstance(node.value, ast.Name) and node.value.id == "time"]
    assert not clocks, f"{module.name} reads the clock: {clocks}"


@pytest.mark.parametrize("module", LAB_MODULES, ids=lambda p: p.name)
def test_labs_plot_through_the_shared_figure(module):
    """Every plot goes through workbench.widgets.plots.Figure, which keeps titles, hints and legends off the
    canvas and markers distinct without colour (issue 20); a lab drawing on plotext itself would not."""
    tree = ast.parse(module.read_text())
    direct = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              and node.module in ("textual_plotext", "plotext")]
    assert not direct, f"{module.name} draws on plotext directly: {direct}"
