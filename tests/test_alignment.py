"""Alignment toys (issue 16): Bradley–Terry, the reward model, DPO's loss and training loop, the KL estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.finetune import dpo, preferences, reward
from workbench_engines.finetune.preferences import Judged, PreferenceSet, PreferenceSettings
from workbench_engines.models.gpt import GPT, GPTConfig

pytestmark = pytest.mark.no_c_path  # torch only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


V = 37
"""A tiny vocabulary: the tests' GPTs are random and small."""


def tiny_gpt(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=V, context=64, d_model=16, n_layers=1, n_heads=2)).eval()


def random_set(rng, prompts: int = 6, samples: int = 3, tokens: int = 5) -> PreferenceSet:
    """A preference set of random tokens with random judge scores (distinct, so every prompt has a pair)."""
    judged = []
    for i in range(prompts):
        prompt = tuple(int(t) for t in rng.integers(0, V, size=int(rng.integers(1, 6))))
        continuations = tuple(tuple(int(t) for t in rng.integers(0, V, size=tokens)) for _ in range(samples))
        scores = tuple(float(s) for s in rng.permutation(samples) / samples)
        judged.append(Judged(f"prompt {i}", prompt, continuations, tuple("" for _ in continuations), scores))
    return PreferenceSet(judged, PreferenceSettings(prompts=prompts, samples=samples, tokens=tokens))


def log_sigmoid_reference(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()


# --- Bradley–Terry ---------------------------------------------------------------------------------------------

def test_bradley_terry_probability_known_values():
    assert reward.bradley_terry_probability(0.0, 0.0) == 0.5
    assert reward.bradley_terry_probability(1.0, 0.0) == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-15)
    assert reward.bradley_terry_probability(2.5, -1.0) + reward.bradley_terry_probability(-1.0, 2.5) == \
        pytest.approx(1.0, abs=1e-15)
    assert reward.bradley_terry_probability(1000.0, 0.0) == 1.0  # no overflow either way
    assert reward.bradley_terry_probability(0.0, 1000.0) == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bradley_terry_loss_matches_log_sigmoid(rng, dtype):
    n = int(rng.integers(1, 40))
    rc = torch.tensor(rng.normal(size=n) * 3, dtype=dtype, requires_grad=True)
    rr = torch.tensor(rng.normal(size=n) * 3, dtype=dtype, requires_grad=True)
    ours = reward.bradley_terry_loss(rc, rr)
    ours.backward()
    ours_grads = rc.grad.clone(), rr.grad.clone()
    rc.grad, rr.grad = None, None
    theirs = -F.logsigmoid(rc - rr).mean()
    theirs.backward()
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    torch.testing.assert_close(ours, theirs, **tol)
    torch.testing.assert_close(ours_grads[0], rc.grad, **tol)
    torch.testing.assert_close(ours_grads[1], rr.grad, **tol)


def test_bradley_terry_loss_values():
    zero = torch.zeros(3, dtype=torch.float64)
    assert reward.bradley_terry_loss(zero, zero).item() == pytest.approx(math.log(2), abs=1e-15)
    big = torch.tensor([60.0], dtype=torch.float64)
    assert reward.bradley_terry_loss(-big, big).item() == pytest.approx(120.0, rel=1e-12)  # −log σ(−120), finite
    assert reward.bradley_terry_loss(big, -big).item() == pytest.approx(0.0, abs=1e-40)


def test_bradley_terry_loss_bad_input():
    with pytest.raises(EngineError, match="no preference pairs"):
        reward.bradley_terry_loss(torch.zeros(0), torch.zeros(0))
    with pytest.raises(EngineError, match="must be two"):
        reward.bradley_terry_loss(torch.zeros(3), torch.zeros(2))


# --- DPO's loss ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dpo_loss_and_gradient_match_the_direct_formula(rng, dtype):
    b = int(rng.integers(1, 17))
    beta = float(rng.uniform(0.05, 2.0))
    tensors = [torch.tensor(rng.normal(size=b) * 20 - 40, dtype=dtype, requires_grad=True) for _ in range(4)]
    loss, chosen, rejected = dpo.dpo_loss(*tensors, beta)
    loss.backward()
    ours = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    direct = log_sigmoid_reference(tensors[0], tensors[1], tensors[2], tensors[3], beta)
    direct.backward()
    # Log-probabilities near −40 (out to −120) differ by a few units: cancellation costs up to 120/|difference| ulps
    # of each, and the two formulas round differently (one seed gave 3.5e-11 in float64).
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-9}
    torch.testing.assert_close(loss, direct, **tol)
    for mine, theirs in zip(ours, (t.grad for t in tensors)):
        torch.testing.assert_close(mine, theirs, **tol)
    torch.testing.assert_close(chosen, beta * (tensors[0] - tensors[2]).detach(), **tol)
    torch.testing.assert_close(rejected, beta * (tensors[1] - tensors[3]).detach(), **tol)


