"""all-MiniLM-L6-v2 as a torch module (issue 16) computes what the NumPy encoder computes, and trains."""

from __future__ import annotations

import numpy as np
import pytest

from workbench_engines.errors import EngineError
from tests.conftest import needs_minilm

torch = pytest.importorskip("torch")
pytestmark = [needs_minilm, pytest.mark.no_c_path]  # torch against NumPy; test_minilm covers the C path

TEXTS = ["The quick brown fox jumps over the lazy dog.", "a", "Ångström! 東京 👍 -- it's not a bad film, really.",
         "An overlong, self-indulgent mess that never quite earns its three hours."]


@pytest.fixture(scope="module")
def models():
    from workbench_engines.models import minilm, minilm_torch

    numpy_model = minilm.load()
    return numpy_model, minilm_torch.from_numpy_model(numpy_model)


def test_last_hidden_states_and_embeddings_match_the_numpy_encoder_on_a_padded_batch(models):
    from workbench_engines.models.minilm_torch import encode

    numpy_model, model = models
    ids, mask, _ = numpy_model.encode_texts(TEXTS)
    ours_ids, ours_mask = encode(model.tokenizer, TEXTS)
    np.testing.assert_array_equal(ours_ids.numpy(), ids)
    np.testing.assert_array_equal(ours_mask.numpy(), mask)
    assert (mask == 0).any()  # the batch really is padded
    with torch.no_grad():
        hidden = model(ours_ids, ours_mask).numpy()
        embedded = model.embed(ours_ids, ours_mask).numpy()
    real = mask.astype(bool)
    np.testing.assert_allclose(hidden[real], numpy_model.forward(ids, mask).last_hidden[real], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(embedded, numpy_model.embed(TEXTS), atol=1e-5)


def test_float64_copy_agrees_with_float32_and_padding_changes_nothing(models, rng):
    from workbench_engines.models.minilm_torch import encode, from_numpy_model

    numpy_model, model = models
    wide = from_numpy_model(numpy_model, torch.float64)
    assert all(p.dtype == torch.float64 for p in wide.parameters())
    ids, mask = encode(model.tokenizer, TEXTS)
    with torch.no_grad():
        pooled = model.pool(model(ids, mask), mask)
        pooled64 = wide.pool(wide(ids, mask), mask)
        k = int(rng.integers(len(TEXTS)))
        alone_ids, alone_mask = encode(model.tokenizer, [TEXTS[k]])
        alone = model.pool(model(alone_ids, alone_mask), alone_mask)
    assert pooled64.dtype == torch.float64
    np.testing.assert_allclose(pooled.numpy(), pooled64.numpy(), atol=2e-5)
    np.testing.assert_allclose(alone[0].numpy(), pooled[k].numpy(), atol=1e-5)


def test_every_checkpoint_weight_but_the_unused_pooler_is_loaded_once(models):
    from safetensors.numpy import load_file

    from workbench_engines.models.minilm_torch import checkpoint_name
    from workbench_engines.tokenizers.wordpiece import minilm_dir

    _, model = models
    stored = set(load_file(str(minilm_dir() / "model.safetensors")))
    used = [checkpoint_name(name) for name, _ in model.named_parameters()]
    assert len(used) == len(set(used))
    assert stored - set(used) == {"pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"}
    assert checkpoint_name("layers.3.attention.value.weight") == "encoder.layer.3.attention.self.value.weight"


def test_lora_targets_read_as_the_paper_names_them_and_gradients_reach_them():
    from workbench_engines.finetune.lora import apply_lora, trainable_parameters
    from workbench_engines.models.minilm_torch import encode, load

    model = load()
    wrapped = apply_lora(model, ("attention.query", "attention.value"), r=2, alpha=4.0, seed=0)
    assert wrapped == [f"layers.{i}.attention.{m}" for i in range(6) for m in ("query", "value")]
    assert trainable_parameters(model) == 12 * 2 * (384 + 384)
    ids, mask = encode(model.tokenizer, TEXTS[:2])
    model.pool(model(ids, mask), mask).square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().max()) > 0 for g in grads)  # B starts at zero, so A's gradient is 0: B's is not


def test_sentence_classifier_heads():
    from workbench_engines.models.minilm_torch import SentenceClassifier, encode, load

    encoder = load()
    ids, mask = encode(encoder.tokenizer, TEXTS)
    assert SentenceClassifier(encoder, 2)(ids, mask).shape == (4, 2)
    assert SentenceClassifier(encoder, 1)(ids, mask).shape == (4,)
    with pytest.raises(EngineError, match="at least one output"):
        SentenceClassifier(encoder, 0)


def test_encode_cuts_long_text_but_keeps_sep_and_bad_input_raises(models):
    from workbench_engines.models.minilm_torch import encode

    _, model = models
    ids, mask = encode(model.tokenizer, ["word " * 100, "short"], max_tokens=8)
    assert ids.shape == (2, 8)
    sep, cls = model.tokenizer.vocab["[SEP]"], model.tokenizer.vocab["[CLS]"]
    assert ids[0, 0] == cls and ids[0, -1] == sep and mask[1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    with pytest.raises(EngineError, match="at least one text"):
        encode(model.tokenizer, [])
    with pytest.raises(EngineError, match=">= 2"):
        encode(model.tokenizer, ["x"], max_tokens=1)
    with pytest.raises(EngineError, match="integer tensor"):
        model(torch.zeros(2, 3))
    with pytest.raises(EngineError, match="token ids must be in"):
        model(torch.tensor([[0, 30_522]]))
    with pytest.raises(EngineError, match="exceed"):
        model(torch.zeros(1, 513, dtype=torch.int64))
    with pytest.raises(EngineError, match="attention_mask must have shape"):
        model(ids, mask[:, :3])


def test_a_sentence_with_no_real_token_raises_instead_of_turning_to_nan(models):
    from workbench_engines.models.minilm_torch import encode

    _, model = models
    ids, mask = encode(model.tokenizer, ["a fine film", "dull"])
    # Attention over no keys is 0/0: depending on torch's version and kernel, the row comes back NaN or zeros.
    empty = mask.clone()
    empty[1] = 0
    with pytest.raises(EngineError, match=r"at least one real token; attention_mask row\(s\) \[1\]"):
        model(ids, empty)
    one = mask.clone()
    one[1, 1:] = 0  # [CLS] alone is still a sentence
    with torch.no_grad():
        assert torch.isfinite(model(ids, one)).all()
