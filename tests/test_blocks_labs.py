"""The Transformer blocks, Training and MoE tracks' labs in the real app, and the experiment helpers."""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Input, Static

from workbench_engines.errors import EngineError
from workbench_engines.models.experiments import fit_power_law
from workbench_engines.nativelib import native_status
from tests.test_decoding_labs import _settle
from tests.test_tokenizer_labs import open_lab
from workbench.app import WorkbenchApp
from workbench.labs.blocks_labs import (
    ActivationCurvesLab,
    NormsLab,
    ResidualStatsLab,
    RouterLab,
    ScalingLab,
    SparseDenseLab,
    TrainCompareLab,
)
from workbench.probes import compute_probe

SIZE = (80, 24)
# The training labs encode the plays with the C tokenizer first; the reference one is far slower.
needs_native = pytest.mark.skipif(not native_status().loaded, reason="native kernels not loaded")


def test_power_law_fit_recovers_its_exponent():
    sizes = [1e4, 1e5, 1e6]
    a, b = fit_power_law(sizes, [5 * n ** -0.1 for n in sizes])
    assert a == pytest.approx(5) and b == pytest.approx(0.1)
    with pytest.raises(EngineError, match="two positive"):
        fit_power_law([1.0], [2.0])


async def test_norms_lab_shift_changes_only_rmsnorm(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "blocks.norms", NormsLab)
        before_ln, before_rms = lab.ln.copy(), lab.rms.copy()
        lab.focus()
        await pilot.press("s", "s")
        np.testing.assert_allclose(lab.ln, before_ln, atol=1e-9)
        assert not np.allclose(lab.rms, before_rms)
        await pilot.press("z", "m")
        np.testing.assert_allclose(lab.rms, before_rms, atol=1e-4)
        assert abs(lab.ln.mean()) < 1e-9


async def test_activation_lab_measures_the_gelu_gap(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "blocks.activations", ActivationCurvesLab)
        assert 1e-5 < lab.gap < 1e-2
        lab.focus()
        await pilot.press("plus")
        assert lab.span == 2.0


@needs_native
@pytest.mark.parametrize("preset", ["residuals", "objectives", "balance"])
async def test_train_compare_lab_trains_every_variant(tmp_path, preset):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "blocks.train_compare", TrainCompareLab)
        lab.params = {**lab.params, "preset": preset, "steps": 12}
        lab.focus()
        await pilot.press("r")
        await _settle(app, pilot)
        assert all(len(c.losses) == 12 for c in lab.curves)
        if preset == "objectives":
            assert [name for name, _ in lab.extras] == ["causal LM", "masked LM", "prefix LM"]
        if preset == "balance":
            assert all(h.sum() > 0 for h in lab.extras)


@needs_native
async def test_residual_stats_lab_pre_ln_stream_grows_with_depth(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "blocks.residual_stats", ResidualStatsLab)
        pre, post = lab.rms["pre"], lab.rms["post"]
        assert pre[-1] > pre[0]  # each block adds to an unnormalised stream
        assert max(post[1:]) < 1.5  # post-LN renormalises after every block
        lab.focus()
        await pilot.press("h", "left_square_bracket")
        assert lab.show_histogram and lab.layer_index == 7


@needs_native
async def test_scaling_lab_fits_a_falling_curve(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "training.scaling", ScalingLab)
        lab.params = {**lab.params, "steps": 30}
        lab.focus()
        await pilot.press("r")
        await _settle(app, pilot)
        assert lab.sizes == sorted(lab.sizes) and lab.fit[1] > 0
        assert all(len(c.elapsed) == 30 and c.elapsed == sorted(c.elapsed) for c in lab.curves)
        await pilot.press("w")
        assert lab.wall_clock


@needs_native
async def test_router_lab_routes_every_token(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "moe.router", RouterLab)
        lab.params = {**lab.params, "steps": 20}
        lab.focus()
        await pilot.press("r")
        await _settle(app, pilot)
        count = len(lab.choices)
        assert count > 5 and set(lab.choices) <= {0, 1}
        await pilot.press("C", "C", "C")
        assert lab.capacity_factor == 0.25
        assert "dropped" in str(lab.query_one(".readout", Static).content.renderables[1])
        lab.query_one(Input).value = "Hi."
        await lab.query_one(Input).action_submit()
        await pilot.pause()
        assert len(lab.choices) < count


async def test_sparse_dense_lab(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "moe.sparse_dense", SparseDenseLab)
        lab.focus()
        await pilot.press("r")
        await _settle(app, pilot)
        (dense, d_total, d_active, _), (moe, m_total, m_active, _), (wide, w_total, _, _) = lab.rows
        router = 2 * 64 * 4  # per layer: d_model × experts
        assert d_total == d_active and m_total == w_total + router  # four H-wide experts weigh one 4H-wide FFN
        assert m_active == d_active + router and m_total > m_active


def test_block_probes():
    assert compute_probe("blocks.rmsnorm", {"vector": [3.0, 4.0], "index": 0}) == pytest.approx(3 / np.sqrt(12.5), rel=1e-5)
    assert compute_probe("blocks.layernorm", {"vector": [1.0, 3.0], "index": 1}) == pytest.approx(1.0, rel=1e-4)
    assert compute_probe("blocks.gelu", {"x": 1.0}) == pytest.approx(0.8413447, rel=1e-6)
    assert compute_probe("moe.active_parameters", {"d_model": 64, "hidden": 128, "experts": 8, "top_k": 2,
                                                    "layers": 1}) == 2 * 3 * 64 * 128 + 64 * 8
