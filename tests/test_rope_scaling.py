"""RoPE scaling (issue 23): PI, NTK-aware and YaRN as transformers computes them, the tables a model reads, the
position-by-position perplexity, and the long-context lab's claim on its lesson's settings."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.longctx import rope_scaling as rs

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.no_c_path  # torch only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


@pytest.mark.parametrize("method, rope_type", [("pi", "linear"), ("yarn", "yarn")])
def test_frequencies_and_attention_factor_equal_transformers(rng, method, rope_type):
    pytest.importorskip("transformers")
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    for _ in range(4):
        head_dim = int(rng.choice([32, 64, 128]))
        base = float(rng.choice([10_000.0, 100_000.0, 500_000.0]))
        trained = int(rng.choice([512, 2048, 4096]))
        factor = float(rng.uniform(1.5, 16))
        parameters = {"rope_type": rope_type, "rope_theta": base, "factor": factor}
        if rope_type == "yarn":
            parameters["original_max_position_embeddings"] = trained
        config = LlamaConfig(hidden_size=head_dim * 4, num_attention_heads=4, head_dim=head_dim,
                             max_position_embeddings=int(trained * factor), rope_parameters=parameters)
        theirs, their_factor = ROPE_INIT_FUNCTIONS[rope_type](config, "cpu")
        ours, our_factor = rs.inverse_frequencies(head_dim, base, rs.RopeScaling(method, factor, trained))
        # transformers works in float32: agreement to its rounding.
        np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=2e-6, atol=0)
        assert our_factor == pytest.approx(their_factor, rel=1e-12)


def test_ntk_slows_the_slowest_pair_by_the_factor_and_keeps_the_fastest():
    plain, _ = rs.inverse_frequencies(64, 10_000.0, rs.RopeScaling("plain", 4.0, 512))
    ntk, factor = rs.inverse_frequencies(64, 10_000.0, rs.RopeScaling("ntk", 4.0, 512))
    assert ntk[0] == plain[0] == 1.0 and factor == 1.0
    # The slowest pair's exponent is (HS − 2)/HS, which the base's power HS/(HS − 2) cancels.
    assert ntk[-1] == pytest.approx(plain[-1] / 4.0, rel=1e-12)
    assert np.all(np.diff(ntk / plain) < 0)  # every slower pair is slowed more
    assert ntk[1] == pytest.approx((10_000.0 * 4 ** (64 / 62)) ** (-2 / 64))  # base · s^(HS/(HS − 2))


def test_yarn_keeps_fast_pairs_interpolates_slow_ones_and_sharpens():
    plain, _ = rs.inverse_frequencies(32, 10_000.0, rs.RopeScaling("plain", 4.0, 512))
    yarn, factor = rs.inverse_frequencies(32, 10_000.0, rs.RopeScaling("yarn", 4.0, 512))
    ratio = yarn / plain
    assert ratio[0] == 1.0 and ratio[-1] == pytest.approx(0.25) and np.all(np.diff(ratio) <= 1e-15)
    assert factor == pytest.approx(0.1 * math.log(4) + 1)
    assert rs.yarn_attention_factor(1.0) == 1.0


def test_plain_tables_are_the_models_own_and_scaling_is_swapped_back():
    from workbench_engines.models.layers import rope_tables

    cos, sin = rs.tables(32, 100, 10_000.0, rs.RopeScaling("plain", 1.0, 512))
    ref_cos, ref_sin = rope_tables(32, 100, 10_000.0)
    assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)
    yarn_cos, _ = rs.tables(32, 100, 10_000.0, rs.RopeScaling("yarn", 4.0, 512))
    assert float(yarn_cos[0, 0]) == pytest.approx(rs.yarn_attention_factor(4.0))  # cos 0 = 1, times the factor

    model = SimpleNamespace(config=SimpleNamespace(head_dim=32, rope_base=10_000.0), rope_cos=ref_cos, rope_sin=ref_sin)
    with rs.rope_scaled(model, rs.RopeScaling("ntk", 4.0, 512)):
        assert model.rope_cos.shape == ref_cos.shape and not torch.equal(model.rope_cos, ref_cos)
    assert model.rope_cos is ref_cos and model.rope_sin is ref_sin


@pytest.mark.parametrize("make", [
    lambda: rs.RopeScaling("rope", 2.0, 512),
    lambda: rs.RopeScaling("yarn", 0.5, 512),
    lambda: rs.RopeScaling("yarn", float("nan"), 512),
    lambda: rs.RopeScaling("yarn", 2.0, 1),
    lambda: rs.inverse_frequencies(33, 10_000.0, rs.RopeScaling("plain", 1.0, 512)),
    lambda: rs.long_windows(list(range(100)), 64, 2),
])
def test_bad_settings_are_refused(make):
    with pytest.raises((EngineError, ValueError, TypeError)):
        make()


@pytest.fixture(scope="module")
def draft():
    from workbench_engines.models import small_gpt

    return small_gpt.load("draft")


def test_the_loss_at_each_position_is_the_models_own_and_the_shared_model_is_untouched(draft, rng):
    ids = rng.integers(0, draft.config.vocab_size, 3 * 64).tolist()
    before = draft.model.rope_cos.clone()
    curves = rs.perplexity_by_position(draft.model, ids, methods=("plain", "yarn"), window=64, windows=3,
                                       trained_context=32)
    assert [c.method for c in curves] == ["plain", "yarn"] and curves[0].nll.shape == (63,)
    windows = torch.tensor(ids).reshape(3, 64)
    with torch.inference_mode():
        logits = draft.model(windows[:, :-1]).float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none").mean(0)
    np.testing.assert_allclose(curves[0].nll, nll.double().numpy(), rtol=1e-5, atol=1e-6)
    assert curves[0].perplexity(1, 64) == pytest.approx(math.exp(float(nll.double().mean())), rel=1e-6)
    assert not np.allclose(curves[1].nll, curves[0].nll)  # YaRN's tables were read
    assert torch.equal(draft.model.rope_cos, before)
    with pytest.raises(EngineError, match="no scored position"):
        curves[0].perplexity(70, 80)


def test_the_sweep_refuses_windows_it_cannot_score_and_stops_when_asked(draft):
    ids = list(range(5000))
    with pytest.raises(EngineError, match="past the model"):
        rs.perplexity_by_position(draft.model, ids, window=4096, windows=1, trained_context=512)
    with pytest.raises(EngineError, match="does not reach past"):
        rs.perplexity_by_position(draft.model, ids, window=256, windows=1, trained_context=512)
    with pytest.raises(Cancelled):
        rs.perplexity_by_position(draft.model, ids, window=64, windows=2, trained_context=32, should_stop=lambda: True)


def test_the_verdict_reads_the_sweeps_own_numbers():
    from workbench.labs.longctx_labs import RopeSweep, rope_verdict

    def curve(method, near, far):
        nll = np.full(2047, math.log(near))
        nll[1791:] = math.log(far)
        return rs.PositionCurve(method, nll, 3)

    sweep = RopeSweep([curve("plain", 30, 90), curve("pi", 75, 80), curve("ntk", 32, 40), curve("yarn", 33, 36)],
                      2048, 6)
    text = rope_verdict(sweep)
    assert text.startswith("Plain RoPE: perplexity 30.0 on the positions training showed (1–511), 90.0 at "
                           "1,792–2,047, ×3.00.")
    assert "YaRN does best: 36.0, ×1.09" in text and "raises even the near positions' perplexity ×2.50" in text


@pytest.mark.slow
@pytest.mark.claims
async def test_rope_lab_on_the_lessons_settings_plain_breaks_ntk_and_yarn_hold_pi_costs_everywhere(open_lab):
    """The lesson's claims, from the lab's own figures: plain RoPE climbs past 512, position interpolation untrained
    is far worse on the first 512 positions and no better at the end, NTK-aware and YaRN stay near their first
    positions to the end."""
    from tests.test_lab_claims import lesson_params, lesson_run

    assert lesson_params("stretching-rope", "longctx.rope_scaling") == {"window": 2048, "windows": 3, "plays": 6}
    async with lesson_run(open_lab, "stretching-rope", "longctx.rope_scaling") as h:
        sweep = h.lab.sweep
        by = {c.method: (sweep.inside(c), sweep.far(c)) for c in sweep.curves}
        assert by["plain"][1] > 1.8 * by["plain"][0]
        assert by["pi"][0] > 1.5 * by["plain"][0] and by["pi"][1] > 0.8 * by["plain"][1]  # and no real help far out
        for method in ("ntk", "yarn"):
            assert by[method][1] < 1.3 * by[method][0] and by[method][1] < 0.7 * by["plain"][1], (method, by)
        text = h.readout()
        assert "Plain RoPE: perplexity" in text and "Position interpolation without fine-tuning raises" in text


def test_the_lessons_probes_answer_what_the_formulas_and_the_prose_say():
    from workbench.curriculum import load_curriculum
    from workbench.probes import compute_probe

    lesson = load_curriculum().lesson("stretching-rope")
    answers = {q.id: compute_probe(q.probe, q.params) for q in lesson.questions if q.kind == "probe"}
    assert answers["slowest-angle"] == pytest.approx(2047 * 10_000 ** (-30 / 32))
    assert answers["yarn-attention"] == pytest.approx(0.1 * math.log(4) + 1)
    assert answers["yarn-keep"] == pytest.approx(4 / 7 + 3 / 7 / 4)  # the ramp's 3/7 at pair 4, as the prose works out