def test_dpo_loss_is_ln2_when_policy_equals_reference(rng):
    logp = torch.tensor(rng.normal(size=(2, 9)) * 10, dtype=torch.float64)
    loss, chosen, rejected = dpo.dpo_loss(logp[0], logp[1], logp[0], logp[1], 0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-15)
    assert torch.all(chosen == 0) and torch.all(rejected == 0)


def test_dpo_loss_bad_input():
    x = torch.zeros(2)
    for beta in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(EngineError, match="beta"):
            dpo.dpo_loss(x, x, x, x, beta)
    with pytest.raises(EngineError, match="no preference pairs"):
        dpo.dpo_loss(*(torch.zeros(0),) * 4, 0.1)
    with pytest.raises(EngineError, match="one shape"):
        dpo.dpo_loss(x, x, x, torch.zeros(3), 0.1)
    for bad in ({"beta": 0.0}, {"beta": -1.0}, {"steps": 0}, {"lr": float("nan")}, {"pairs": "best"}):
        with pytest.raises(EngineError):
            dpo.DPOSettings(**bad)


# --- sequence log-probabilities and the KL --------------------------------------------------------------------

def test_sequence_logprobs_mask_the_prompt_and_the_padding(rng):
    model = tiny_gpt(int(rng.integers(1 << 30)))
    prompts = [[int(t) for t in rng.integers(0, V, size=n)] for n in (1, 4, 7)]
    continuations = [[int(t) for t in rng.integers(0, V, size=n)] for n in (5, 1, 3)]
    batched = dpo.sequence_logprobs(model, prompts, continuations)
    with torch.no_grad():
        for i, (p, c) in enumerate(zip(prompts, continuations)):
            logits = model(torch.tensor([p + c]))[0].double()  # (T, V), one unpadded sequence
            logp = torch.log_softmax(logits, -1)
            expected = sum(logp[len(p) - 1 + j, token].item() for j, token in enumerate(c))
            assert batched[i].item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_sequence_logprobs_bad_input():
    model = tiny_gpt(0)
    with pytest.raises(EngineError, match="empty"):
        dpo.sequence_logprobs(model, [[1]], [[]])
    with pytest.raises(EngineError, match="as many prompts"):
        dpo.sequence_logprobs(model, [[1], [2]], [[3]])


def test_token_kl_matches_torch_distributions(rng):
    shape = (3, int(rng.integers(1, 8)), int(rng.integers(2, 50)))
    p = torch.tensor(rng.normal(size=shape) * 2)
    q = torch.tensor(rng.normal(size=shape) * 2)
    exact = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=p),
                                              torch.distributions.Categorical(logits=q))  # (3, T)
    assert dpo.token_kl(p, q) == pytest.approx(exact.mean().item(), rel=1e-10)
    mask = torch.tensor(rng.integers(0, 2, size=shape[:2]))
    mask[0, 0] = 1
    expected = (exact * mask).sum() / mask.sum()
    assert dpo.token_kl(p.float(), q.float(), mask) == pytest.approx(expected.item(), rel=1e-5)
    assert dpo.token_kl(p, p) == pytest.approx(0.0, abs=1e-12)


def test_sampled_kl_estimates_the_kl_of_known_distributions(rng):
    p = np.array([0.5, 0.3, 0.15, 0.05])
    q = np.array([0.25, 0.25, 0.25, 0.25])
    exact = float(np.sum(p * np.log(p / q)))
    draws = rng.choice(4, size=200_000, p=p)
    estimate = dpo.sampled_kl(np.log(p[draws]), np.log(q[draws]))
    # The estimator's standard deviation here is about 0.6 / sqrt(200,000) ≈ 0.0014.
    assert estimate == pytest.approx(exact, abs=0.01)
    with pytest.raises(EngineError):
        dpo.sampled_kl(np.zeros(0), np.zeros(0))


