"""SVG snapshots of the key screens at 80x24 (update with --snapshot-update)."""

from __future__ import annotations

from pathlib import Path

from workbench.app import WorkbenchApp


def test_catalog_snapshot(snap_compare, tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    assert snap_compare(app, terminal_size=(80, 24))


def test_lesson_snapshot(snap_compare, tmp_path):
    app = WorkbenchApp(open_lesson="logits-to-probabilities", store_path=tmp_path / "p.db")
    assert snap_compare(app, terminal_size=(80, 24))


def test_stability_lab_snapshot(snap_compare, tmp_path):
    app = WorkbenchApp(open_lesson="logits-to-probabilities", store_path=tmp_path / "p.db")

    async def run_before(pilot):
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("tab", "plus", "plus", "plus", "plus", "plus")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
