"""Sentence embeddings (engines.embeddings.sentence): truncation, batching, pooling, the Lee benchmark, InfoNCE."""

from __future__ import annotations

import math

import numpy as np
import pytest
from workbench_engines.embeddings import sentence
from workbench_engines.errors import EngineError
from workbench_engines.retrieval.corpora import load_bbc

from tests.conftest import needs_minilm

SENTENCES = ["A man is playing a guitar.", "Someone is playing an instrument.", "The stock market fell.",
             "Shares dropped sharply after the company's profit warning on Tuesday morning."]


@needs_minilm
def test_embed_equals_the_models_own_pooling_whatever_the_batching():
    from workbench_engines.models.minilm import load

    ours = sentence.embed(SENTENCES, batch_size=3, backend="reference")
    np.testing.assert_allclose(ours, load().embed(SENTENCES), atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    assert sentence.cosine(ours[0], ours[1]) == pytest.approx(float(ours[0] @ ours[1]), abs=1e-6)


@needs_minilm
def test_token_ids_of_a_long_text_are_the_whole_texts_ids_cut(rng):
    from workbench_engines.models.minilm import load

    model = load()
    words = ["tokenisation", "of", "unaffable", "Ångström", "news,", "today's", "3.5%", "rise"]
    text = " ".join(rng.choice(words, size=400))
    full = model.tokenizer.encode(text, add_special_tokens=False)
    for max_tokens in (3, 16, 129, 512):
        ids = sentence.token_ids(model, text, max_tokens)
        assert ids == [101, *full[: max_tokens - 2], 102]
    short = sentence.token_ids(model, "a cat", 128)
    assert short == [101, *model.tokenizer.encode("a cat", add_special_tokens=False), 102]


@needs_minilm
def test_truncated_embedding_is_the_pooled_forward_of_the_cut_ids():
    from workbench_engines.models.minilm import load

    model = load()
    text = SENTENCES[3] * 4
    ids = np.asarray([sentence.token_ids(model, text, 12)])
    want = sentence.mean_pool(model.forward(ids, np.ones_like(ids)).last_hidden, np.ones_like(ids))
    np.testing.assert_allclose(sentence.embed([text], max_tokens=12), want, atol=2e-6)


@needs_minilm
def test_progress_reports_each_batch_and_an_exception_from_it_cancels():
    seen = []
    sentence.embed(SENTENCES, batch_size=2, progress=lambda f, what: seen.append((f, what)))
    assert [f for f, _ in seen] == [0.5, 1.0] and seen[-1][1].startswith("embedded 4/4 texts")

    class Stop(Exception):
        """The caller's cancel."""

    def stop(fraction, what):
        raise Stop

    with pytest.raises(Stop):
        sentence.embed(SENTENCES, batch_size=2, progress=stop)


@pytest.mark.parametrize("texts, options, message", [
    ([], {}, "empty"),
    ("one string", {}, "list of text strings, not one str"),
    (["fine", "  "], {}, "text 1 is empty"),
    (["fine", 3], {}, "not a str"),
    (["fine"], {"max_tokens": 2}, "max_tokens"),
    (["fine"], {"max_tokens": 513}, "max_tokens"),
    (["fine"], {"batch_size": 0}, "batch_size"),
])
@needs_minilm
def test_bad_input_is_an_engine_error(texts, options, message):
    with pytest.raises(EngineError, match=message):
        sentence.embed(texts, **options)


@needs_minilm
def test_the_pair_and_its_neighbours_come_from_one_pass_and_match_separate_calls():
    cos, near = sentence.pair_and_nearest(SENTENCES[0], SENTENCES[1], SENTENCES[2:], 1)
    assert cos == pytest.approx(sentence.similarity(SENTENCES[0], SENTENCES[1]), abs=1e-5)
    assert [n.text for n in near] == [n.text for n in sentence.nearest(SENTENCES[0], SENTENCES[2:], 1)]
    assert len(sentence.nearest(SENTENCES[0], SENTENCES[2:], 5)) == 2  # fewer candidates than k: all of them


@pytest.mark.parametrize("candidates, k, message", [
    (["a cat"], 0, "k must be an int ≥ 1"),
    (["a cat"], -2, "k must be an int ≥ 1"),
    (["a cat"], 1.5, "k must be an int ≥ 1"),
    ([], 3, "no candidate"),
    (["a cat", " "], 3, "candidate 1 is empty"),
])
def test_nearest_refuses_a_bad_k_or_candidates_before_embedding(candidates, k, message):
    with pytest.raises(EngineError, match=message):
        sentence.nearest("a dog", candidates, k)


def test_cosine_of_vectors():
    assert sentence.cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(1 / math.sqrt(2))
    assert sentence.cosine(np.zeros(3), np.ones(3)) == 0.0
    with pytest.raises(EngineError, match="one length"):
        sentence.cosine(np.ones(2), np.ones(3))


def test_lee_data_and_the_cheap_baselines():
    assert len(sentence.lee_documents()) == 50 and sentence.lee_ratings().shape == (1225,)
    assert 0 <= sentence.lee_ratings().min() and sentence.lee_ratings().max() <= 1
    tfidf = sentence.lee_benchmark("TF-IDF")
    assert round(tfidf.pearson, 3) == 0.520 and round(tfidf.spearman, 3) == 0.245 and tfidf.pairs == 1225
    with pytest.raises(EngineError, match="Lee method"):
        sentence.lee_benchmark("LSI")


def test_tfidf_weighs_rare_terms_up():
    x = sentence.tfidf_vectors(["cat dog", "cat fish", "cat bird"])
    vocab_cat, vocab_dog = 0, 1  # first-seen order
    assert x[0, vocab_dog] > x[0, vocab_cat] > 0
    assert x[0, vocab_cat] == pytest.approx(1.0)  # in every document: ln(4/4) + 1


def test_infonce_starts_near_ln_batch_falls_and_is_deterministic():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny products: a second thread only spins (the suite's workers run one each)
    try:
        _check_infonce()
    finally:
        torch.set_num_threads(threads)


def _check_infonce():
    articles = load_bbc()[::5]
    first = sentence.contrastive_demo(batch=16, epochs=2, articles=articles)
    again = sentence.contrastive_demo(batch=16, epochs=1, articles=articles)  # the same seed: the same first epoch
    assert again.losses == first.losses[: len(again.losses)] and again.recall == first.recall[:2]
    assert first.ln_batch == pytest.approx(math.log(16))
    assert first.losses[0] < first.ln_batch + 0.1
    assert first.epoch_losses[-1] < first.losses[0] - 0.5
    assert len(first.recall) == 3 and first.train_pairs + first.test_pairs == 439
    with pytest.raises(EngineError, match="batch"):
        sentence.contrastive_demo(batch=1, articles=articles)
    with pytest.raises(EngineError, match="too few for batches of 64 with one pair in 5 held out"):
        sentence.contrastive_demo(batch=64, articles=articles[:40])


@pytest.mark.parametrize("test_every", [0, 1, -5, 2.5, True])
def test_infonce_refuses_a_test_every_that_holds_out_nothing_or_everything(test_every):
    with pytest.raises(EngineError, match="test_every must be an int ≥ 2"):
        sentence.contrastive_demo(test_every=test_every)
