"""Word vectors (engines/embeddings/vectors.py, glove.py, evaldata.py): neighbours and analogies against brute
force, the evaluations against gensim's on GloVe-50d, and GloVe's one-time vocabulary conversion."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from workbench_engines.embeddings import evaldata, glove
from workbench_engines.embeddings.vectors import WordVectors
from workbench_engines.errors import EngineError

pytestmark = pytest.mark.no_c_path  # NumPy only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


def random_vectors(rng, n: int = 2000, dim: int = 24) -> WordVectors:
    return WordVectors([f"w{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32))


@pytest.fixture(scope="module")
def glove_vectors(tmp_path_factory) -> WordVectors:
    pytest.importorskip("pyarrow")
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_HOME", str(tmp_path_factory.mktemp("home")))
    try:
        return glove.load_glove()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def glove_keyed(glove_vectors):
    models = pytest.importorskip("gensim.models")
    kv = models.KeyedVectors(glove.DIM)
    kv.add_vectors(glove_vectors.words, np.asarray(glove_vectors.matrix))
    return kv


def unit_rows(m: np.ndarray) -> np.ndarray:
    m = m.astype(np.float64)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_evaluation_files_are_found_without_importing_gensim():
    if importlib.util.find_spec("gensim") is None:
        pytest.skip("gensim is not installed")
    paths = [evaldata.analogies_path(), evaldata.wordsim353_path(), evaldata.simlex999_path()]
    assert all(p.is_file() for p in paths)
    # A fresh interpreter: this one may have imported gensim for another test already.
    probe = ("import sys; from workbench_engines.embeddings import evaldata; evaldata.analogies_path(); "
             "print('gensim' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"
    assert sum(1 for line in paths[0].read_text().splitlines() if not line.startswith(":")) == 19_544


def test_missing_gensim_names_the_install_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(EngineError, match="pip install gensim"):
        evaldata.analogies_path()


def test_nearest_is_brute_force_cosine(rng):
    vectors = random_vectors(rng)
    cos = unit_rows(vectors.matrix) @ unit_rows(vectors.matrix)[17]
    order = [i for i in np.argsort(-cos) if i != 17]
    got = vectors.nearest("w17", 7)
    assert [w for w, _ in got] == [f"w{i}" for i in order[:7]]
    np.testing.assert_allclose([s for _, s in got], cos[order[:7]], rtol=1e-5)
    skip = {f"w{order[0]}", f"w{order[2]}"}
    assert [w for w, _ in vectors.nearest("w17", 3, exclude=skip)] == [f"w{i}" for i in (order[1], order[3], order[4])]
    query = rng.standard_normal(vectors.dim).astype(np.float32)
    cos_q = unit_rows(vectors.matrix) @ (query / np.linalg.norm(query))
    assert [w for w, _ in vectors.nearest(query, 5)] == [f"w{i}" for i in np.argsort(-cos_q)[:5]]
    assert [w for w, _ in vectors.nearest(query, 5, restrict=100)] == [f"w{i}" for i in np.argsort(-cos_q[:100])[:5]]


@pytest.mark.parametrize("method", ["3CosAdd", "3CosMul"])
def test_analogy_is_levy_and_goldberg_formula(rng, method):
    vectors = random_vectors(rng, 1500, 16)
    unit = unit_rows(vectors.matrix)
    a, b, c = rng.choice(1500, 3, replace=False)
    cos = unit @ unit[[a, b, c]].T  # (V, 3)
    if method == "3CosAdd":
        score = cos[:, 1] - cos[:, 0] + cos[:, 2]
    else:
        shifted = (cos + 1) / 2
        score = shifted[:, 1] * shifted[:, 2] / (shifted[:, 0] + 0.001)
    score[[a, b, c]] = -np.inf
    want = [f"w{i}" for i in np.argsort(-score)[:5]]
    assert [w for w, _ in vectors.analogy(f"w{a}", f"w{b}", f"w{c}", 5, method=method)] == want


def test_bad_input_raises(rng):
    vectors = random_vectors(rng, 50, 4)
    with pytest.raises(EngineError, match="not in the vocabulary"):
        vectors.nearest("zebra")
    with pytest.raises(EngineError, match="k must"):
        vectors.nearest("w1", 0)
    with pytest.raises(EngineError, match="shape"):
        vectors.nearest(np.ones(5, np.float32))
    with pytest.raises(EngineError, match="non-zero"):
        vectors.nearest(np.zeros(4, np.float32))
    with pytest.raises(EngineError, match="method"):
        vectors.analogy("w1", "w2", "w3", method="3CosSub")
    with pytest.raises(EngineError, match="float32"):
        WordVectors(["a"], np.ones((1, 3)))
    with pytest.raises(EngineError, match="unique"):
        WordVectors(["a", "a"], np.ones((2, 3), np.float32))
    with pytest.raises(EngineError, match="rows"):
        WordVectors(["a"], np.ones((2, 3), np.float32))


def test_analogies_and_pairs_count_as_gensim_on_random_cased_vectors(rng, tmp_path):
    """Case variants, out-of-vocabulary words and restrict_vocab handled as gensim handles them."""
    models = pytest.importorskip("gensim.models")
    base = [f"w{i}" for i in range(300)]
    words = base + [w.upper() for w in base[::3]] + ["Zed"]  # later rows: case variants of earlier words
    vectors = WordVectors(words, rng.standard_normal((len(words), 8)).astype(np.float32))
    kv = models.KeyedVectors(8)
    kv.add_vectors(words, vectors.matrix)
    lines = []
    for section in range(3):
        lines.append(f": section-{section}")
        for _ in range(60):
            q = [str(rng.choice(words)) for _ in range(4)]
            if rng.random() < 0.1:
                q[int(rng.integers(4))] = "unknown"
            lines.append(" ".join(q))
    questions = tmp_path / "q.txt"
    questions.write_text("\n".join(lines) + "\n")
    # A word paired with itself (or its case variant, folded to it) has cosine 1 up to the last bit, which
    # gensim's float32 and our float64 round differently: Spearman would rank such exact ties apart.
    drawn = ((str(rng.choice(words)), str(rng.choice(words + ["nope"]))) for _ in range(120))
    distinct = [(a, b) for a, b in drawn if a.upper() != b.upper()][:80]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# comment\n" + "".join(f"{a}\t{b}\t{rng.random() * 10:.2f}\n" for a, b in distinct))
    for restrict in (120, 300_000):
        ours = vectors.evaluate_analogies(questions, restrict)
        score, sections = kv.evaluate_word_analogies(str(questions), restrict_vocab=restrict)
        assert [(s.correct, s.total) for s in ours.sections] == \
               [(len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections[:-1]]
        assert ours.accuracy == pytest.approx(score)
        pearson, spearman, oov = kv.evaluate_word_pairs(str(pairs), restrict_vocab=restrict)
        got = vectors.evaluate_pairs(pairs, restrict)
        assert got.pearson == pytest.approx(pearson[0], abs=1e-6)
        assert got.spearman == pytest.approx(spearman[0], abs=1e-6)
        assert got.oov_ratio == pytest.approx(oov)


def test_glove_converts_its_vocabulary_once(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    first = glove.load_glove(limit=1000)
    cache = tmp_path / "embeddings" / glove.VOCAB_TEXT
    assert cache.is_file() and glove.vocab_cache_path() == cache
    assert first.words[:5] == ["the", ",", ".", "of", "to"] and first.matrix.shape == (1000, 50)
    # Later loads read the text file: pyarrow is not needed (an import of it would fail here).
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    again = glove.load_glove()
    assert len(again) == glove.ROWS and again.words[:1000] == first.words
    assert isinstance(again.matrix, np.memmap)
    cache.write_text("the\nof\n")
    with pytest.raises(EngineError, match="expected 400000"):
        glove.load_vocab()


def test_missing_glove_names_the_install_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(EngineError, match="pip install"):
        glove.load_glove()


def test_glove_solves_the_classic_analogy(glove_vectors):
    for method in ("3CosAdd", "3CosMul"):
        assert glove_vectors.analogy("man", "king", "woman", method=method)[0][0] == "queen"
        assert glove_vectors.analogy("france", "paris", "italy", method=method)[0][0] == "rome"


def test_analogy_accuracy_equals_gensim_on_glove(glove_vectors, glove_keyed, tmp_path):
    """3CosAdd on every 8th question (each section kept), the 30,000 most frequent words: gensim's figures."""
    lines = evaldata.analogies_path().read_text().splitlines()
    sample = [line for i, line in enumerate(lines) if line.startswith(":") or i % 8 == 0]
    path = tmp_path / "questions.txt"
    path.write_text("\n".join(sample) + "\n")
    ours = glove_vectors.evaluate_analogies(path, 30_000)
    score, sections = glove_keyed.evaluate_word_analogies(str(path), restrict_vocab=30_000)
    assert [(s.name, s.correct, s.total) for s in ours.sections] == \
           [(s["section"], len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections[:-1]]
    assert ours.accuracy == pytest.approx(score) and 0.3 < score < 0.7
    mul = glove_vectors.evaluate_analogies(path, 30_000, method="3CosMul")
    assert mul.total.total == ours.total.total and mul.accuracy > 0.3


@pytest.mark.parametrize("which", ["wordsim353_path", "simlex999_path"])
def test_word_pair_correlations_equal_gensim_on_glove(glove_vectors, glove_keyed, which):
    path = getattr(evaldata, which)()
    pearson, spearman, oov = glove_keyed.evaluate_word_pairs(str(path))
    got = glove_vectors.evaluate_pairs(path)
    assert got.pearson == pytest.approx(pearson[0], abs=1e-6)
    assert got.spearman == pytest.approx(spearman[0], abs=1e-6)
    assert got.oov_ratio == pytest.approx(oov) and got.pairs > 300
