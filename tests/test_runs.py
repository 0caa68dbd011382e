"""Keeping what ran (issue 22): a finished lab run is recorded, listed, exported (Markdown, JSON, CSV) and
replayed with the same figures and text and no engine; a damaged or unwritable run store costs a record, never
the app."""

from __future__ import annotations

import csv
import errno
import io
import json

import pytest

from workbench.cli import main
from workbench.run_export import export, to_csv, to_markdown
from workbench.run_store import RunFileError, load, read, runs_dir, save, summaries
from workbench.screens.runs import ReplayScreen, RunsScreen
from workbench.widgets.plots import Figure
from workbench.widgets.profile_panel import ProfilePanel

pytestmark = pytest.mark.no_c_path  # recording, export and replay of what a lab drew; no kernel is involved

SMALL_RACE = {"race_rows": 4, "race_cols": 64}


def only_run() -> dict:
    rows, problems = summaries()
    assert not problems and len(rows) == 1, (rows, problems)
    return load(rows[0].id)


async def test_a_finished_run_is_recorded_with_what_ran_where_and_what_it_showed(open_lab):
    async with open_lab("softmax.temperature", temperature=2.0, **SMALL_RACE) as h:
        await h.press("r")
        await h.settle()
        record = only_run()
        assert record["lab"] == "softmax.temperature" and record["params"]["temperature"] == 2.0
        assert record["what"] == "Racing on 4×64 logits" and record["seconds"] > 0
        assert record["machine"]["cpu"] and record["backend"] is None  # no backend knob: none claimed
        figure, readout, profile = record["panel"]
        assert figure["kind"] == "figure" and figure["plot"] == "bars" and figure["title"] == "softmax(logits / 2.00)"
        assert figure["values"] == pytest.approx(h.lab.query_one(Figure).drawn["values"])
        assert "T = 2.00" in readout["plain"] and "T = 2.00" in readout["ansi"]
        panel = h.lab.query_one(ProfilePanel)
        assert [row["wall_s"] for row in profile["rows"]] == [row.wall_s for row in panel.rows]
        assert panel.rows[0].name in profile["plain"] and "\x1b[1m" in profile["ansi"]  # the bold header


async def test_a_replay_draws_the_recorded_figure_and_text_without_running_anything(open_lab):
    async with open_lab("softmax.temperature", **SMALL_RACE) as h:
        await h.press("r")
        await h.settle()
        record = only_run()
        h.app.push_screen(ReplayScreen(record))
        await h.pilot.pause()
        await h.pilot.pause()
        screen = h.app.screen
        assert screen.query_one(Figure).drawn == {k: v for k, v in record["panel"][0].items() if k != "kind"}
        shown = " ".join(str(w.content) for w in screen.query(".replay-part") if not isinstance(w, Figure))
        assert "top p =" in shown and record["panel"][2]["rows"][0]["name"] in shown
        await h.press("o")  # the same parameters, live
        await h.pilot.pause()
        assert h.app.screen.query_one("TemperatureLab").params == record["params"]


async def test_ctrl_e_exports_markdown_json_and_csv_that_parse_to_the_panel(open_lab):
    async with open_lab("softmax.temperature", temperature=0.5) as h:
        await h.press("ctrl+e")
        await h.pilot.pause()
        exported = sorted((runs_dir().parent / "exports").iterdir())
        assert [p.suffix for p in exported] == [".csv", ".json", ".md"]
        record = json.loads(exported[1].read_text())
        assert record == only_run()  # exporting also records it
        rows = list(csv.DictReader(io.StringIO(exported[0].read_text())))
        drawn = h.lab.query_one(Figure).drawn
        assert [r["x"] for r in rows] == drawn["labels"]
        assert [float(r["y"]) for r in rows] == pytest.approx(drawn["values"])
        markdown = exported[2].read_text()
        assert markdown.startswith("# Temperature and the softmax") and "temperature = 0.5" in markdown
        assert "| " + drawn["labels"][0] + " |" in markdown and "Exported as" in h.status()


async def test_the_runs_screen_lists_this_labs_runs_and_enter_replays_one(open_lab):
    async with open_lab("softmax.temperature", **SMALL_RACE) as h:
        await h.press("r")
        await h.settle()
        await h.press("ctrl+y")
        await h.pilot.pause()
        assert isinstance(h.app.screen, RunsScreen)
        await h.press("enter")
        await h.pilot.pause()
        assert isinstance(h.app.screen, ReplayScreen) and h.app.screen.record == only_run()


