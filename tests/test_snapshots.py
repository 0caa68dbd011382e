"""SVG snapshots at 80×24 of small, purpose-built apps (update with --snapshot-update).

They draw a fixed curriculum (tests/fixtures/lessons), a lab on fixed
parameters and the profile table on fixed figures, so a change to the
bundled lessons or to a machine's speed never changes a snapshot; a change
to how the workbench draws does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from workbench.app import WorkbenchApp
from workbench.widgets.profile_panel import ProfilePanel
from workbench_engines.profiling import Profile

FIXTURE_LESSONS = Path(__file__).parent / "fixtures" / "lessons"
SIZE = (80, 24)


@pytest.fixture(autouse=True)
def truecolor(monkeypatch):
    """The theme follows COLORTERM (workbench.themes); snapshots draw the truecolour one wherever they run."""
    monkeypatch.setenv("COLORTERM", "truecolor")


def fixture_app(tmp_path: Path, **kwargs) -> WorkbenchApp:
    return WorkbenchApp(lessons_root=FIXTURE_LESSONS, store_path=tmp_path / "progress.db", **kwargs)


def test_catalog(snap_compare, tmp_path):
    assert snap_compare(fixture_app(tmp_path), terminal_size=SIZE)


def test_quiz_step_with_a_ticked_choice(snap_compare, tmp_path):
    async def run_before(pilot):
        await pilot.pause()
        await pilot.press("n", "tab", "space", "down", "down", "space")
        await pilot.pause()

    assert snap_compare(fixture_app(tmp_path, open_lesson="snapshot-demo"), terminal_size=SIZE, run_before=run_before)


def test_lab_step(snap_compare, tmp_path):
    async def run_before(pilot):
        await pilot.pause()
        await pilot.press("n", "n")
        await pilot.pause()

    assert snap_compare(fixture_app(tmp_path, open_lesson="snapshot-demo"), terminal_size=SIZE, run_before=run_before)


def test_help_over_a_lab_step(snap_compare, tmp_path):
    async def run_before(pilot):
        await pilot.pause()
        await pilot.press("n", "n", "question_mark")
        await pilot.pause()

    assert snap_compare(fixture_app(tmp_path, open_lesson="snapshot-demo"), terminal_size=SIZE, run_before=run_before)


class ProfileTableApp(App[None]):
    """The profile table every race shows, on fixed figures."""

    def compose(self) -> ComposeResult:
        yield ProfilePanel()

    def on_mount(self) -> None:
        case = "causal seq 2048"
        rows = [
            Profile("torch", 0.0610, flops=1.07e10, peak_bytes=None, repeats=3, name="torch SDPA 1T", case=case,
                    matches=True, ratios={"torch SDPA 1T": 1.0}),
            Profile("native", 0.0368, flops=1.07e10, peak_bytes=4 * 2**20, repeats=3, name="native flash 1T",
                    case=case, matches=True, ratios={"torch SDPA 1T": 1.66}),
            Profile("reference", 0.731, flops=1.07e10, peak_bytes=396 * 2**20, repeats=3, name="numpy", case=case,
                    matches=False, mismatch="max abs error 3.1e-04", ratios={"torch SDPA 1T": 0.083}),
        ]
        self.query_one(ProfilePanel).show(rows, ("torch SDPA 1T",), "fixed figures for the snapshot")


def test_lesson_step_in_the_256_colour_theme(snap_compare, tmp_path, monkeypatch):
    """Issue 20: without COLORTERM (tmux, SSH) the app starts in the theme made of 256-colour palette entries."""
    monkeypatch.delenv("COLORTERM")
    assert snap_compare(fixture_app(tmp_path, open_lesson="snapshot-demo"), terminal_size=SIZE)


def test_profile_table(snap_compare):
    assert snap_compare(ProfileTableApp(), terminal_size=SIZE)