# --- preference sets --------------------------------------------------------------------------------------------

def test_pairs_and_comparisons_follow_the_judge(rng):
    data = random_set(rng, samples=4)
    assert len(data.pairs) == len(data.judged)
    for pair in data.pairs:
        assert pair.chosen_score > pair.rejected_score
    # Scores 0, 0.25, 0.5, 0.75 with margin 0.1: every ordered pair of distinct samples, 6 per prompt.
    assert len(data.comparisons) == 6 * len(data.judged)
    tie = Judged("t", (1,), ((2,), (3,)), ("a", "b"), (0.3, 0.35))
    assert tie.extremes(0.1) is None and tie.comparisons(0.1) == []


def test_split_is_by_prompt_and_fixed(rng):
    data = random_set(rng, prompts=12)
    train, test = data.split(0.25)
    assert len(train.judged) == 9 and len(test.judged) == 3
    assert not {j.prompt for j in train.judged} & {j.prompt for j in test.judged}
    assert data.split(0.25)[1].judged == test.judged
    with pytest.raises(EngineError):
        data.split(1.0)
    with pytest.raises(EngineError):
        PreferenceSet(data.judged[:1], data.settings).split()


def test_save_and_load_round_trip(rng, tmp_path):
    data = random_set(rng)
    path = preferences.save(data, tmp_path / "p.json")
    assert not (tmp_path / "p.json.tmp").exists()
    back = preferences.load(path)
    assert back.judged == data.judged and back.settings == data.settings
    path.write_text("{not json")
    with pytest.raises(EngineError, match="not a preference set"):
        preferences.load(path)
    with pytest.raises(EngineError, match="no such"):
        preferences.load(tmp_path / "missing.json")


def test_sample_continuations_is_seeded(rng):
    model = tiny_gpt(3)
    prompts = [[1, 2], [3], [4, 5]]
    a = preferences.sample_continuations(model, prompts, 6, 2, seed=5)
    assert a == preferences.sample_continuations(model, prompts, 6, 2, seed=5)
    assert [len(group) for group in a] == [2, 2, 2] and all(len(c) == 6 for group in a for c in group)
    with pytest.raises(EngineError):
        preferences.sample_continuations(model, [[]], 3)
    with pytest.raises(EngineError):
        preferences.sample_continuations(model, [[1]], 3, temperature=0.0)
    with pytest.raises(EngineError):
        preferences.sample_continuations(model, [[1]], 64)


def test_settings_reject_bad_values():
    for bad in ({"prompts": 0}, {"samples": 1}, {"tokens": 0}, {"temperature": 0.0}, {"min_margin": -0.1}):
        with pytest.raises(EngineError):
            PreferenceSettings(**bad)


# --- training loops ----------------------------------------------------------------------------------------------

def test_dpo_training_starts_at_ln2_and_moves_the_margin(rng):
    reference = tiny_gpt(int(rng.integers(1 << 30)))
    before = [p.clone() for p in reference.parameters()]
    data = random_set(rng, prompts=8)
    run = dpo.train_dpo(data, data, dpo.DPOSettings(beta=0.5, steps=12, batch=8, lr=3e-3, kl_every=4, kl_samples=4),
                        reference=reference, tokenizer=object())
    first, last = run.steps[0], run.steps[-1]
    assert first.loss == pytest.approx(math.log(2), abs=1e-6)
    assert first.margin == pytest.approx(0.0, abs=1e-6) and first.kl == pytest.approx(0.0, abs=1e-9)
    assert last.loss < first.loss and last.margin > 0 and last.kl > 0
    assert [s.step for s in run.steps if s.kl is not None] == [0, 4, 8, 12]
    # The reference stays untouched, its requires_grad flags included (it is usually the shared shipped model).
    assert all(torch.equal(a, b) for a, b in zip(before, reference.parameters()))
    assert all(p.requires_grad for p in reference.parameters())


def test_dpo_bad_input(rng):
    reference = tiny_gpt(1)
    data = random_set(rng)
    empty = PreferenceSet([], data.settings)
    with pytest.raises(EngineError, match="no preference pairs"):
        dpo.train_dpo(empty, data, reference=reference, tokenizer=object())
    with pytest.raises(EngineError, match="no test prompts"):
        dpo.train_dpo(data, empty, reference=reference, tokenizer=object())
    broken = tiny_gpt(1)
    with torch.no_grad():
        broken.embed.weight.fill_(float("nan"))
    with pytest.raises(EngineError, match="DPO loss is nan"):
        dpo.train_dpo(data, data, dpo.DPOSettings(steps=2), reference=broken, tokenizer=object())


