"""The word-vector labs (emb.one_hot, emb.word2vec, emb.glove) mount, draw and answer bad input at 80×24, and
word2vec's on_epoch hook hands over each epoch's vectors."""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Input

from workbench.labs import word_vector_labs as labs
from workbench.widgets.profile_panel import ProfilePanel
from workbench_engines.embeddings import word2vec
from workbench_engines.errors import EngineError

SMALL = {"corpus_bytes": 120_000, "epochs": 2, "threads": 1, "dim": 16}
"""A word2vec run the tests can afford: a slice of the plays, one thread."""


async def submit(h, text: str) -> None:
    box = h.lab.query_one(Input)
    box.value = text
    box.focus()
    await h.press("enter")
    await h.settle()
    h.lab.focus()
    await h.pilot.pause()


@pytest.mark.native
def test_on_epoch_hands_over_copies_and_the_last_is_the_model():
    sentences = labs.plays_sentences(60_000)
    seen = []
    model = word2vec.train(sentences, dim=8, epochs=3, min_count=2, table_size=1000, threads=1, backend="native",
                           on_epoch=lambda epoch, m: seen.append((epoch, m)))
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [m.words_seen for _, m in seen] == [model.words_seen // 3 * k for k in (1, 2, 3)]
    assert not np.array_equal(seen[0][1].syn0, seen[1][1].syn0)
    assert np.array_equal(seen[-1][1].syn0, model.syn0) and seen[-1][1].syn0 is not model.syn0


@pytest.mark.no_c_path
def test_parsing_words_and_analogies():
    assert labs.parse_words(" King, queen  king ") == ["king", "queen"]
    assert labs.parse_analogy("man : king :: woman") == ("man", "king", "woman")
    for bad in ("", "a b c d e f g"):
        with pytest.raises(EngineError):
            labs.parse_words(bad)
    with pytest.raises(EngineError, match="three words"):
        labs.parse_analogy("man king")
    assert labs.bytes_text(4.0 * 400_000**2) == "640 GB" and labs.bytes_text(200) == "200 B"


@pytest.mark.no_c_path
async def test_one_hot_lab_shows_the_identity_beside_glove_and_the_lookup(open_lab):
    async with open_lab("emb.one_hot") as h:
        await h.settle()
        view = h.lab.view
        assert view.words == ["king", "queen", "man", "woman", "apple"]
        assert np.array_equal(view.one_hot_cosines, np.eye(5)) and view.identical
        assert view.dense_cosines[0, 1] > 0.7 > view.dense_cosines[0, 4]
        readout = h.readout()
        assert "one-hot cosines" in readout and "GloVe-50d cosines" in readout
        assert "identical to reading it directly" in readout and "(640 GB)" in readout and "(80 MB)" in readout
        await submit(h, "king zzqqxx")
        assert "not in GloVe's 400,000-word vocabulary: zzqqxx" in h.status()
        await submit(h, "paris france")
        assert h.lab.view.words == ["paris", "france"]


@pytest.mark.native
async def test_word2vec_lab_trains_epoch_by_epoch_switches_mode_and_races(open_lab):
    async with open_lab("emb.word2vec", words=["king", "love"], race_bytes=5_000, **SMALL) as h:
        await h.settle()
        training = h.lab.training
        assert [e for e, _ in training.epochs] == [1, 2] and training.model.threads == 1
        readout = h.readout()
        assert "nearest after epoch 2 of 2" in readout and "king's nearest" in readout
        assert "words/s (native, 1 thread)" in readout and "kept by subsampling" in readout
        assert labs._TRAINED[labs.settings_from(h.lab.params)] is training.model
        await submit(h, "king zzqqxx")
        assert "(fewer than 5 times in the plays)" in h.readout()
        await submit(h, " ")
        assert "type some words" in h.status()
        await h.press("m")
        await h.settle()
        assert h.lab.mode == "cbow" and h.lab.training.settings.mode == "cbow"
        assert "CBOW, 16 dims, 2 epochs" in h.readout()
        await h.press("r")
        await h.settle()
        rows = h.lab.query_one(ProfilePanel).rows
        assert {r.name for r in rows} == {"NumPy", "C 1 thread"} and all(r.matches for r in rows)


async def test_glove_lab_answers_analogies_and_evaluates_both(open_lab, monkeypatch):
    async with open_lab("emb.glove", restrict_vocab=2_000) as h:
        await h.settle()
        readout = h.readout()
        assert "man : king :: woman : ?" in readout and "queen 0.852" in " ".join(readout.split())
        await submit(h, "man king")
        assert "type three words" in h.status()
        await submit(h, "man king qqzzxx")
        assert "not in GloVe's 400,000-word vocabulary: qqzzxx" in h.status()
        # The evaluation reuses the word2vec lab's model for its default settings: put a small one there.
        settings = labs.default_settings()
        small = word2vec.train(labs.plays_sentences(120_000), dim=16, epochs=1, threads=1, min_count=5)
        monkeypatch.setitem(labs._TRAINED, settings, small)
        await h.press("e")
        await h.settle()
        ours, theirs = h.lab.evaluations
        assert ours.analogies.questions == theirs.analogies.questions == 19_544
        assert theirs.analogies.accuracy > ours.analogies.accuracy
        table = h.text(".evaluation")
        assert "questions-words, 3CosAdd" in table and "SimLex-999, Spearman" in table and "6B tokens" in table


@pytest.mark.no_c_path
def test_a_section_filter_scores_only_those_sections_as_gensim_does(rng, tmp_path):
    """sections= asks one section's questions alone, counted as gensim counts them; restrict_vocab 7 leaves 4
    candidates per question, fewer than gensim's 5, and the case variant W3 folds onto w3."""
    models = pytest.importorskip("gensim.models")
    words = [f"w{i}" for i in range(10)] + ["W3", "extra"]
    vectors = labs.WordVectors(words, rng.standard_normal((len(words), 6)).astype(np.float32))
    kv = models.KeyedVectors(6)
    kv.add_vectors(words, vectors.matrix)
    lines = []
    for part in range(3):
        lines.append(f": part-{part}")
        for i in range(30):
            a, b, c, d = (str(w) for w in rng.choice(words, 4))
            if i % 2:  # gensim's own answer among all 12 words: some questions must come out right
                d = kv.most_similar(positive=[b, c], negative=[a], topn=1)[0][0]
            lines.append(f"{a} {b} {c} {d}")
    (tmp_path / "all.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "one.txt").write_text("\n".join(lines[31:62]) + "\n")
    for restrict in (7, 12):
        whole = vectors.evaluate_analogies(tmp_path / "all.txt", restrict)
        one = vectors.evaluate_analogies(tmp_path / "all.txt", restrict, sections=["part-1"])
        assert [s.name for s in one.sections] == ["part-1"] and one.sections[0] == whole.sections[1]
        assert one.questions == 30 and one.oov == 30 - one.total.total
        score, sections = kv.evaluate_word_analogies(str(tmp_path / "one.txt"), restrict_vocab=restrict)
        assert one.total.correct == len(sections[0]["correct"]) and one.accuracy == pytest.approx(score)
    assert one.total.correct >= 10  # among all 12 words half the answers are gensim's own
    with pytest.raises(EngineError, match="no section part-9"):
        vectors.evaluate_analogies(tmp_path / "all.txt", 12, sections=["part-0", "part-9"])
