"""The Attention track's labs in the real app, and its probes."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from workbench_engines.errors import EngineError
from tests.test_tokenizer_labs import open_lab
from workbench.app import WorkbenchApp
from workbench.labs.attention_labs import ByHandLab, FlashRaceLab, HeadsLab, flash_race, shade
from workbench.probes import compute_probe

SIZE = (80, 24)

try:
    from workbench_engines.models.minilm import load

    load()
    MINILM = True
except EngineError:
    MINILM = False


async def test_by_hand_lab_scales_the_query(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "attention.by_hand", ByHandLab)
        table = lab.query_one(".readout", Static).content
        assert table.row_count == 4 and "output" in table.caption
        await pilot.press("plus", "plus")
        assert lab.factor == 4.0
        await pilot.press("0")
        assert lab.factor == 1.0


@pytest.mark.skipif(not MINILM, reason="the minilm extra is not installed")
async def test_heads_lab_runs_the_model_and_moves_through_heads(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        app.open_lab("attention.heads")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        lab = app.screen.query_one(HeadsLab)
        weights, tokens = lab.result
        assert weights.shape[:2] == (6, 12) and tokens[0] == "[CLS]"
        lab.focus()
        await pilot.press("right_square_bracket", "full_stop", "full_stop", "comma")
        assert (lab.layer_index, lab.head_index) == (1, 1)
        lab.query_one(Input).value = "Short one."
        await lab.query_one(Input).action_submit()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert lab.result[1] == ["[CLS]", "short", "one", ".", "[SEP]"]


async def test_flash_race_lab(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "attention.flash_race", FlashRaceLab)
        lab.params["seqs"] = [32, 64]
        lab.focus()
        await pilot.press("r")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = lab.query_one(".readout", Static).content
        assert table.row_count >= 4


def test_flash_race_memory_grows_slower_for_flash():
    rows = flash_race([128, 512], False, lambda fraction, what: None)
    peaks = {(name, seq): peak for name, seq, _, peak in rows}
    if ("C naive", 512) in peaks:
        assert peaks[("C naive", 512)] / peaks[("C naive", 128)] > peaks[("C flash", 512)] / peaks[("C flash", 128)]
    assert peaks[("torch SDPA", 128)] is None


def test_shades_and_probes():
    assert [shade(w) for w in (0.0, 0.1, 0.2, 0.5, 0.9)] == ["··", "░░", "▒▒", "▓▓", "██"]
    weight = compute_probe("attention.one_query_weight",
                           {"query": [1.0, 0.5], "keys": [1, 0, 0, 1, 1, 1, -1, 0], "index": 2})
    assert weight == pytest.approx(0.4227, abs=1e-3)
    assert compute_probe("attention.score_matrix_mib", {"seq": 4096, "heads": 8}) == 512.0
    with pytest.raises(ValueError, match="whole rows"):
        compute_probe("attention.one_query_weight", {"query": [1.0, 0.5], "keys": [1, 0, 0], "index": 0})
    if MINILM:
        w = compute_probe("attention.weight", {"text": "The cat sat.", "layer": 0, "head": 0, "query": 0, "key": 0})
        assert 0.0 < w < 1.0
        with pytest.raises(ValueError, match="tokens"):
            compute_probe("attention.weight", {"text": "x", "layer": 0, "head": 0, "query": 9, "key": 0})


async def test_mask_lab_shows_what_a_change_moves(tmp_path):
    from workbench.labs.attention_labs import MaskLab

    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "attention.masks", MaskLab)
        lab.focus()
        moved = lambda: str(lab.query_one(".readout", Static).content.renderables[1])  # noqa: E731
        assert lab.perturbed == 6 and moved().endswith("6 7 8 9 10 11")
        await pilot.press("c")
        assert moved().endswith(" ".join(str(i) for i in range(12)))
        await pilot.press("c", "plus", "plus", "right")
        assert lab.window == 2 and moved().endswith("7 8")


async def test_grouped_heads_lab(tmp_path):
    from workbench.labs.attention_labs import GroupedHeadsLab

    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "attention.grouped_heads", GroupedHeadsLab)
        lab.params.update(heads=8, cache=256)
        lab.focus()
        await pilot.press("r")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = lab.query_one(".readout", Static).content
        assert table.row_count == 4  # 1, 2, 4 and 8 key/value heads
    assert compute_probe("attention.kv_cache_mib", {"layers": 80, "kv_heads": 8, "head_dim": 128, "tokens": 4096}) == 1280.0
