"""Probes with control tasks and integrated gradients: the invariants that can fail.

Probes: the logistic regression separates what is separable and is deterministic; the control label hangs on
the first word alone; the split is stratified; a layer that encodes the label is found and one that does not
is not; the GPT's pooled features do not see padding. Attribution: the quadratures integrate polynomials,
integrated gradients satisfy completeness ever more tightly as the steps grow, they match captum's where it is
installed, and bad input gets a clear EngineError.
"""

from __future__ import annotations

import numpy as np
import pytest
from workbench_engines.errors import EngineError
from workbench_engines.interp.attribution import integrated_gradients, quadrature
from workbench_engines.interp.probing import (
    control_labels,
    fit_logistic,
    genre_lines,
    gpt_features,
    probe_by_layer,
    split,
)

from tests.conftest import needs_smollm

pytestmark = pytest.mark.no_c_path  # interpretability calls no C kernel of its own

PROMPT = "**ROMEO**  \nBut, soft! what light through yonder window"


@pytest.fixture(scope="module")
def target():
    from workbench_engines.models import small_gpt

    return small_gpt.load("target")


# --- probes ---------------------------------------------------------------------------------------------------


def test_logistic_regression_separates_separable_classes_and_is_deterministic(rng):
    centres = rng.normal(size=(3, 8)) * 4
    y = np.repeat(np.arange(3), 40)
    x = centres[y] + rng.normal(size=(120, 8))
    a, b = fit_logistic(x, y, 3), fit_logistic(x, y, 3)
    assert (a.predict(x) == y).mean() == 1.0
    np.testing.assert_array_equal(a.weight, b.weight)


def test_control_label_depends_on_the_first_word_only():
    texts = ["And so it goes", "and then, my lord", "'And' he said", "Thou art", "O Romeo"]
    labels = control_labels(texts, 3)
    assert labels[0] == labels[1] == labels[2]
    assert set(labels) <= {0, 1, 2}


def test_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(3), 20)
    train, test = split(labels, 0.3, seed=1)
    assert not set(train) & set(test) and len(train) + len(test) == 60
    assert np.bincount(labels[test]).tolist() == [6, 6, 6]


def test_probe_finds_the_layer_that_encodes_the_label_and_the_control_stays_at_chance(rng):
    y = np.repeat(np.arange(3), 60)
    noise = rng.normal(size=(180, 16))
    encodes = noise.copy()
    encodes[:, :3] += 4 * np.eye(3)[y]  # 3 failed the bars below for 14 seeds in 200 (accuracy 0.87-0.9); 4 for none
    control = rng.integers(0, 3, size=180)  # random per text, no word type to memorise
    result = probe_by_layer([noise, encodes], y, control, 3)
    assert result.best.layer == 1
    assert result.layers[1].accuracy > 0.9 and result.layers[1].selectivity > 0.4
    assert result.layers[0].accuracy < 0.6


def test_genre_lines_are_balanced_and_repeatable():
    a, b = genre_lines(12, seed=3), genre_lines(12, seed=3)
    assert a.texts == b.texts and np.bincount(a.labels).tolist() == [12, 12, 12]
    assert all(len(t.split()) >= 4 and not t.startswith(("#", "_", "**")) for t in a.texts)
    with pytest.raises(EngineError, match="unknown genre"):
        genre_lines(5, genres=("farces",))


def test_gpt_features_have_one_row_per_text_per_layer_and_ignore_padding(target):
    texts = ["O Romeo, Romeo!", "Now is the winter of our discontent made glorious summer"]
    together = gpt_features(target, texts, batch=2)
    alone = gpt_features(target, texts[:1], batch=1)
    assert len(together) == len(target.model.blocks) + 1
    assert together[0].shape == (2, target.config.d_model)
    for both, one in zip(together, alone):
        np.testing.assert_allclose(both[0], one[0], rtol=1e-4, atol=1e-5)
    last = gpt_features(target, texts[:1], pool="last")
    np.testing.assert_allclose(last[0][0], target.model.embed.weight[target.tokenizer.encode(texts[0])[-1]]
                               .detach().double().numpy(), rtol=1e-6)


def test_bad_probe_input_gets_an_engine_error(target):
    with pytest.raises(EngineError, match="no texts"):
        gpt_features(target, [])
    with pytest.raises(EngineError, match="pool"):
        gpt_features(target, ["a b c d"], pool="max")
    with pytest.raises(EngineError, match="one row per text"):
        probe_by_layer([np.zeros((4, 2))], np.zeros(5, dtype=int), np.zeros(5, dtype=int), 2)


