"""The Transformer blocks, Training and MoE tracks' labs in the real app, and the experiment helpers."""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Input

from workbench_engines.errors import EngineError
from workbench_engines.models.experiments import fit_power_law
from workbench.probes import compute_probe
from workbench.widgets.profile_panel import ProfilePanel

# The training labs encode the plays with the C tokenizer first; the reference one is far slower.
needs_native = pytest.mark.native


def test_power_law_fit_recovers_its_exponent():
    sizes = [1e4, 1e5, 1e6]
    a, b = fit_power_law(sizes, [5 * n ** -0.1 for n in sizes])
    assert a == pytest.approx(5) and b == pytest.approx(0.1)
    with pytest.raises(EngineError, match="two positive"):
        fit_power_law([1.0], [2.0])


async def test_norms_lab_shift_changes_only_rmsnorm(open_lab):
    async with open_lab("blocks.norms") as h:
        before = h.lab.outputs
        await h.press("s", "s")
        np.testing.assert_allclose(h.lab.outputs.layer, before.layer, atol=1e-9)
        assert not np.allclose(h.lab.outputs.rms, before.rms)
        await h.press("z", "m")
        np.testing.assert_allclose(h.lab.outputs.rms, before.rms, atol=1e-4)
        assert abs(h.lab.outputs.layer.mean()) < 1e-9


async def test_activation_lab_measures_the_gelu_gap(open_lab):
    async with open_lab("blocks.activations") as h:
        assert 1e-5 < h.lab.gap < 1e-2
        await h.press("plus")
        assert h.lab.span == 2.0


@pytest.mark.slow
async def test_next_seed_trains_again_with_new_weights_and_reports_the_spread(open_lab):
    async with open_lab("blocks.train_compare", preset="depth", steps=10) as h:
        await h.press("r")
        await h.settle()
        first = {c.name: c.val_loss for c in h.lab.trained.curves}
        await h.press("s")
        await h.settle()
        assert h.lab.trained.seed == 1 and sorted(h.lab.val_by_seed) == [0, 1]
        assert {c.name: c.val_loss for c in h.lab.trained.curves} != first  # another initialisation and batch order
        assert "Over seeds 0, 1:" in h.readout() and "the spread between your 2 seeds" in h.readout()


@pytest.mark.slow
@needs_native
@pytest.mark.parametrize("preset", ["residuals", "objectives", "balance"])
async def test_train_compare_lab_trains_every_variant(open_lab, preset):
    async with open_lab("blocks.train_compare", preset=preset, steps=12) as h:
        await h.press("r")
        await h.settle()
        trained = h.lab.trained
        assert all(len(c.losses) == 12 for c in trained.curves)
        if preset == "objectives":
            assert [name for name, _ in trained.samples] == ["causal LM", "masked LM", "prefix LM"]
        if preset == "balance":
            assert all(sum(share) == pytest.approx(100) for share in trained.expert_shares)


@pytest.mark.slow
@needs_native
async def test_residual_stats_lab_pre_ln_stream_grows_with_depth(open_lab):
    async with open_lab("blocks.residual_stats") as h:
        pre, post = h.lab.rms["pre"], h.lab.rms["post"]
        assert pre[-1] > pre[0]  # each block adds to an unnormalised stream
        assert max(post[1:]) < 1.5  # post-LN renormalises after every block
        await h.press("h", "left_square_bracket")
        assert h.lab.view.histogram and h.lab.view.layer == 7


@pytest.mark.slow
@needs_native
async def test_scaling_lab_fits_a_falling_curve(open_lab):
    async with open_lab("training.scaling", steps=30) as h:
        await h.press("r")
        await h.settle()
        run = h.lab.run
        assert run.sizes == sorted(run.sizes) and run.fit[1] > 0
        assert all(len(c.elapsed) == 30 and c.elapsed == sorted(c.elapsed) for c in run.curves)
        await h.press("w")
        assert h.lab.wall_clock


@pytest.mark.slow
@needs_native
async def test_router_lab_routes_every_token(open_lab):
    async with open_lab("moe.router", steps=20) as h:
        await h.press("r")
        await h.settle()
        count = len(h.lab.routing.experts)
        assert count > 5 and set(h.lab.routing.experts) <= {0, 1}
        await h.press("C", "C", "C")
        assert h.lab.capacity_factor == 0.25 and "dropped" in h.readout()
        h.lab.query_one(Input).value = "Hi."
        await h.lab.query_one(Input).action_submit()
        await h.pilot.pause()
        assert len(h.lab.routing.experts) < count


@pytest.mark.slow
async def test_sparse_dense_lab_races_the_benchmark_case(open_lab):
    async with open_lab("moe.sparse_dense") as h:
        await h.press("r")
        await h.settle()
        dense, moe, wide = h.lab.query_one(ProfilePanel).rows
        router = 2 * 64 * 4  # per layer: d_model × experts
        assert dense.extra["parameters"] == dense.extra["active"]
        assert moe.extra["parameters"] == wide.extra["parameters"] + router  # four H-wide experts weigh one 4H-wide FFN
        assert moe.extra["active"] == dense.extra["active"] + router and moe.extra["parameters"] > moe.extra["active"]
        assert all(row.matches for row in (dense, moe, wide))


def test_block_probes():
    assert compute_probe("blocks.rmsnorm", {"vector": [3.0, 4.0], "index": 0}) == pytest.approx(3 / np.sqrt(12.5), rel=1e-5)
    assert compute_probe("blocks.layernorm", {"vector": [1.0, 3.0], "index": 1}) == pytest.approx(1.0, rel=1e-4)
    assert compute_probe("blocks.gelu", {"x": 1.0}) == pytest.approx(0.8413447, rel=1e-6)
    assert compute_probe("moe.active_parameters", {"d_model": 64, "hidden": 128, "experts": 8, "top_k": 2,
                                                    "layers": 1}) == 2 * 3 * 64 * 128 + 64 * 8
