"""Positional encodings: the properties each one is chosen for, and clear errors."""

from __future__ import annotations

import importlib.util

from dataclasses import replace

import numpy as np
import pytest

from workbench_engines.errors import EngineError
from workbench_engines.positional import alibi_bias, alibi_slopes, learned, rope, rope_frequencies, sinusoidal


def test_sinusoidal_formula_and_relative_dot_products():
    pe = sinusoidal(200, 64).astype(np.float64)
    assert pe.shape == (200, 64)
    assert pe[3, 0] == pytest.approx(np.sin(3.0)) and pe[3, 1] == pytest.approx(np.cos(3.0))
    assert pe[7, 10] == pytest.approx(np.sin(7 / 10000 ** (10 / 64)), rel=1e-6)
    # PE[p] . PE[p + k] depends on k only.
    for k in (1, 5, 30):
        dots = [pe[p] @ pe[p + k] for p in (0, 17, 90)]
        assert np.allclose(dots, dots[0], atol=1e-5)


def test_rope_keeps_norms_and_makes_scores_relative(rng):
    q = rng.standard_normal((1, 2, 50, 32))
    k = rng.standard_normal((1, 2, 50, 32))
    rq, rk = rope(q), rope(k)
    np.testing.assert_allclose(np.linalg.norm(rq, axis=-1), np.linalg.norm(q, axis=-1))
    np.testing.assert_allclose(np.linalg.norm(rk, axis=-1), np.linalg.norm(k, axis=-1))
    # Same content at positions (m, n) and (m + s, n + s) gives the same score.
    qv, kv = q[0, 0, 0], k[0, 0, 0]
    one = rope(np.stack([qv, kv])[None], positions=np.array([10, 3]))[0]
    two = rope(np.stack([qv, kv])[None], positions=np.array([40, 33]))[0]
    assert one[0] @ one[1] == pytest.approx(two[0] @ two[1])


def test_rope_matches_the_exercise_reference(rng):
    spec = importlib.util.spec_from_file_location("rope_solution", "lessons/exercises/solutions/rope.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = rng.standard_normal((3, 20, 16)).astype(np.float32)
    np.testing.assert_allclose(rope(x), module.rope(x, np.arange(20)), rtol=1e-6, atol=1e-6)


def test_rope_scaling():
    x = np.random.default_rng(0).standard_normal((8, 16))
    # Linear scaling by 2 at position 2p is the unscaled rotation at p.
    scaled = rope(x, positions=np.arange(8) * 2.0, scaling="linear", factor=2.0)
    np.testing.assert_allclose(scaled, rope(x, positions=np.arange(8.0)))
    plain, _ = rope_frequencies(64)
    ntk, divisor = rope_frequencies(64, scaling="ntk", factor=4.0)
    assert divisor == 1.0 and ntk[0] == plain[0] == 1.0
    assert plain[-1] / ntk[-1] == pytest.approx(4.0, rel=0.05)  # the slowest frequency stretches by ~factor


def test_alibi_slopes_and_bias():
    assert alibi_slopes(8).tolist() == [2.0 ** -i for i in range(1, 9)]
    assert alibi_slopes(6).tolist() == [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1, 2.0 ** -3]
    bias = alibi_bias(2, 3)
    assert bias.shape == (2, 3, 3)
    assert bias[0].tolist() == [[0, 0, 0], [-0.0625, 0, 0], [-0.125, -0.0625, 0]]  # slope 2^-4 for 2 heads


def test_learned_table_and_bad_input():
    table = learned(10, 7, rng=np.random.default_rng(0))
    assert table.shape == (10, 7) and 0.005 < table.std() < 0.05
    for bad in (lambda: sinusoidal(10, 7), lambda: sinusoidal(-1, 8), lambda: rope(np.zeros((4, 6)), scaling="yarn"),
                lambda: rope(np.zeros(6)), lambda: rope(np.zeros((4, 6)), positions=np.arange(3)),
                lambda: rope_frequencies(8, factor=0), lambda: alibi_slopes(0), lambda: learned(3, 0)):
        with pytest.raises(EngineError):
            bad()


async def test_shuffle_lab_shows_equivariance(open_lab):
    async with open_lab("positional.shuffle") as h:
        lab = h.lab
        lab.state = replace(lab.state, order=(2, 0, 1))
        await h.pilot.pause()
        assert lab.same == [True, True, True]
        await h.press("e")
        assert not all(lab.same)
        assert "with sinusoidal" in h.readout()


@pytest.mark.parametrize("kind", ["sinusoidal", "similarity", "rope_scaling", "alibi"])
async def test_encoding_plots_render(open_lab, kind):
    from workbench_engines.positional.explain import encoding_curves

    async with open_lab("positional.plot", kind=kind) as h:
        await h.press("plus")
        assert h.lab.knob == 8
        assert " ".join(h.readout().split()) == encoding_curves(kind, 128, 8).note


def test_positional_probes():
    from workbench.probes import compute_probe

    assert compute_probe("positional.rope_angle", {"position": 100, "pair": 0}) == 100.0
    assert compute_probe("positional.alibi_slope", {"heads": 8, "head": 7}) == 2 ** -8
    assert compute_probe("positional.sinusoidal_value", {"position": 1, "index": 1}) == pytest.approx(np.cos(1.0))
    with pytest.raises(ValueError, match="outside"):
        compute_probe("positional.rope_angle", {"position": 1, "pair": 40})


@pytest.mark.parametrize("seed", range(20))
def test_a_shuffle_always_changes_the_order(seed):
    """With three words one shuffle in six was the identity, and every row then read "same"."""
    from workbench.labs.positional_labs import new_order

    rng = np.random.default_rng(seed)
    order = (0, 1, 2)
    for _ in range(10):
        shuffled = new_order(order, rng)
        assert shuffled != order and sorted(shuffled) == [0, 1, 2]
        order = shuffled
    assert new_order((0,), rng) == (0,)
