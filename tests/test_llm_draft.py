"""The distilled draft for SmolLM2: its sub-vocabulary, its labels, its training rows and the shipped weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import needs_smollm
from workbench_engines.errors import EngineError

torch = pytest.importorskip("torch")

from workbench_engines.generation import generate, speculative_generate  # noqa: E402
from workbench_engines.models import llm_draft  # noqa: E402
from workbench_engines.models.gpt import GPT, GPTConfig  # noqa: E402
from workbench_engines.sampling.settings import GREEDY, Sampler  # noqa: E402


class _Turning(GPT):
    """A GPT whose scores are permuted: a random tied GPT's argmax is mostly the token it just read (the
    residual stream still holds that token's embedding), so this one writes a permutation's orbit instead."""

    def unembed(self, x: torch.Tensor) -> torch.Tensor:
        return super().unembed(x)[..., self.turn]


def _gpt(seed: int, vocab: int, sharpen: float = 8.0, turning: bool = False, **kw) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(**{"vocab_size": vocab, "context": 64, "d_model": 32, "n_layers": 2, "n_heads": 2, **kw})
    model = (_Turning if turning else GPT)(config).eval()
    if turning:
        model.turn = torch.randperm(vocab)
    with torch.no_grad():  # sharper than the 0.02 init, so argmaxes are clear and distributions far from uniform
        model.embed.weight.mul_(sharpen)
    return model


def _draft(rng, vocab: int, kept: int, seed: int = 7) -> llm_draft.SubVocabDraft:
    keep = torch.from_numpy(rng.choice(vocab, kept, replace=False))
    return llm_draft.SubVocabDraft(_gpt(seed, kept + 1, n_layers=1), keep, vocab).eval()


def test_a_sub_vocabulary_draft_reads_and_scores_the_full_vocabulary(rng):
    from workbench_engines.kvcache import ContiguousCache

    draft = _draft(rng, 30, 6)
    keep = draft.keep.tolist()
    ids = torch.from_numpy(rng.integers(0, 30, (2, 5)))
    inner_ids = torch.tensor([[keep.index(i) + 1 if i in keep else 0 for i in row] for row in ids.tolist()])
    with torch.inference_mode():
        out = draft(ids)
        inner = draft.inner(inner_ids)
        assert out.shape == (2, 5, 30) and draft.config.vocab_size == 30
        torch.testing.assert_close(out[..., draft.keep], inner[..., 1:])
        others = [i for i in range(30) if i not in keep]
        assert torch.isneginf(out[..., others]).all()
        # With a cache, one token at a time: the same scores.
        cache = ContiguousCache(draft.config, 2, 5)
        stepped = torch.cat([draft(ids[:, t : t + 1], cache) for t in range(5)], 1)
    torch.testing.assert_close(stepped[..., draft.keep], out[..., draft.keep])
    with pytest.raises(EngineError, match="must lie in"):
        draft(torch.tensor([[30]]))


def test_a_draft_proposes_only_its_proposed_ids_and_rescores_after_training(rng):
    inner = _gpt(5, 7, n_layers=1)
    keep = torch.tensor([3, 9, 14, 20, 21, 27])
    draft = llm_draft.SubVocabDraft(inner, keep, 30, propose=torch.tensor([20, 9])).eval()
    ids = torch.from_numpy(rng.integers(0, 30, (1, 6)))
    with torch.inference_mode():
        out = draft(ids)
        full = inner(draft.inner_ids(ids))  # (1, 6, 7): rows 2 and 4 are ids 9 and 20
    torch.testing.assert_close(out[..., [9, 20]], full[..., [2, 4]])
    assert torch.isneginf(out[..., [i for i in range(30) if i not in (9, 20)]]).all()
    # Weights changed through the inner model reach the scores at the next eval().
    with torch.no_grad():
        inner.embed.weight.mul_(2.0)
    draft.eval()
    with torch.inference_mode():
        torch.testing.assert_close(draft(ids)[..., [9, 20]], inner(draft.inner_ids(ids))[..., [2, 4]])
    # So do weights loaded into an eval-mode draft, and train mode reads the embedding itself.
    state = {name: value * 3.0 if name == "inner.embed.weight" else value for name, value in draft.state_dict().items()}
    draft.load_state_dict(state)
    with torch.inference_mode():
        torch.testing.assert_close(draft(ids)[..., [9, 20]], inner(draft.inner_ids(ids))[..., [2, 4]])
        draft.train()
        with torch.no_grad():
            inner.embed.weight.mul_(0.5)
        torch.testing.assert_close(draft(ids)[..., [9, 20]], inner(draft.inner_ids(ids))[..., [2, 4]])
    with pytest.raises(EngineError, match="proposed ids must be kept"):
        llm_draft.SubVocabDraft(inner, keep, 30, propose=torch.tensor([9, 10]))


def test_a_sub_vocabulary_draft_checks_its_kept_ids():
    inner = _gpt(0, 4)
    with pytest.raises(EngineError, match="3 kept ids"):
        llm_draft.SubVocabDraft(inner, torch.tensor([1, 2]), 10)
    with pytest.raises(EngineError, match="distinct"):
        llm_draft.SubVocabDraft(inner, torch.tensor([1, 2, 2]), 10)
    with pytest.raises(EngineError, match="must lie in"):
        llm_draft.SubVocabDraft(inner, torch.tensor([1, 2, 10]), 10)


@pytest.mark.parametrize("k", [1, 3])
def test_greedy_speculation_with_a_sub_vocabulary_draft_gives_the_targets_tokens(rng, k):
    # A target that writes one token over and over leaves nothing outside the draft's vocabulary to check: draw
    # another (a CI run drew one).
    for _ in range(20):
        target = _gpt(int(rng.integers(100)), 30, turning=True)
        prompt = rng.integers(0, 30, 4).tolist()
        plain = generate(target, prompt, 24).tokens
        if len(set(plain)) > 1:
            break
    assert len(set(plain)) > 1
    # The draft keeps the first token the target writes and none of the others.
    others = [i for i in range(30) if i not in plain]
    keep = torch.tensor([plain[0], *rng.choice(others, min(14, len(others)), replace=False)])
    draft = llm_draft.SubVocabDraft(_gpt(7, len(keep) + 1, n_layers=1), keep, 30).eval()
    result = speculative_generate(target, draft, prompt, 24, k=k, sampler=GREEDY)
    assert result.tokens == plain
    assert any(token not in keep.tolist() for token in result.tokens)


def test_a_draft_that_stops_when_unsure_still_gives_the_targets_tokens(rng):
    target = _gpt(int(rng.integers(100)), 30, turning=True)
    unsure = _gpt(500, 30, sharpen=2.0, n_layers=1)  # its top token never reaches 0.3
    prompt = rng.integers(0, 30, 4).tolist()
    plain = generate(target, prompt, 24).tokens
    always = speculative_generate(target, unsure, prompt, 24, k=6, sampler=GREEDY)
    doubting = speculative_generate(target, unsure, prompt, 24, k=6, sampler=GREEDY, confidence=0.3)
    assert always.tokens == doubting.tokens == plain
    # Each round of the unsure draft stops after its first token; without the threshold it drafts up to 6.
    assert doubting.proposed <= doubting.rounds < always.proposed
    # The target as its own draft is sure of its tokens: it drafts the whole k and every token stands.
    sure = speculative_generate(target, target, prompt, 24, k=6, sampler=GREEDY, confidence=0.3)
    assert sure.tokens == plain and sure.acceptance_rate == 1.0 and sure.proposed > 3 * sure.rounds
    with pytest.raises(EngineError, match="confidence"):
        speculative_generate(target, unsure, prompt, 4, confidence=1.5)
    with pytest.raises(EngineError, match="confidence"):
        speculative_generate(target, unsure, prompt, 4, confidence=float("nan"))


def test_draft_confidence_is_the_probability_of_the_drafted_token():
    from workbench_engines.generation.speculative import draft_confidence

    logits = np.array([2.0, 0.0, -np.inf, 1.0])
    probs = np.exp(logits - 2.0) / np.exp(logits - 2.0).sum()
    assert draft_confidence(logits, np.eye(4)[0], 0, greedy=True) == pytest.approx(probs[0])
    assert draft_confidence(logits, np.array([0.1, 0.2, 0.0, 0.7]), 3, greedy=False) == pytest.approx(0.7)


@pytest.mark.slow
def test_sampled_speculation_with_a_sub_vocabulary_draft_keeps_the_targets_distribution(rng):
    """The first token after the prompt follows the target's distribution over all six tokens, though the draft
    can only ever propose three of them (its q is 0 elsewhere, and the residual max(p − q, 0) covers them)."""
    from tests.test_generation import _chi_square_ok

    target = _gpt(21, 6, sharpen=1.0)
    draft = llm_draft.SubVocabDraft(_gpt(22, 4, sharpen=3.0, n_layers=1), torch.tensor([0, 2, 4]), 6).eval()
    prompt = [1, 3]
    with torch.inference_mode():
        first = torch.softmax(target(torch.tensor([prompt]))[0, -1].double(), -1).numpy()
    counts = np.zeros(6)
    for seed in range(1500):
        counts[speculative_generate(target, draft, prompt, 2, k=2, sampler=Sampler(temperature=1.0),
                                    seed=seed).tokens[0]] += 1
    assert _chi_square_ok(counts, first)
    assert counts[[1, 3, 5]].sum() > 0


def test_label_windows_label_every_position_with_the_targets_argmax(rng):
    target = _gpt(3, 40, turning=True)
    ids = rng.integers(0, 40, 400)
    prompt, new = 8, 6
    inputs, labels = llm_draft.label_windows(target, ids, windows=4, prompt=prompt, continuation=new, batch=2,
                                             seed=3)
    assert inputs.shape == labels.shape == (4, prompt + new - 1) and inputs.dtype == np.int32
    # The windows start where one draw of `batch` starts per batch from the seed puts them, in the first 90%.
    draws = np.random.default_rng(3)
    starts = np.concatenate([draws.integers(0, 360 - prompt, 2) for _ in range(2)])
    assert (inputs[:, :prompt] == np.stack([ids[s : s + prompt] for s in starts])).all()
    # Every label is the argmax after exactly the inputs before it, recomputed without a cache.
    with torch.inference_mode():
        for row in range(4):
            for t in range(inputs.shape[1]):
                logits = target(torch.from_numpy(inputs[row, : t + 1].astype(np.int64))[None])[0, -1]
                assert int(logits.argmax()) == labels[row, t], (row, t)
    # The continuation is the target's own text: each generated input is the label before it.
    assert (inputs[:, prompt:] == labels[:, prompt - 1 : -1]).all()


def test_label_windows_resume_and_stop(rng):
    target = _gpt(4, 40, turning=True)
    ids = rng.integers(0, 40, 300)
    settings = {"windows": 6, "prompt": 5, "continuation": 4, "batch": 2, "seed": 9}
    whole = llm_draft.label_windows(target, ids, **settings)
    resumed = llm_draft.label_windows(target, ids, done=(whole[0][:2], whole[1][:2]), **settings)
    assert all((a == b).all() for a, b in zip(whole, resumed))
    seen = []
    stopped = llm_draft.label_windows(target, ids, on_batch=lambda i, lab: seen.append(len(i)),
                                      should_stop=lambda: len(seen) == 2, **settings)
    assert seen == [2, 4] and len(stopped[0]) == 4 and (stopped[1] == whole[1][:4]).all()
    with pytest.raises(EngineError, match="multiple"):
        llm_draft.label_windows(target, ids, **{**settings, "windows": 5})
    with pytest.raises(EngineError, match="too few"):
        llm_draft.label_windows(target, ids[:5], **settings)


def test_labelled_rows_and_the_label_loss(rng):
    inputs = rng.integers(0, 30, (10, 7)).astype(np.int32)
    labels = rng.integers(0, 30, (10, 7)).astype(np.int32)
    data = llm_draft.LabelledRows(inputs, labels, val_rows=3)
    window = data.windows("train", np.random.default_rng(0), 4, 7)
    assert window.shape == (4, 2, 7)
    train_rows = {tuple(row) for row in inputs[:7]}
    assert all(tuple(w[0]) in train_rows for w in window)
    assert (data.val_windows(7, 2) == np.stack([inputs[7:9], labels[7:9]], 1)).all()
    with pytest.raises(EngineError, match="seq_len"):
        data.windows("train", np.random.default_rng(0), 4, 6)
    with pytest.raises(EngineError, match="val_rows"):
        llm_draft.LabelledRows(inputs, labels, val_rows=10)
    # The loss is over the inner rows: a label the draft does not keep is row 0.
    draft = _draft(rng, 30, 10)
    kept = draft.keep.tolist()
    unkept = next(i for i in range(30) if i not in kept)
    assert draft.inner_ids(torch.tensor([unkept, kept[3]])).tolist() == [0, 4]
    batch = torch.from_numpy(window.astype(np.int64))
    with torch.no_grad():
        logits = draft.inner(draft.inner_ids(batch[:, 0]))
        expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), draft.inner_ids(batch[:, 1]).reshape(-1))
        loss = llm_draft.label_loss(draft, batch)
    assert math.isfinite(float(loss)) and float(loss) == pytest.approx(float(expected))
    assert llm_draft.vocabulary(inputs[:2], labels[:2]).tolist() == sorted(set(inputs[:2].ravel())
                                                                         | set(labels[:2].ravel()))


def test_the_projected_embedding_keeps_the_big_models_geometry(rng):
    """Rows of rank ≤ width lose nothing to the projection: every distance shrinks by the same factor."""
    rows = torch.from_numpy(rng.standard_normal((50, 6)) @ rng.standard_normal((6, 40))).float()
    small = llm_draft.projected_embedding(rows, 8)
    assert small.shape == (50, 8) and float(small.std()) == pytest.approx(0.02, rel=1e-3)
    ratio = torch.pdist(small) / torch.pdist(rows)
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio.mean())), rtol=1e-3, atol=0)


def test_a_damaged_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(EngineError, match="no such weights file"):
        llm_draft.load_file(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not torch")
    with pytest.raises(EngineError, match="not a weights file"):
        llm_draft.load_file(tmp_path / "bad.pt")
    # A small GPT's weights: a weights file, but no vocabulary maps.
    from workbench_engines.models import small_gpt

    with pytest.raises(EngineError, match="not a draft's weights"):
        llm_draft.load_file(small_gpt.weights_path("draft"))


def test_export_and_load_round_trip(rng, tmp_path):
    draft = _draft(rng, 30, 6)
    path = llm_draft.export(draft, tmp_path / "d.pt", {"agreement": 0.5})
    loaded = llm_draft.load_file(path)
    assert loaded.meta == {"agreement": 0.5} and torch.equal(loaded.model.keep, draft.keep)
    assert torch.equal(loaded.model.propose, draft.propose)
    ids = torch.from_numpy(rng.integers(0, 30, (1, 5)))
    with torch.inference_mode():  # fp16 on disk
        torch.testing.assert_close(loaded.model(ids)[..., draft.keep], draft(ids)[..., draft.keep], atol=2e-2, rtol=0)


@needs_smollm
@pytest.mark.slow
def test_the_shipped_draft_speculates_exactly_for_smollm2_and_is_often_accepted():
    from workbench_engines.models import llama
    from workbench_engines.models.llm_bench import held_out_prompts

    target = llama.load(weights="quantized", threads=1)
    trained = llm_draft.load_file(llm_draft.WEIGHTS_FILE)
    assert trained.meta["kept_tokens"] == len(trained.model.keep)
    assert trained.meta["proposed_tokens"] == len(trained.model.propose) < len(trained.model.keep)
    assert trained.model.config.vocab_size == target.config.vocab_size
    prompt = held_out_prompts(target, 1, 96)[0]  # the bench race's first prompt
    result = speculative_generate(target.model, trained.model, prompt, 128, k=3, sampler=GREEDY)
    assert result.tokens == generate(target.model, prompt, 128).tokens
    # A draft that learned nothing is accepted about never (1 in thousands by chance); the shipped one, 77%.
    assert result.acceptance_rate > 0.5, result.acceptance_rate
