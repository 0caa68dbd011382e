"""Mixture of experts: routing, exact capacity dropping, dense equivalence, backends agree, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import NATIVE
from workbench_engines import moe

BACKENDS = ["reference", "torch", NATIVE]


def setup_case(rng, tokens=300, d=16, experts=8, k=2, factor=1.0):
    x = rng.standard_normal((tokens, d)).astype(np.float32)
    weights, chosen, probs = moe.route(rng.standard_normal((tokens, experts)), k)
    return x, weights, chosen, probs, moe.capacity(tokens, experts, k, factor)


@pytest.mark.parametrize("factor", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree_and_dropping_is_exact(rng, factor, backend):
    x, weights, chosen, _, cap = setup_case(rng, factor=factor)
    expected = moe.dispatch(x, chosen, 8, cap)
    assigned = np.bincount(chosen.ravel(), minlength=8)
    np.testing.assert_array_equal(expected[2], np.minimum(assigned, cap))
    assert (expected[1] < 0).sum() == np.maximum(assigned - cap, 0).sum()
    got = moe.dispatch(x, chosen, 8, cap, backend=backend, **({"threads": 2} if backend == "native" else {}))
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    y = moe.combine(expected[0] * 2, expected[1], chosen, weights, backend=backend)
    np.testing.assert_allclose(y, moe.combine(expected[0] * 2, expected[1], chosen, weights), atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_token_to_every_expert_equals_the_dense_mixture(rng, backend):
    tokens, d, experts = 50, 8, 4
    x = rng.standard_normal((tokens, d)).astype(np.float32)
    mats = rng.standard_normal((experts, d, d)).astype(np.float32)
    weights, chosen, _ = moe.route(rng.standard_normal((tokens, experts)), experts)
    dense = np.zeros_like(x)
    for t in range(tokens):
        for j in range(experts):
            dense[t] += weights[t, j] * (x[t] @ mats[chosen[t, j]])
    buffers, positions, counts = moe.dispatch(x, chosen, experts, tokens, backend=backend)
    assert counts.tolist() == [tokens] * experts and (positions >= 0).all()
    out = np.einsum("ecd,edf->ecf", buffers, mats)
    np.testing.assert_allclose(moe.combine(out, positions, chosen, weights, backend=backend), dense, atol=1e-4)


def test_routing_and_balancing_loss(rng):
    weights, chosen, probs = moe.route(np.array([[3.0, 1.0, 2.0], [0.0, 0.0, 5.0]]), 2)
    assert chosen.tolist() == [[0, 2], [2, 0]]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    uniform = np.full((4, 4), 0.25)
    assert moe.load_balancing_loss(uniform, np.array([[0], [1], [2], [3]])) == pytest.approx(1.0)
    assert moe.load_balancing_loss(np.tile([[0.97, 0.01, 0.01, 0.01]], (4, 1)), np.zeros((4, 1), int)) > 3.8
    _, noisy, _ = moe.route(np.zeros((200, 4)), 1, noise_std=1.0, rng=np.random.default_rng(0))
    assert len(set(noisy.ravel())) == 4  # noise spreads ties across experts
    assert moe.capacity(10, 4, 2, 1.25) == 7


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x, e: moe.route(np.zeros((3, 4)), 5), r"k \(experts per token\) must be an integer from 1 to 4"),
        (lambda x, e: moe.dispatch(x, e, 8, 0), "capacity"),
        (lambda x, e: moe.dispatch(x, e[:5], 8, 4), "rows"),
        (lambda x, e: moe.dispatch(x.astype(np.float64), e, 8, 4), "float32"),
        (lambda x, e: moe.dispatch(x, e + 100, 8, 4), "experts must each be an integer from 0 to 7"),
        (lambda x, e: moe.combine(np.zeros((8, 4, 16), np.float32), np.full(e.shape, 9), e, np.ones(e.shape)),
         "positions must each be an integer from -1 to 3"),
        (lambda x, e: moe.dispatch(x, e, 8, 4, backend="gpu"), "unknown backend"),
    ],
)
def test_bad_input(rng, call, message):
    x, _, chosen, _, _ = setup_case(rng, tokens=10)
    with pytest.raises(ValueError, match=message):
        call(x, chosen)
