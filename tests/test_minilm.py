"""all-MiniLM-L6-v2 through the project's encoder reproduces transformers and sentence-transformers."""

from __future__ import annotations

import numpy as np
import pytest

from workbench_engines.errors import EngineError
from tests.conftest import NATIVE

try:
    from workbench_engines.models.minilm import load

    MODEL = load()
except EngineError:
    MODEL = None
pytestmark = pytest.mark.skipif(MODEL is None, reason="the minilm extra is not installed")

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Attention is all you need", "Ångström! 東京 👍", "a"]


@pytest.mark.slow
def test_hidden_states_and_attentions_match_transformers():
    import torch
    from transformers import BertModel

    from workbench_engines.tokenizers.wordpiece import minilm_dir

    ids, mask, _ = MODEL.encode_texts(TEXTS)
    ours = MODEL.forward(ids, mask, output_attentions=True)
    reference = BertModel.from_pretrained(str(minilm_dir()), attn_implementation="eager").eval()
    with torch.no_grad():
        theirs = reference(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                           output_hidden_states=True, output_attentions=True)
    real = mask.astype(bool)
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 7
    for mine, ref in zip(ours.hidden_states, theirs.hidden_states):
        np.testing.assert_allclose(mine[real], ref.numpy()[real], atol=2e-5)
    for mine, ref in zip(ours.attentions, theirs.attentions):
        np.testing.assert_allclose(mine, ref.numpy(), atol=2e-5)


@pytest.mark.parametrize("backend", ["torch", NATIVE])
def test_every_backend_gives_the_reference_hidden_states(backend):
    ids, mask, _ = MODEL.encode_texts(TEXTS)
    real = mask.astype(bool)
    expected = MODEL.forward(ids, mask).last_hidden
    np.testing.assert_allclose(MODEL.forward(ids, mask, backend=backend).last_hidden[real], expected[real], atol=2e-5)


def test_sentence_embeddings_match_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from workbench_engines.tokenizers.wordpiece import minilm_dir

    theirs = SentenceTransformer(str(minilm_dir()), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(MODEL.embed(TEXTS), theirs, atol=1e-5)
    similar = MODEL.embed(["A cat sat on the mat.", "A kitten was sitting on the rug.", "Stock prices fell sharply."])
    assert similar[0] @ similar[1] > similar[0] @ similar[2]


def test_attention_rows_sum_to_one_over_real_tokens():
    ids, mask, tokens = MODEL.encode_texts(["short", "a somewhat longer sentence here"])
    out = MODEL.forward(ids, mask, output_attentions=True)
    weights = out.attentions[0]
    assert weights.shape == (2, 12, ids.shape[1], ids.shape[1])
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights[0, :, :, mask[0] == 0] == 0)  # padding gets no weight
    assert tokens[0][0] == "[CLS]" and tokens[0][-1] == "[SEP]"


def test_bad_input():
    with pytest.raises(EngineError, match="integer array"):
        MODEL.forward(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(EngineError, match="exceed"):
        MODEL.forward(np.zeros((1, 600), dtype=np.int64))
    with pytest.raises(EngineError, match="token ids"):
        MODEL.forward(np.array([[1, 40000]]))
    with pytest.raises(EngineError, match="attention_mask"):
        MODEL.forward(np.array([[1, 2]]), np.ones((1, 3)))
