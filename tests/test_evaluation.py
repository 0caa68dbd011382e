"""Perplexity, bits per byte and model comparison (engines.evaluation) against direct computation and transformers."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.evaluation import compare_models, sliding_window_nll, window_spans


@pytest.fixture(scope="module")
def target():
    from workbench_engines.models import small_gpt

    return small_gpt.load("target")


@pytest.fixture(scope="module")
def plays(target):
    """The end of the first play: text the shipped GPT held out (the last 5% of every play is its validation split)."""
    from workbench_engines.models.data import encode_corpus

    data = encode_corpus(target.tokenizer, limit_bytes=400_000)
    return data.val[:400].tolist()


@pytest.mark.parametrize("seed", range(5))
def test_every_token_after_the_first_is_scored_once_with_the_promised_context(seed):
    rng = np.random.default_rng(seed)
    window = int(rng.integers(2, 40))
    stride = int(rng.integers(1, window))
    n = int(rng.integers(2, 300))
    spans = window_spans(n, window, stride)
    scored = [t for _, end, first in spans for t in range(first, end)]
    assert scored == list(range(1, n))
    for begin, end, first in spans:
        assert end - begin <= window and begin < first  # never more than a window; the first new token has context
    for begin, end, first in spans[1:-1]:
        assert first - begin == window - stride and end - first == stride


def test_one_window_is_the_plain_cross_entropy(target, plays):
    ids = plays[:200]
    score = sliding_window_nll(target.model, ids, window=256, stride=128)
    with torch.inference_mode():
        logits = target.model(torch.tensor([ids]))[0].double()
    expected = F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum").item()
    assert score.windows == 1 and score.tokens == 199
    assert score.nll == pytest.approx(expected, rel=1e-9)
    assert score.perplexity == pytest.approx(math.exp(expected / 199))


def test_each_token_is_scored_on_exactly_its_windows_context(target, plays):
    """Token by token: each scored token's NLL from a pass over just the context its window gives it."""
    ids, window, stride = plays[:37], 12, 5
    score = sliding_window_nll(target.model, ids, window=window, stride=stride)
    expected = 0.0
    with torch.inference_mode():
        for begin, end, first in window_spans(len(ids), window, stride):
            for t in range(first, end):
                logits = target.model(torch.tensor([ids[begin:t]]))[0, -1].double()
                expected -= torch.log_softmax(logits, -1)[ids[t]].item()
    assert score.nll == pytest.approx(expected, rel=1e-6)


def test_more_context_lowers_the_perplexity_of_held_out_plays(target, plays):
    short = sliding_window_nll(target.model, plays, window=32, stride=31)
    long = sliding_window_nll(target.model, plays, window=256, stride=64)
    assert long.perplexity < short.perplexity and long.windows < short.windows


def test_bits_per_byte_counts_the_bytes_the_scored_tokens_cover(target, plays):
    score = sliding_window_nll(target.model, plays[:120], window=64, stride=32, token_bytes=target.tokenizer.token_bytes)
    covered = len(target.tokenizer.decode_bytes(plays[1:120]))
    assert score.bytes == covered
    assert score.bits_per_byte == pytest.approx(score.nll / math.log(2) / covered)
    with pytest.raises(EngineError, match="token_bytes"):
        _ = sliding_window_nll(target.model, plays[:20], window=8, stride=4).bits_per_byte


def test_a_model_compared_with_itself_has_not_moved(target, plays):
    same = compare_models(target.model, target.model, plays[:150], window=64, stride=32)
    assert same.kl == pytest.approx(0, abs=1e-12) and same.same_top == 1 and same.delta_p_correct == pytest.approx(0)
    assert same.changed.nll == same.reference.nll


def test_a_perturbed_model_moves_by_the_kl_computed_directly(target, plays):
    ids = plays[:100]
    noisy = copy.deepcopy(target.model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(0.05 * torch.randn_like(p) * p.std())
    moved = compare_models(target.model, noisy, ids, window=128, stride=64)
    with torch.inference_mode():
        ref = torch.log_softmax(target.model(torch.tensor([ids]))[0, :-1].double(), -1)
        new = torch.log_softmax(noisy(torch.tensor([ids]))[0, :-1].double(), -1)
    kl = F.kl_div(new, ref, log_target=True, reduction="sum").item() / 99
    assert moved.kl == pytest.approx(kl, rel=1e-9) and moved.kl > 0
    assert moved.same_top == pytest.approx(float((ref.argmax(-1) == new.argmax(-1)).double().mean()))
    targets = torch.tensor(ids[1:]).unsqueeze(1)
    delta = (new.gather(1, targets).exp() - ref.gather(1, targets).exp()).mean().item()
    assert moved.delta_p_correct == pytest.approx(delta)
    assert moved.changed.nll == pytest.approx(sliding_window_nll(noisy, ids, window=128, stride=64).nll)


@pytest.mark.parametrize(("ids", "window", "stride", "error", "match"), [
    ([1, 2, 3], 8, 8, EngineError, "less than the window"),
    ([1, 2, 3], 8, 0, EngineError, "at least 1"),
    ([1, 2, 3], 1, 1, EngineError, "at least 2 tokens"),
    ([1, 2, 3], 100_000, 10, EngineError, "longer than the model's context"),
    ([1], 8, 4, EngineError, "nothing to score"),
    ([1.5, 2.0], 8, 4, TypeError, "integers"),
    ([1, 2, 5000], 8, 4, ValueError, "ids"),
    ([1, 2, 3], 8.0, 4, TypeError, "window"),
])
def test_bad_input_is_refused_before_the_model_runs(target, ids, window, stride, error, match):
    with pytest.raises(error, match=match):
        sliding_window_nll(target.model, ids, window=window, stride=stride)


def test_models_with_different_vocabularies_and_a_cancelled_run(target, plays):
    other = SimpleNamespace(config=SimpleNamespace(vocab_size=49152, context=8192))  # SmolLM2's vocabulary
    with pytest.raises(EngineError, match="different vocabularies"):
        compare_models(target.model, other, plays[:20], window=8, stride=4)
    with pytest.raises(Cancelled):
        sliding_window_nll(target.model, plays[:50], window=8, stride=4, should_stop=lambda: True)
