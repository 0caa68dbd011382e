"""The Attention track's labs in the real app, and its probes."""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Input

from tests.conftest import needs_minilm
from workbench.probes import compute_probe
from workbench.widgets.heat_grid import shade
from workbench.widgets.profile_panel import ProfilePanel


async def test_by_hand_lab_scales_the_query(open_lab):
    async with open_lab("attention.by_hand") as h:
        assert "output = Σ weight·v" in h.readout()
        await h.press("plus", "plus")
        assert h.lab.factor == 4.0 and "[4.0, 2.0]" in h.readout()
        await h.press("0")
        assert h.lab.factor == 1.0


@needs_minilm
async def test_heads_lab_runs_the_model_and_moves_through_heads(open_lab):
    async with open_lab("attention.heads") as h:
        await h.settle()
        maps = h.lab.maps
        assert maps.weights.shape[:2] == (6, 12) and maps.tokens[0] == "[CLS]"
        await h.press("right_square_bracket", "full_stop", "full_stop", "comma")
        assert (h.lab.shown.layer, h.lab.shown.head) == (1, 1)
        assert "layer 2 of 6, head 2 of 12" in h.text("HeatGrid")
        h.lab.query_one(Input).value = "Short one."
        await h.lab.query_one(Input).action_submit()
        await h.settle()
        assert h.lab.maps.tokens == ["[CLS]", "short", "one", ".", "[SEP]"]


async def test_flash_race_lab_runs_the_benchmark_cases(open_lab):
    async with open_lab("attention.flash_race", seqs=[32, 64]) as h:
        await h.press("r")
        await h.settle()
        rows = h.lab.query_one(ProfilePanel).rows
        assert {row.case for row in rows} == {"full seq 32", "full seq 64", "CPU peak: fp32 matmul 1024³"}
        races = [row for row in rows if row.case.startswith("full")]
        # Every contender was validated against torch SDPA by the benchmark runner.
        assert all(row.matches for row in races) and all("torch SDPA 1T" in row.ratios for row in races)
        names = {row.name for row in races}
        assert {"numpy", "numpy tiled", "torch SDPA 1T"} <= names
        if "native flash 1T" in names:
            assert "Roofline point at 64 tokens: native flash" in h.status()
            assert "% of this core's fp32 matmul" in h.status()


@pytest.mark.native
def test_flash_keeps_memory_flat_where_naive_grows():
    from workbench_engines.attention.bench import race_case
    from workbench_engines.profiling import run_cases

    rng = np.random.default_rng(0)
    rows = run_cases([race_case(128, False, (1,), rng), race_case(512, False, (1,), rng)], warmup=0, repeats=1)
    peak = {(row.case, row.name): row.peak_bytes for row in rows}
    naive = peak[("full seq 512", "native naive 1T")] / peak[("full seq 128", "native naive 1T")]
    flash = peak[("full seq 512", "native flash 1T")] / peak[("full seq 128", "native flash 1T")]
    assert naive > flash
    assert peak[("full seq 128", "torch SDPA 1T")] is None  # torch's allocator is invisible to tracemalloc


def test_shades_and_probes():
    assert [shade(w) for w in (0.0, 0.1, 0.2, 0.5, 0.9)] == ["··", "░░", "▒▒", "▓▓", "██"]
    weight = compute_probe("attention.one_query_weight",
                           {"query": [1.0, 0.5], "keys": [1, 0, 0, 1, 1, 1, -1, 0], "index": 2})
    assert weight == pytest.approx(0.4227, abs=1e-3)
    assert compute_probe("attention.score_matrix_mib", {"seq": 4096, "heads": 8}) == 512.0
    with pytest.raises(ValueError, match="whole rows"):
        compute_probe("attention.one_query_weight", {"query": [1.0, 0.5], "keys": [1, 0, 0], "index": 0})


@needs_minilm
def test_attention_weight_probe():
    w = compute_probe("attention.weight", {"text": "The cat sat.", "layer": 0, "head": 0, "query": 0, "key": 0})
    assert 0.0 < w < 1.0
    with pytest.raises(ValueError, match="tokens"):
        compute_probe("attention.weight", {"text": "x", "layer": 0, "head": 0, "query": 9, "key": 0})


async def test_mask_lab_shows_what_a_change_moves(open_lab):
    async with open_lab("attention.masks") as h:
        lab = h.lab
        assert lab.state.changed_token == 6 and lab.effect.moved == [6, 7, 8, 9, 10, 11]
        await h.press("c")
        assert lab.effect.moved == list(range(12))
        await h.press("c", "plus", "plus", "right_square_bracket")
        assert lab.state.window == 2 and lab.effect.moved == [7, 8]
        assert "7 8" in h.readout()


async def test_grouped_heads_lab_times_the_same_attention_with_fewer_kv_heads(open_lab):
    async with open_lab("attention.grouped_heads", heads=8, cache=256) as h:
        await h.press("r")
        await h.settle()
        rows = h.lab.query_one(ProfilePanel).rows
        assert [row.name.split(", ")[0] for row in rows] == ["MHA", "GQA 2:1", "GQA 4:1", "MQA"]
        assert all(row.matches for row in rows)
        # K and V bytes read per step fall with the key/value heads.
        assert [row.bytes_moved for row in rows] == [2.0 * kv * 256 * 64 * 4 for kv in (8, 4, 2, 1)]
    assert compute_probe("attention.kv_cache_mib", {"layers": 80, "kv_heads": 8, "head_dim": 128, "tokens": 4096}) == 1280.0


def test_a_seven_letter_row_label_keeps_a_space_before_the_cells():
    import numpy as np
    from rich.console import Console

    from workbench.widgets.heat_grid import heat_table

    console = Console(width=80, record=True, color_system=None)
    console.print(heat_table(np.ones((10, 3)), title="t", row_labels=["x"] * 9 + ["because"]))
    row = next(line for line in console.export_text().splitlines() if "because" in line)
    assert "because ██" in row
