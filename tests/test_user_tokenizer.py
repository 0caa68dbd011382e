"""A learner's own tokenizer file (issue 22): read by our engine and by its library, the same ids on fresh text,
a malformed file refused with its path and line, and the comparison and pre-tokenisation labs showing it."""

from __future__ import annotations

import base64
import json

import pytest
from textual.widgets import Input

from tests.conftest import needs_minilm
from workbench_engines import corpus
from workbench_engines.tokenizers.formats import VocabFileError, cl100k_path, read_tiktoken_ranks
from workbench_engines.tokenizers.user_files import load_user_tokenizer


def random_text(rng, n: int = 300) -> str:
    """Letters, digits, spaces, punctuation, accents and CJK drawn at random: input no one tuned the file for."""
    alphabet = list("abcdefghijklmnopqrstuvwxyz ABC  0123456789.,;:!?'\"\n\t-()éüñß東京👍")
    return "".join(rng.choice(alphabet, size=n))


@pytest.fixture(scope="module")
def small_rank_file(tmp_path_factory):
    """cl100k's first 3,000 ranks as a .tiktoken file: the 256 bytes come first in it, so the slice is a
    complete byte-level BPE of its own."""
    ranks = sorted(read_tiktoken_ranks(cl100k_path()).items(), key=lambda kv: kv[1])[:3000]
    path = tmp_path_factory.mktemp("ranks") / "small.tiktoken"
    path.write_text("".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in ranks))
    return path