def test_reward_model_bad_input(rng):
    model = tiny_gpt(2)
    data = random_set(rng)
    with pytest.raises(EngineError, match="no training pairs"):
        reward.train_reward_model(PreferenceSet([], data.settings), data, features="gpt", model=model)
    with pytest.raises(EngineError, match="features must be one of"):
        reward.train_reward_model(data, data, features="bert", model=model)
    with torch.no_grad():
        model.embed.weight.fill_(float("nan"))
    with pytest.raises(EngineError, match="loss is nan"):
        reward.train_reward_model(data, data, features="gpt", model=model, steps=3)
    with pytest.raises(EngineError):
        reward.train_reward_model(data, data, features="gpt", model=tiny_gpt(2), steps=0)
    head = reward.RewardModel(np.ones(4), np.zeros(4), np.ones(4), "minilm")
    with pytest.raises(EngineError, match="reads text"):
        head.score(model, [[1]], [[2]])


def test_reward_model_fits_a_planted_preference(rng):
    """Continuations holding token 7 are preferred: a head on a random GPT's features must learn it."""
    model = tiny_gpt(4)
    judged = []
    for i in range(40):
        prompt = tuple(int(t) for t in rng.integers(8, V, size=3))
        plain = tuple(int(t) for t in rng.integers(8, V, size=4))
        marked = tuple(7 if j % 2 == 0 else t for j, t in enumerate(plain))
        judged.append(Judged(str(i), prompt, (plain, marked), ("", ""), (0.0, 1.0)))
    data = PreferenceSet(judged, PreferenceSettings(samples=2, tokens=4))
    train, test = data.split()
    run = reward.train_reward_model(train, test, features="gpt", model=model, steps=200, lr=0.05)
    assert run.n_train == 30 and run.n_test == 10
    assert run.test_accuracy == 1.0
    assert run.losses[-1] < run.losses[0] < math.log(2) + 0.05


def require_minilm() -> None:
    if not reward.minilm_available():
        pytest.skip("all-MiniLM-L6-v2 is not installed (the optional extra 'minilm')")


def test_embeddings_are_minilms_and_cached_on_disk(monkeypatch, tmp_path):
    """embed() returns MiniLM's own embeddings, writes them atomically, and reads them back without the model."""
    require_minilm()
    from workbench_engines.models import minilm

    monkeypatch.setattr(reward, "_EMBEDDED", {})
    texts = [" my sweet love", "the king is dead, alas", " my sweet love", "⏎**PUCK**  ⏎ho"]
    seen = []
    path = tmp_path / "e.npz"
    got = reward.embed(texts, cache=path, progress=lambda f, what: seen.append(f))
    assert got.shape == (4, 384) and got.dtype == np.float64
    np.testing.assert_allclose(got, minilm.load().embed(texts), atol=1e-6)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert path.is_file() and not (tmp_path / "e.npz.tmp").exists()
    monkeypatch.setattr(reward, "_EMBEDDED", {})
    monkeypatch.setattr(minilm, "load", lambda: pytest.fail("a cached text was embedded again"))
    np.testing.assert_array_equal(reward.embed(texts[:2], cache=path), got[:2])


def test_embedding_can_be_cancelled(monkeypatch):
    require_minilm()
    monkeypatch.setattr(reward, "_EMBEDDED", {})
    with pytest.raises(Cancelled):
        reward.embed(["a line never read"], should_stop=lambda: True)
    assert reward._EMBEDDED == {}


@pytest.mark.slow
def test_reward_model_beats_chance_on_held_out_pairs():
    """The shipped GPT's continuations judged by the lexicon, MiniLM's features, a fixed seed: above chance."""
    from workbench_engines.finetune.sentiment_data import sentiment_dir

    require_minilm()
    try:
        sentiment_dir()
    except EngineError as exc:
        pytest.skip(str(exc))
    data = preferences.preference_set(PreferenceSettings(prompts=96), disk=False)
    train, test = data.split()
    run = reward.train_reward_model(train, test, features="minilm", disk=False)
    assert run.n_test >= 60
    assert run.test_accuracy > 0.55, f"held-out accuracy {run.test_accuracy:.3f} on {run.n_test} comparisons"
