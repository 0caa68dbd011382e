"""Pruning (engines.compress.prune): magnitude and 2:4 masks, whole models, and Michel et al.'s head importance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench_engines.compress.prune import (
    head_importance,
    magnitude_mask,
    prune_heads,
    prune_model,
    two_four_mask,
)
from workbench_engines.errors import Cancelled, EngineError


@pytest.fixture(scope="module")
def target():
    from workbench_engines.models import small_gpt

    return small_gpt.load("target")


@pytest.fixture(scope="module")
def held_out(target):
    from workbench_engines.evaluation.heldout import held_out_plays

    return held_out_plays(target.tokenizer, 1).ids[:600]


@pytest.fixture(scope="module")
def windows(target):
    """Training-split windows (never the held-out ends) for head importance."""
    from workbench_engines.models.data import encode_corpus

    data = encode_corpus(target.tokenizer, limit_bytes=200_000)
    return data.windows("train", np.random.default_rng(0), 16, 64)


def perplexity(model, ids) -> float:
    from workbench_engines.evaluation import sliding_window_nll

    return sliding_window_nll(model, ids, window=256, stride=128).perplexity


@pytest.mark.parametrize("seed", range(4))
def test_magnitude_mask_drops_exactly_the_smallest(seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((int(rng.integers(1, 40)), int(rng.integers(1, 40)))).astype(np.float32)
    sparsity = float(rng.uniform())
    keep = magnitude_mask(w, sparsity)
    assert (~keep).sum() == round(sparsity * w.size)
    if keep.any() and (~keep).any():
        assert np.abs(w[keep]).min() >= np.abs(w[~keep]).max()


@pytest.mark.parametrize("seed", range(4))
def test_two_four_keeps_the_two_largest_of_every_four(seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((int(rng.integers(1, 20)), 4 * int(rng.integers(1, 20)))).astype(np.float32)
    keep = two_four_mask(w).reshape(w.shape[0], -1, 4)
    groups = np.abs(w).reshape(keep.shape)
    assert (keep.sum(-1) == 2).all()
    assert (np.where(keep, groups, np.inf).min(-1) >= np.where(keep, -np.inf, groups).max(-1)).all()


@pytest.mark.parametrize(("call", "match"), [
    (lambda: magnitude_mask(np.ones(4, np.float32), 1.5), "between 0 and 1"),
    (lambda: magnitude_mask(np.array([1.0, np.nan]), 0.5), "NaN"),
    (lambda: magnitude_mask(np.arange(4), 0.5), "floats"),
    (lambda: two_four_mask(np.ones((2, 6), np.float32)), "multiple of 4"),
    (lambda: two_four_mask(np.ones(8, np.float32)), "multiple of 4"),
])
def test_bad_masks_are_refused(call, match):
    with pytest.raises(EngineError, match=match):
        call()


def test_pruning_copies_reaches_its_sparsity_and_costs_more_as_it_grows(target, held_out):
    before = {k: v.clone() for k, v in target.model.state_dict().items()}
    half = prune_model(target.model, "magnitude", 0.5)
    assert all(v.equal(before[k]) for k, v in target.model.state_dict().items())  # the original is untouched
    assert all(s == pytest.approx(0.5, abs=1e-3) for s in half.sparsity.values()) and half.overall == pytest.approx(0.5, abs=1e-3)
    two_four = prune_model(target.model, "2:4")
    assert all(s == 0.5 for s in two_four.sparsity.values())
    none = prune_model(target.model, "magnitude", 0.0)
    ids = torch.tensor([held_out[:64]])
    with torch.inference_mode():
        assert torch.equal(none.model(ids), target.model(ids))
    ppl = [perplexity(target.model, held_out), perplexity(half.model, held_out),
           perplexity(prune_model(target.model, "magnitude", 0.9).model, held_out)]
    assert ppl[0] < ppl[1] < ppl[2]
    with pytest.raises(EngineError, match="unknown pruning method"):
        prune_model(target.model, "random")


def test_head_importance_is_the_gradient_of_the_loss_with_respect_to_each_heads_gate(target, windows):
    """One head's score against a finite difference of the loss in its gate (unnormalised, one window)."""
    one = windows[:1]
    scores = head_importance(target.model, one, normalize=False)
    assert scores.shape == (target.config.n_layers, target.config.n_heads) and (scores >= 0).all()

    def loss(gate: float, layer: int, head: int) -> float:
        keep = np.ones(scores.shape, dtype=np.float32)
        keep[layer, head] = gate
        from workbench_engines.compress.prune import _head_gates

        model = target.model
        handles = _head_gates(model, torch.from_numpy(keep))
        try:
            with torch.no_grad():
                x = torch.from_numpy(one.astype(np.int64))
                logits = model(x[:, :-1]).double()
                return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item()
        finally:
            for h in handles:
                h.remove()

    layer, head = np.unravel_index(scores.argmax(), scores.shape)
    eps = 1e-3
    slope = (loss(1 + eps, layer, head) - loss(1 - eps, layer, head)) / (2 * eps)
    assert abs(slope) == pytest.approx(scores[layer, head], rel=2e-2)


def test_the_least_important_heads_go_cheaper_than_the_most_important(target, windows, held_out):
    """Michel et al.: many heads can be removed; which ones matters. Pruning a third of the heads by importance."""
    scores = head_importance(target.model, windows)
    assert np.allclose(np.linalg.norm(head_importance(target.model, windows[:2], normalize=True), axis=1), 1.0)
    n = scores.size // 3
    order = np.argsort(scores, axis=None)
    least, most = np.ones(scores.size, bool), np.ones(scores.size, bool)
    least[order[:n]] = False
    most[order[-n:]] = False
    chance = np.ones(scores.size, bool)
    chance[np.random.default_rng(1).permutation(scores.size)[:n]] = False
    base = perplexity(target.model, held_out)
    cheap, random, dear = (perplexity(prune_heads(target.model, keep.reshape(scores.shape)), held_out)
                           for keep in (least, chance, most))
    assert base < cheap < random < dear
    with pytest.raises(EngineError, match="boolean array of shape"):
        prune_heads(target.model, np.ones((2, 2), bool))
    with pytest.raises(Cancelled):
        head_importance(target.model, windows, should_stop=lambda: True)