@pytest.fixture(scope="module")
def hf_json(tmp_path_factory):
    """A byte-level BPE trained by HF tokenizers on the plays, saved as its tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    hf.train_from_iterator(corpus.read_text(limit=60_000).splitlines(), trainer)
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    hf.save(str(path))
    return path


def test_a_rank_file_gives_tiktokens_ids_on_fresh_text(small_rank_file, rng):
    user = load_user_tokenizer(small_rank_file)
    ours, theirs = user.views
    assert "workbench" in ours.name and "tiktoken" in theirs.name
    texts = [random_text(rng) for _ in range(20)] + [corpus.read_text(limit=20_000)[-5_000:]]
    for text in texts:
        assert [t.id for t in ours.tokens(text)] == [t.id for t in theirs.tokens(text)]
        assert user.agreement(text).startswith("same ")
    assert user.split("I'm  here") == ["I", "'m", " ", " here"]


def test_a_rank_file_under_the_gpt2_pattern_splits_as_gpt2(small_rank_file, rng):
    user = load_user_tokenizer(small_rank_file, pattern="gpt2")
    assert user.split_by == "the gpt2 pattern" and user.split("x 1234567") == ["x", " 1234567"]
    text = random_text(rng)
    assert [t.id for t in user.views[0].tokens(text)] == [t.id for t in user.views[1].tokens(text)]
    with pytest.raises(VocabFileError, match="pattern 'o200k'"):
        load_user_tokenizer(small_rank_file, pattern="o200k")


def test_a_byte_level_tokenizer_json_gives_hfs_ids_on_fresh_text(hf_json, rng):
    user = load_user_tokenizer(hf_json)
    assert [v.name for v in user.views] == ["tokenizer.json (workbench)", "tokenizer.json (HF tokenizers)"]
    for text in [random_text(rng) for _ in range(20)] + [corpus.read_text(limit=80_000)[-6_000:]]:
        assert [t.id for t in user.views[0].tokens(text)] == [t.id for t in user.views[1].tokens(text)]
    assert "".join(user.split("Hello there")) == "HelloĠthere"  # HF's byte-level pre-tokenizer spells a space Ġ


@needs_minilm
def test_a_wordpiece_tokenizer_json_is_shown_by_its_library_with_the_reason_ours_is_not():
    from workbench_engines.tokenizers.wordpiece import minilm_dir

    user = load_user_tokenizer(minilm_dir() / "tokenizer.json")
    assert [v.family for v in user.views] == ["WordPiece"] and user.agreement("x") is None
    assert "byte-level BPE only" in user.note and "not BPE" in user.note
    assert user.split("Unaffable Ångström!") == ["unaffable", "angstrom", "!"]


def edit_json(source, tmp_path, change) -> str:
    """Path of a copy of the tokenizer.json at source, pretty-printed as HF writes it, after change(spec)."""
    spec = json.loads(source.read_text())
    change(spec)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(spec, indent=2, ensure_ascii=False))
    return str(path)


def line_holding(path: str, needle: str, after: str) -> int:
    lines = open(path, encoding="utf-8").read().splitlines()
    start = next(k for k, line in enumerate(lines) if after in line)
    return next(k for k, line in enumerate(lines) if k > start and needle in line) + 1


def test_a_broken_tokenizer_json_is_refused_at_its_line_and_column(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{\n  "model": {\n    "type": "BPE",\n    "vocab": {"a": 0,}\n  }\n}\n')
    with pytest.raises(VocabFileError, match=r"tokenizer.json:4:\d+: not a tokenizer.json"):
        load_user_tokenizer(path)
    path.write_text("[1, 2]")
    with pytest.raises(VocabFileError, match="tokenizer.json:1: .*top level"):
        load_user_tokenizer(path)
    with pytest.raises(VocabFileError, match="no such file"):
        load_user_tokenizer(tmp_path / "missing.json")
    with pytest.raises(VocabFileError, match="a folder"):
        load_user_tokenizer(tmp_path)


def test_a_bad_merge_or_id_is_refused_at_the_line_that_holds_it(hf_json, tmp_path):
    from workbench_engines.tokenizers.formats import load_hf_bpe

    def bad_merge(spec):
        spec["model"]["merges"][5] = ["Ġt", "zzz-not-a-token"]

    path = edit_json(hf_json, tmp_path, bad_merge)
    with pytest.raises(VocabFileError, match=rf"edited.json:{line_holding(path, 'zzz-not-a-token', 'merges') - 2}: "
                                             r"merge 5 .* not in the vocabulary"):
        load_hf_bpe(path)

    def bad_id(spec):
        spec["model"]["vocab"]["Ġthe"] = "seven"

    path = edit_json(hf_json, tmp_path, bad_id)
    with pytest.raises(VocabFileError, match=rf"edited.json:{line_holding(path, 'Ġthe', 'vocab')}: .*'seven'"):
        load_hf_bpe(path)
    # HF refuses the file too, so the learner sees the library's reason, not a traceback.
    with pytest.raises(VocabFileError, match="HF tokenizers refused it"):
        load_user_tokenizer(path)


def test_a_broken_rank_file_is_refused_at_its_line(small_rank_file, tmp_path):
    lines = small_rank_file.read_text().splitlines()
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("\n".join(lines[:10] + ["!!notbase64 10"] + lines[11:]) + "\n")
    with pytest.raises(VocabFileError, match="bad.tiktoken:11:"):
        load_user_tokenizer(bad)
    bad.write_text("\n".join(lines[1:]) + "\n")  # rank 0, a single byte, left out
    with pytest.raises(VocabFileError, match="all 256 single bytes; 1 are missing"):
        load_user_tokenizer(bad)


async def test_the_compare_lab_shows_your_file_beside_the_built_in_ones_and_survives_a_bad_one(
        open_lab, small_rank_file, tmp_path):
    async with open_lab("tokenize.compare", tokenizers=["cl100k"], files=[str(small_rank_file)]) as h:
        await h.settle()
        await h.settle()
        assert [u.path for u in h.lab.user_files] == [small_rank_file]
        assert "your small.tiktoken: same" in h.readout() and "small.tiktoken (tiktoken)" in h.readout()
        bad = tmp_path / "broken.json"
        bad.write_text('{"model": ')
        await h.press("ctrl+l")
        box = h.lab.query_one("#user-file", Input)
        assert box.display and box.has_focus
        box.value = str(bad)
        await h.press("enter")
        await h.settle()
        assert "Could not read it" in h.status() and ":1:11: not a tokenizer.json" in h.status()
        assert len(h.lab.user_files) == 1 and len(h.lab.views) == 1  # nothing lost
        await h.press("escape")
        assert not box.display


async def test_the_pretokenize_lab_splits_with_your_files_pre_tokenizer(open_lab, hf_json):
    async with open_lab("tokenize.pretokenize", files=[str(hf_json)]) as h:
        await h.settle()
        await h.settle()
        h.lab.query_one(Input).value = "x 1234567"
        await h.pilot.pause()
        assert "tokenizer.json, split by HF's pre-tokenizer: 2 pieces" in h.readout()
