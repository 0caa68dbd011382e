"""The numbers lessons one-hot-to-dense, word2vec-by-hand and glove-and-data-size claim, as their labs and probes
compute them on the lessons' settings."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_lab_claims import lesson_params
from workbench.labs import word_vector_labs as labs
from workbench.labs.registry import LABS
from workbench.probes import compute_probe

pytestmark = pytest.mark.no_c_path  # GloVe and the plays' vocabulary: NumPy only


def test_one_hot_lesson_cosines_and_memory():
    assert lesson_params("one-hot-to-dense", "emb.one_hot") == LABS["emb.one_hot"].validate({})
    view = labs.one_hot_view(["king", "queen", "man", "woman", "apple"])
    shown = [[f"{v:.2f}" for v in row] for row in view.dense_cosines]
    assert shown[0][1:] == ["0.78", "0.53", "0.41", "0.30"] and shown[2][3] == "0.89" and shown[1][4] == "0.20"
    assert view.rows[0] == 691 and view.identical
    assert round(compute_probe("emb.glove_cosine", {"a": "king", "b": "queen"}), 3) == 0.784
    assert labs.bytes_text(4 * 400_000) == "1.6 MB" and labs.bytes_text(4.0 * 400_000 * 50) == "80 MB"


def test_word2vec_lesson_vocabulary_subsampling_and_noise():
    assert lesson_params("word2vec-by-hand", "emb.word2vec") == LABS["emb.word2vec"].validate({})
    sentences = labs.plays_sentences(0)
    vocab = labs.plays_vocab()
    assert sum(map(len, sentences)) == 839_227 and vocab.total == 810_936 and len(vocab) == 8_675
    assert f"{compute_probe('emb.w2v_keep', {'word': 'the'}):.1%}" == "20.0%"
    assert compute_probe("emb.w2v_keep", {"word": "king"}) == 1.0
    # word2vec.c keeps every word seen at most phi^2 tN times, phi the golden ratio: 2,123 in the plays.
    phi = (1 + 5**0.5) / 2
    assert round(phi**2 * 1e-3 * vocab.total) == 2_123
    assert [vocab.counts[vocab.index[w]] for w in ("their", "let")] == [2_086, 2_148]
    assert labs.keep_probability("their") == 1.0 and f"{labs.keep_probability('let'):.1%}" == "99.2%"
    assert f"{compute_probe('emb.w2v_noise_share', {'word': 'the'}):.3%}" == "1.292%"
    assert f"{compute_probe('emb.w2v_noise_share', {'word': 'the', 'text': True}):.3%}" == "3.423%"


def test_glove_lesson_analogies_sections_and_correlations():
    assert lesson_params("glove-and-data-size", "emb.glove") == LABS["emb.glove"].validate({})
    vectors = labs.glove()
    assert [w for w, _ in vectors.analogy("man", "king", "woman", 3)] == ["queen", "throne", "prince"]
    assert [w for w, _ in vectors.analogy("man", "king", "woman", 3, method="3CosMul")] == \
        ["queen", "throne", "elizabeth"]
    assert round(compute_probe("emb.glove_analogy_score", {"a": "man", "b": "king", "c": "woman"}), 3) == 0.852
    # The lab's 3CosAdd score is cos(queen, king - man + woman); the sum of three cosines is that times |b - a + c|.
    man, king, woman, queen = (vectors.unit[vectors.row(w)] for w in ("man", "king", "woman", "queen"))
    length = float(np.linalg.norm(king - man + woman))
    assert round(length, 3) == 0.994 and round(float(queen @ king - queen @ man + queen @ woman), 3) == 0.848
    assert np.isclose(queen @ (king - man + woman) / length, vectors.analogy("man", "king", "woman")[0][1])
    assert round(compute_probe("emb.glove_analogy_score",
                               {"a": "man", "b": "king", "c": "woman", "method": "3CosMul"}), 3) == 0.928
    assert f"{compute_probe('emb.glove_section_accuracy', {}):.1%}" == "75.7%"
    assert round(compute_probe("emb.glove_spearman", {}), 2) == 0.27
    assert round(compute_probe("emb.glove_spearman", {"test_set": "WordSim-353"}), 2) == 0.54
    assert np.isclose(compute_probe("emb.glove_section_accuracy", {"section": "family", "restrict_vocab": 30_000}),
                      259 / 342)


def test_glove_lesson_coverage_of_the_plays_vocabulary(rng):
    """Coverage depends on the vocabulary alone, so any vectors over the plays' words give the lesson's figures."""
    vocab = labs.plays_vocab()
    vectors = labs.WordVectors(vocab.words, rng.standard_normal((len(vocab), 8)).astype(np.float32))
    result = labs.evaluate("plays", "0.81M words", vectors)
    assert result.analogies.total.total == 2_415 and result.section(labs.FAMILY).total == 210
    assert f"{100 - result.analogies.oov_ratio:.0f}%" == "12%"
    assert f"{100 - result.wordsim.oov_ratio:.0f}%" == "31%" and f"{100 - result.simlex.oov_ratio:.0f}%" == "50%"
