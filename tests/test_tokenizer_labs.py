"""The Tokenization labs in the real app (Pilot), and the track's probes."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from workbench_engines.errors import EngineError
from workbench.app import WorkbenchApp
from workbench.typed import unescape
from workbench.labs.tokenizer_labs import (
    BPETrainerLab,
    BytesLab,
    CompareLab,
    PretokenizeLab,
    UnigramLab,
    VocabSweepLab,
    WordPieceLab,
)
from workbench.probes import compute_probe

SIZE = (80, 24)


def readout(lab) -> str:
    return str(lab.query_one(".readout", Static).render())


async def open_lab(app, pilot, lab_id, cls):
    app.open_lab(lab_id)
    await pilot.pause()
    return app.screen.query_one(cls)


async def test_bytes_lab_follows_typing_and_forms(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "tokenize.bytes", BytesLab)
        lab.query_one(Input).value = "é"
        await pilot.pause()
        assert lab.form == "NFC"
        lab.query_one(Input).focus()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert lab.form == "NFD"
        table = lab.query_one(".readout", Static).content
        assert "2 code points, 3 UTF-8 bytes" in str(table.title)


async def test_pretokenize_and_wordpiece_labs_render(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "tokenize.pretokenize", PretokenizeLab)
        lab.query_one(Input).value = "x 1234567"
        await pilot.pause()
        text = readout(lab)
        assert "gpt2: 2 pieces" in text and "cl100k: 5 pieces" in text and "merges inside" in text
        await pilot.press("escape")
        lab = await open_lab(app, pilot, "tokenize.wordpiece", WordPieceLab)
        lab.query_one(Input).value = "Unaffable!"
        await pilot.pause()
        text = readout(lab)
        assert "normalised: unaffable!" in text
        assert "same pieces" in text or "needs all-MiniLM" in text


async def test_compare_lab_loads_every_tokenizer_and_cycles_samples(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "tokenize.compare", CompareLab)
        await app.workers.wait_for_complete()
        await pilot.pause()
        names = [v.name for v in lab.views]
        assert any("tiktoken" in n for n in names) and any("workbench" in n for n in names)
        assert len(lab.views) + len(lab.problems) == 7
        lab.query_one(Input).focus()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert lab.text == lab.params["samples"][0]
        text = readout(lab)
        assert text.count("tokens ·") == len(lab.views)


async def test_bpe_trainer_trains_and_steps(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "tokenize.bpe_trainer", BPETrainerLab)
        lab.params["corpus_bytes"] = 200_000
        lab.focus()
        await pilot.press("t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert lab.result is not None and len(lab.result.merges) == 2000 - 256
        assert "After 10 merges" in readout(lab)
        await pilot.press("space", "f")
        assert lab.shown == 36
        await pilot.press("b")
        assert lab.shown == 35
        assert "After 35 merges" in readout(lab)


async def test_bpe_trainer_can_be_cancelled(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        lab = await open_lab(app, pilot, "tokenize.bpe_trainer", BPETrainerLab)
        lab.params.update(backend="reference", vocab_size=5000)
        lab.focus()
        await pilot.press("t")
        await pilot.pause(0.3)
        await pilot.press("x")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert lab.result is None
        assert "Cancelled" in str(lab.query_one(".lab-status", Static).render())


async def test_vocab_sweep_and_unigram_labs(tmp_path):
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        app.open_lab("tokenize.vocab_sweep")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        lab = app.screen.query_one(VocabSweepLab)
        table = lab.query_one(".readout", Static).content
        assert table.row_count == 8
        await pilot.press("escape")
        lab = await open_lab(app, pilot, "tokenize.unigram", UnigramLab)
        lab.params.update(corpus_bytes=30_000, vocab_size=200)
        assert "ctrl+t" in readout(lab)
        lab.query_one(Input).focus()
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert lab.model is not None and lab.model.vocab_size == 200
        assert "workbench Unigram (200 pieces)" in readout(lab)


def test_unescape_turns_typed_escapes_into_characters():
    assert unescape(r"a\nb\tc\r") == "a\nb\tc\r"


@pytest.mark.parametrize(
    "probe, params, expected",
    [
        ("text.utf8_bytes", {"text": "café", "form": "NFD"}, 6),
        ("text.code_points", {"text": "ﬁ", "form": "NFKC"}, 2),
        ("tokenizer.count", {"tokenizer": "cl100k", "text": "1234567 + 7654321"}, 8),
        ("pretokenize.pieces", {"text": " 1234567", "pattern": "cl100k"}, 4),
        ("bpe.merge_count", {"text": "low low low lower lowest", "merge": 1}, 5),
    ],
)
def test_probes(probe, params, expected):
    assert compute_probe(probe, params) == expected


def test_probe_errors_are_clear():
    with pytest.raises(ValueError, match="only"):
        compute_probe("bpe.merge_count", {"text": "ab", "merge": 5})
    with pytest.raises(ValueError, match="must be one of"):
        compute_probe("tokenizer.count", {"tokenizer": "nope", "text": "x"})
    assert 2.0 < compute_probe("bpe.bytes_per_token", {"vocab_size": 1000, "corpus_bytes": 200_000}) < 4.0
    assert issubclass(EngineError, Exception)


def test_tokenization_track_meets_the_bar():
    from workbench.curriculum import load_curriculum
    from workbench.curriculum.model import LabBlock, QuizBlock

    track = next(t for t in load_curriculum().tracks if t.id == "tokenization")
    assert len(track.lessons) >= 7
    for lesson in track.lessons:
        blocks = [b for step in lesson.steps for b in step.blocks]
        quizzes = [b.question for b in blocks if isinstance(b, QuizBlock)]
        assert not lesson.issues, lesson.issues
        assert len(quizzes) >= 4, lesson.id
        assert any(q.kind == "probe" for q in quizzes), lesson.id
        assert any(isinstance(b, LabBlock) and b.lab_id.startswith("tokenize.") for b in blocks), lesson.id