async def test_recording_can_be_turned_off(open_lab, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RECORD", "0")
    async with open_lab("softmax.temperature", **SMALL_RACE) as h:
        await h.press("r")
        await h.settle()
        assert summaries() == ([], []) and h.lab.query_one(ProfilePanel).rows


def record_of(n: int, lab: str = "softmax.temperature") -> dict:
    return {"format": "workbench-run", "version": 1, "id": f"20261201-0000{n:02d}-{lab}-abcd", "lab": lab,
            "title": "T", "what": "w", "started": "2026-12-01T00:00:00", "seconds": 1.0, "params": {"x": n},
            "panel": [{"kind": "figure", "plot": "lines", "title": "loss", "series": [
                {"label": "a", "x": [0, 1, 2], "y": [1.0, None, 0.5], "points": False}],
                "xlabel": "step", "hint": "", "xticks": None, "yticks": None, "ylim": None}]}


def test_the_store_keeps_the_newest_runs_and_reports_damaged_files_by_name(tmp_path):
    for n in range(5):
        save(record_of(n), tmp_path, keep=3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0].startswith("20261201-000002")
    (tmp_path / "20261202-broken.json").write_text('{"format": "workbench-run",\n "version": 1,')
    rows, problems = summaries(tmp_path)
    assert len(rows) == 3 and problems and "20261202-broken.json:2:" in problems[0]
    (tmp_path / "20261203-other.json").write_text('{"format": "something else"}')
    with pytest.raises(RunFileError, match="not a workbench run"):
        read(tmp_path / "20261203-other.json")
    with pytest.raises(RunFileError, match="names 3 runs"):
        load("20261201", tmp_path)
    assert load("20261201-000004", tmp_path)["params"] == {"x": 4}


def test_a_full_disk_costs_the_new_record_only(tmp_path, monkeypatch):
    save(record_of(1), tmp_path)
    before = sorted(tmp_path.iterdir())

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("workbench.run_store.os.replace", full)
    with pytest.raises(OSError, match="No space"):
        save(record_of(2), tmp_path)
    assert sorted(tmp_path.iterdir()) == before and load("20261201-000001", tmp_path)["params"] == {"x": 1}


async def test_a_lab_whose_record_cannot_be_written_still_shows_its_run(open_lab, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("workbench.run_store.os.replace", full)
    async with open_lab("softmax.temperature", **SMALL_RACE) as h:
        await h.press("r")
        await h.settle()
        assert h.lab.query_one(ProfilePanel).rows and "Failed" not in h.status()
        assert not [p for p in runs_dir().iterdir()]


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    bad = record_of(1)
    bad["panel"][0]["series"][0]["y"] = [float("nan")]  # not JSON: the writer refuses mid-file
    with pytest.raises(ValueError):
        save(bad, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_exports_parse_and_a_gap_in_a_curve_stays_a_gap(tmp_path):
    record = record_of(7)
    paths = export(record, tmp_path)
    assert json.loads(paths[1].read_text()) == record
    rows = list(csv.reader(io.StringIO(to_csv(record))))
    assert rows == [["figure", "series", "x", "y"], ["loss", "a", "0", "1.0"], ["loss", "a", "1", ""],
                    ["loss", "a", "2", "0.5"]]
    assert "- a: (0, 1), (1, ), (2, 0.5)" in to_markdown(record)


def test_the_cli_lists_shows_and_exports_a_run_from_any_file(tmp_path, capsys):
    save(record_of(3), runs_dir())
    assert main(["runs", "list"]) == 0
    assert "20261201-000003-softmax.temperature-abcd" in capsys.readouterr().out
    assert main(["runs", "show", "20261201-000003"]) == 0
    assert "loss" in capsys.readouterr().out
    copied = tmp_path / "from-the-gpu-box.json"
    copied.write_text(json.dumps(record_of(9)))
    assert main(["runs", "export", str(copied), "--format", "csv", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "20261201-000009-softmax.temperature-abcd.csv").is_file()
    assert main(["runs", "show", "no-such-run"]) == 1
    assert "no recorded run 'no-such-run'" in capsys.readouterr().err


def test_numpy_numbers_and_nan_become_plain_json():
    import numpy as np

    from workbench.run_record import jsonable

    value = {"a": np.float32(0.5), "b": [np.int64(3), float("nan"), float("inf")], "c": np.arange(2), "d": (1, 2)}
    assert jsonable(value) == {"a": 0.5, "b": [3, None, None], "c": [0, 1], "d": [1, 2]}
    json.dumps(jsonable(value), allow_nan=False)


@pytest.mark.parametrize("part, problem", [
    ({"kind": "figure", "plot": "bars", "title": "t", "labels": ["a"], "values": []}, "a number per label"),
    ({"kind": "figure", "plot": "lines", "title": "t", "series": [{"label": "a", "x": [1], "y": ["x"]}]},
     "one length"),
    ({"kind": "figure", "plot": "pie", "title": "t"}, "plot 'pie'"),
    ({"kind": "text", "plain": "x"}, "plain and ansi"),
    ({"kind": "video"}, "kind 'video'"),
])
def test_a_run_file_with_a_damaged_panel_is_refused_before_replay(tmp_path, part, problem):
    record = record_of(1)
    record["panel"].append(part)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(record))
    with pytest.raises(RunFileError, match=f"damaged.json: panel part 1: .*{problem}"):
        read(path)