# --- attribution ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "rel"), [("trapezoid", 5e-3), ("gausslegendre", 1e-12)])
def test_quadrature_weights_sum_to_one_and_integrate_a_polynomial(method, rel):
    alphas, weights = quadrature(16, method)
    assert weights.sum() == pytest.approx(1.0)
    assert (weights * alphas**3).sum() == pytest.approx(0.25, rel=rel)  # trapezoid: error h²/12 · (3 − 0)
    assert 0.0 <= alphas.min() and alphas.max() <= 1.0


def test_integrated_gradients_satisfy_completeness_ever_more_tightly_with_steps(target):
    ids = target.prompt_ids(PROMPT)
    gaps = [integrated_gradients(target.model, ids, steps=s).gap for s in (4, 8, 16, 32)]
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 1e-3  # the stated tolerance at the default 32 steps (0.05% measured)
    log_prob = integrated_gradients(target.model, ids, steps=32, output="log_prob")
    assert log_prob.gap < 1e-2 and log_prob.target == int(np.argmax(target.model(
        __import__("torch").tensor([ids]))[0, -1].detach().numpy()))


def test_integrated_gradients_match_captum(target):
    captum_attr = pytest.importorskip("captum.attr")
    import torch
    from workbench_engines.interp.hooks import patched

    ids = target.prompt_ids("ROMEO:\nO, she doth teach")
    ours = integrated_gradients(target.model, ids, steps=16, method="gausslegendre")
    module = target.model
    x = module.embed.weight.detach()[ids][None]  # (1, T, C)
    base = module.embed.weight.detach().mean(dim=0).expand_as(x)

    def forward(embeddings):
        with patched(module, {"resid_pre.0": lambda act: embeddings}):
            return module(torch.tensor([ids]).expand(len(embeddings), -1))[:, -1, ours.target]

    # Gauss-Legendre, captum's default: its riemann_trapezoid weights sum to (m − 1)/m, not 1 (see quadrature).
    theirs = captum_attr.IntegratedGradients(forward).attribute(x, baselines=base, n_steps=16,
                                                                 method="gausslegendre")
    np.testing.assert_allclose(ours.scores, theirs[0].sum(-1).double().numpy(), rtol=1e-3, atol=1e-4)


def test_bad_attribution_input_gets_an_engine_error(target):
    model = target.model
    with pytest.raises(EngineError, match="non-empty"):
        integrated_gradients(model, [])
    with pytest.raises(EngineError, match="one prompt at a time"):
        integrated_gradients(model, [[1, 2], [3, 4]])
    with pytest.raises(EngineError, match="outside the vocabulary"):
        integrated_gradients(model, [1, 2], target=5000)
    with pytest.raises(EngineError, match="steps"):
        integrated_gradients(model, [1, 2], steps=1)
    with pytest.raises(EngineError, match="baseline"):
        integrated_gradients(model, [1, 2], baseline="blur")
    with pytest.raises(EngineError, match="method"):
        integrated_gradients(model, [1, 2], method="simpson")


@pytest.mark.native  # the quantised linears' small-row path is the C kernel that cuts the gradient
@needs_smollm
def test_smollm2_quantised_linears_cut_the_gradient_and_fp32_lets_it_flow():
    from workbench_engines.models.llama import bundled

    quantised = bundled("quantized")
    ids = quantised.prompt_ids("The capital of France is")
    with pytest.raises(EngineError, match="no gradient reaches the output"):
        integrated_gradients(quantised.model, ids, steps=4, baseline="zero")  # 2 × 5 rows: the C kernel path
    import torch

    fp32 = bundled("fp32").model
    result = integrated_gradients(fp32, ids, steps=8)
    with torch.no_grad():
        logits = fp32(torch.tensor([ids]))[0, -1]
    # Gradients flow and F(x) is the model's own top logit.
    assert np.isfinite(result.scores).all() and np.abs(result.scores).max() > 0
    assert result.target == int(logits.argmax()) and result.f_input == pytest.approx(float(logits.max()), rel=1e-4)


@needs_smollm
def test_smollm2_attention_sink_breaks_the_path_and_keeping_the_first_token_mends_it():
    """Moving SmolLM2's first token switches its attention sink: the gap is many times F(x) − F(x') and does
    not close with steps. Left in place, the gap closes as steps grow and the first token's score is 0."""
    from workbench_engines.models.llama import bundled

    fp32 = bundled("fp32")
    ids = fp32.prompt_ids("The capital of France is")
    moved = [integrated_gradients(fp32.model, ids, steps=m).gap for m in (16, 32)]
    kept = [integrated_gradients(fp32.model, ids, steps=m, keep_first=True) for m in (16, 32)]
    assert min(moved) > 0.5 and kept[1].gap < min(moved) / 100
    assert kept[1].gap < 0.01 < kept[0].gap < 0.1 and kept[1].keep_first
    assert kept[1].scores[0] == 0 and kept[1].f_input == pytest.approx(kept[0].f_input)
